"""The typed, frozen training configuration: YAML in, validated dataclasses out.

Sections mirror ``configs/default.yaml``. Unknown keys and values of the wrong type are
errors that name the key; ``--set section.key=value`` overrides are parsed as YAML scalars.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from kws.edge.errors import KwsError
from kws.edge.frontend import FrontendConfig
from kws.edge.manifest import LEGACY_MINIMUM_COUNT, SmoothingConfig, upgrade_smoothing_keys
from kws.edge.smoothing import never_decides

# speech_commands' rule: the speaker id is everything before "_nohash_"
DEFAULT_GROUP_PATTERN = r"^(.*?)_nohash_"
LR_SCHEDULES = ("cosine", "step", "constant")
AUTO = "auto"
OPTIMIZERS = ("adam", "sgd")
NEGATIVE_LABELS = ("_unknown_", "_silence_")  # what data.negatives windows may train as
# most extra windows per epoch (data.negatives_percentage, augment.partial_word_percentage), as a
# percentage of the training keyword clips: 100 windows per keyword clip, every epoch
MAX_EXTRA_WINDOWS_PERCENTAGE = 10000.0


class ConfigError(KwsError):
    """A configuration key is unknown or its value is invalid."""


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so the words yes/no/on/off stay strings;
    a key given twice in one mapping is an error (YAML says keys are unique; PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice (first at line {seen[key].line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


class _WrittenInt(int):
    """An integer read from YAML that keeps the text it was written as (``written``): 1, 01, 0x1F, 1_000."""

    written: str


class _WrittenFloat(float):
    """A float read from YAML that keeps the text it was written as (``written``): 1.0, 1.50, .5."""

    written: str


def _construct_written(number_type: type, construct: typing.Callable[[Any, Any], Any]):
    """A YAML constructor of ``number_type`` numbers that keep their scalar's text, so a number given
    where a name is expected (wanted_words: [0, 1]) is read as the name it was written as."""

    def constructor(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        number = number_type(construct(loader, node))
        number.written = node.value
        return number

    return constructor


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int",
                              _construct_written(_WrittenInt, yaml.SafeLoader.construct_yaml_int))
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float",
                              _construct_written(_WrittenFloat, yaml.SafeLoader.construct_yaml_float))
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """What is wrong and where, in one line: "line 3, column 7: mapping values are not allowed here"."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}".split())


def read_yaml(text: str) -> Any:
    """Parse YAML text with YAML 1.2 booleans."""
    return yaml.load(text, Loader=_Yaml12Loader)


@dataclass(frozen=True)
class DataConfig:
    """Where the clips come from and how they are split (speech_commands conventions)."""

    path: str = ""
    wanted_words: tuple[str, ...] = ()
    silence_percentage: float = 10.0
    unknown_percentage: float = 10.0
    validation_percentage: float = 10.0
    testing_percentage: float = 10.0
    max_download_mb: int = 20000
    # regex on the file name whose first group is the speaker (or session) id: every file of one
    # group goes to the same split, and results are reported per group
    group_pattern: str = DEFAULT_GROUP_PATTERN
    # folders (or files) of long real recordings without any keyword, cut into training windows
    negatives: tuple[str, ...] = ()
    # negative windows per epoch, as a percentage of the training keyword clips
    negatives_percentage: float = 50.0
    # the label negative windows train as
    negatives_label: str = "_unknown_"

    def __post_init__(self) -> None:
        if self.negatives_label not in NEGATIVE_LABELS:
            raise ValueError(f"negatives_label must be one of {', '.join(NEGATIVE_LABELS)}, "
                             f"got {self.negatives_label!r}")
        if not 0 <= self.negatives_percentage <= MAX_EXTRA_WINDOWS_PERCENTAGE:
            raise ValueError(f"negatives_percentage must be in [0, {MAX_EXTRA_WINDOWS_PERCENTAGE:g}], "
                             f"got {self.negatives_percentage}")
        if self.group_pattern:
            try:
                groups = re.compile(self.group_pattern).groups
            except re.error as exc:
                raise ValueError(f"group_pattern {self.group_pattern!r} is not a valid regex ({exc})") from None
            if groups < 1:
                raise ValueError(f"group_pattern {self.group_pattern!r} needs a (group) that captures the speaker id")
        for name in ("silence_percentage", "unknown_percentage"):
            if not 0 <= getattr(self, name) <= 1000:
                raise ValueError(f"{name} must be in [0, 1000], got {getattr(self, name)}")
        for name in ("validation_percentage", "testing_percentage"):
            if not 0 <= getattr(self, name) < 100:
                raise ValueError(f"{name} must be in [0, 100), got {getattr(self, name)}")
        if self.validation_percentage + self.testing_percentage >= 100:
            raise ValueError(f"validation_percentage ({self.validation_percentage:g}) + testing_percentage "
                             f"({self.testing_percentage:g}) must be below 100: nothing would be left to train on")
        if any(not w.strip() for w in self.wanted_words):
            raise ValueError(f"wanted_words has an empty word, got {list(self.wanted_words)}")
        repeated = sorted({w for w in self.wanted_words if self.wanted_words.count(w) > 1})
        if repeated:  # each would be a label of its own, every clip of it listed twice
            raise ValueError(f"wanted_words names {', '.join(map(repr, repeated))} more than once")
        if self.max_download_mb <= 0:
            raise ValueError(f"max_download_mb must be > 0, got {self.max_download_mb}")


# upper bounds where a larger value is no recording any more (a level 60 dB off is already far past any
# microphone's range), or where the trainer would fail deep inside (a seed over this overflows the
# per-epoch seed seed * 1000 + epoch that Keras takes as 32 bits; a width of 100000 exhausts memory)
MAX_GAIN_DB = 60.0
# [min, max] ranges' bounds (kws-synth's options of the same kinds take the same)
AUGMENT_RANGE_LIMITS = {"speed_range": (0.5, 2.0), "vtlp_range": (0.7, 1.4), "reverb_rt60_s": (0.01, 3.0),
                        "reverb_drr_db": (-20.0, 40.0), "background_snr_db": (-20.0, 60.0)}
MAX_EQ_DB = 40.0
MAX_SEED = 2**31 // 1000
MAX_MODEL_WIDTH = 1024
MAX_MODEL_BLOCKS = 32


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation for voices, rooms, microphones and noise (configs/default.yaml
    says what each key does and docs/BENCHMARKS.md what it is worth on speakers never heard)."""

    time_shift_ms: float = 100.0
    word_position: str = "shift"
    word_end_margin_ms: float = 150.0
    partial_word_percentage: float = 0.0
    partial_word_visible: tuple[float, ...] = (0.1, 0.6)
    partial_word_unknowns: bool = False
    speed_range: tuple[float, ...] = (1.0, 1.0)
    vtlp_range: tuple[float, ...] = (1.0, 1.0)
    reverb_probability: float = 0.0
    reverb_rt60_s: tuple[float, ...] = (0.15, 0.8)
    reverb_drr_db: tuple[float, ...] = (0.0, 12.0)
    rir_dir: str = ""
    recorded_rir_share: float = 0.5
    eq_probability: float = 0.0
    eq_db: float = 6.0
    band_limit_probability: float = 0.0
    background_frequency: float = 0.8
    generated_noise_share: float = 0.0
    talk_background_share: float = 0.0
    background_snr_db: tuple[float, ...] = (0.0, 20.0)
    background_volume: float = 0.1
    silence_volume: float = 1.0
    gain_db: float = 6.0
    time_masks: int = 2
    time_mask_frames: int = 10
    freq_masks: int = 2
    freq_mask_bins: int = 4

    def __post_init__(self) -> None:
        for name in ("background_frequency", "reverb_probability", "recorded_rir_share", "eq_probability",
                     "band_limit_probability", "generated_noise_share", "talk_background_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.talk_background_share and not self.background_frequency:  # talk is mixed only as background
            raise ValueError(f"talk_background_share {self.talk_background_share:g} is a share of the background "
                             "mixes, and background_frequency 0 makes none: set background_frequency > 0")
        from .augment import WORD_POSITIONS

        if self.word_position not in WORD_POSITIONS:
            raise ValueError(f"word_position must be one of {', '.join(WORD_POSITIONS)}, got {self.word_position!r}")
        if len(self.partial_word_visible) != 2 or not 0 < self.partial_word_visible[0] <= self.partial_word_visible[1] < 1:
            raise ValueError("partial_word_visible must be [min, max] with 0 < min <= max < 1, "
                             f"got {list(self.partial_word_visible)}")
        if not 0 <= self.partial_word_percentage <= MAX_EXTRA_WINDOWS_PERCENTAGE:
            raise ValueError(f"partial_word_percentage must be in [0, {MAX_EXTRA_WINDOWS_PERCENTAGE:g}], "
                             f"got {self.partial_word_percentage}")
        for name in ("word_end_margin_ms", "time_shift_ms", "background_volume", "silence_volume", "gain_db", "eq_db", "time_masks",
                     "time_mask_frames", "freq_masks", "freq_mask_bins"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name, hi in (("gain_db", MAX_GAIN_DB), ("eq_db", MAX_EQ_DB)):
            if getattr(self, name) > hi:
                raise ValueError(f"{name} must be <= {hi:g} dB, got {getattr(self, name)}")
        for name, (lo, hi) in AUGMENT_RANGE_LIMITS.items():
            value = getattr(self, name)
            if name == "background_snr_db" and not value:
                continue  # empty: the tutorial's raw-volume mixing (background_volume)
            if len(value) != 2 or not lo <= value[0] <= value[1] <= hi:
                raise ValueError(f"{name} must be [min, max] with {lo} <= min <= max <= {hi}, got {list(value)}")


@dataclass(frozen=True)
class ModelConfig:
    """Which architecture from the registry, its width, and whether it standardises its input."""

    architecture: str = "tcn"
    # None ("auto" in YAML): the architecture's own width (models.DEFAULT_WIDTHS), filled in here
    width: int | None = None
    blocks: int = 4
    dropout: float = 0.2
    # None ("auto" in YAML): on for the embedding family's head, whose inputs (the frozen speech
    # embedding's values) sit at offsets up to +-40 that an unscaled head underfits; off for the
    # other architectures. Filled in here
    input_normalization: bool | None = None
    # architecture embedding: where Google's speech_embedding weights are (auto: the openwakeword
    # 0.4.0 wheel installed beside kws; or a folder holding its two .onnx files) ...
    embedding_weights: str = "auto"
    # ... and how many augmented windows each training keyword clip gives (_unknown_ clips: half)
    embedding_copies: int = 5

    def __post_init__(self) -> None:
        from .models import MODEL_BUILDERS

        if self.architecture not in MODEL_BUILDERS:
            raise ValueError(f"architecture must be one of {', '.join(MODEL_BUILDERS)}, got {self.architecture!r}")
        if self.width is None:
            from .models import default_width

            object.__setattr__(self, "width", default_width(self.architecture))
        if self.input_normalization is None:
            from .models import EMBEDDING_ARCHITECTURE

            object.__setattr__(self, "input_normalization", self.architecture == EMBEDDING_ARCHITECTURE)
        if not 1 <= self.width <= MAX_MODEL_WIDTH:
            raise ValueError(f"width must be {AUTO} or in 1..{MAX_MODEL_WIDTH}, got {self.width}")
        if not 0 <= self.blocks <= MAX_MODEL_BLOCKS:
            raise ValueError(f"blocks must be in 0..{MAX_MODEL_BLOCKS}, got {self.blocks}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.embedding_copies < 1:
            raise ValueError(f"embedding_copies must be >= 1, got {self.embedding_copies}")
        if not self.embedding_weights.strip():
            raise ValueError(f"embedding_weights must be {AUTO} or a folder, got {self.embedding_weights!r}")


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation loop."""

    epochs: int = 30
    batch_size: int = 100
    # None ("auto" in YAML): the architecture's own rate (models.DEFAULT_LEARNING_RATES), filled in
    # by Config, so a built Config always holds a number
    learning_rate: float | None = None
    final_learning_rate: float = 0.00005
    lr_schedule: str = "cosine"
    warmup_epochs: int = 1
    optimizer: str = "adam"
    weight_decay: float = 0.0
    label_smoothing: float = 0.05
    seed: int = 1234
    max_train_eval_clips: int = 5000
    time_budget_s: float = 0.0
    # finished runs whose mean scores make up teacher_weight of each target (kws.trainer.distill)
    teachers: tuple[str, ...] = ()
    teacher_weight: float = 0.5
    # Beta(alpha, alpha) of each training example's mixup with another one (kws.trainer.augment.mixup); 0: off
    mixup_alpha: float = 0.0

    def __post_init__(self) -> None:
        if self.time_budget_s < 0:
            raise ValueError(f"time_budget_s must be >= 0, got {self.time_budget_s}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be in 0..{MAX_SEED}, got {self.seed}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be {AUTO} or > 0, got {self.learning_rate}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 < self.teacher_weight <= 1:
            raise ValueError(f"teacher_weight must be in (0, 1], got {self.teacher_weight}")
        if self.mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0, got {self.mixup_alpha}")
        for name in ("final_learning_rate", "warmup_epochs", "weight_decay", "max_train_eval_clips"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


# how kws-convert quantizes the embedding family's speech embedding for the int8 pipeline: "full"
# (int8 weights and activations, calibrated on mel windows) or "dynamic" (int8 weights; the runtime
# quantizes each layer's input as it runs, so no calibrated activation range)
EMBEDDING_QUANTIZATIONS = ("full", "dynamic")
MAX_ACCURACY_DROP = 100.0  # convert.max_accuracy_drop is in points of accuracy (percent)


@dataclass(frozen=True)
class ConvertConfig:
    """Quantization and its accuracy guard (used by kws-convert)."""

    calibration_clips: int = 400
    max_accuracy_drop: float = 1.0
    embedding_quantization: str = "dynamic"

    def __post_init__(self) -> None:
        if self.calibration_clips < 1:
            raise ValueError(f"calibration_clips must be >= 1, got {self.calibration_clips}")
        if self.embedding_quantization not in EMBEDDING_QUANTIZATIONS:
            raise ValueError(f"embedding_quantization must be one of {', '.join(EMBEDDING_QUANTIZATIONS)}, "
                             f"got {self.embedding_quantization!r}")
        if not 0 <= self.max_accuracy_drop <= MAX_ACCURACY_DROP:
            raise ValueError(f"max_accuracy_drop must be in [0, {MAX_ACCURACY_DROP:g}] (points of accuracy), "
                             f"got {self.max_accuracy_drop}")


@dataclass(frozen=True)
class Config:
    """The whole configuration, one frozen section per YAML group."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FrontendConfig = field(default_factory=FrontendConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    convert: ConvertConfig = field(default_factory=ConvertConfig)

    def __post_init__(self) -> None:
        if self.train.learning_rate is None:
            from .models import default_learning_rate

            rate = default_learning_rate(self.model.architecture)
            object.__setattr__(self, "train", dataclasses.replace(self.train, learning_rate=rate))
        # the recognizer runs the model every hop of whole feature frames (kws-listen refuses another)
        frames = self.smoothing.hop_ms * self.features.sample_rate / 1000 / self.features.stride_samples
        if round(frames) < 1 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(f"smoothing.hop_ms {self.smoothing.hop_ms:g} must be a whole multiple of "
                             f"features.stride_ms ({self.features.stride_ms:g})")
        # the model would train, convert, and never detect
        problem = never_decides(self.smoothing, f"smoothing.hop_ms {self.smoothing.hop_ms:g}")
        if problem:
            raise ValueError(problem)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for sec in fields(self):
            values = dataclasses.asdict(getattr(self, sec.name))
            out[sec.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        return out

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of everything that shapes the model (not the data path)."""
        data = self.to_dict()
        data["data"] = {k: v for k, v in data["data"].items() if k != "path"}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


# between the problems of one section's validation message (FrontendConfig names all it finds)
PROBLEM_SEPARATOR = "; "
# a decimal number written as text: 5e-2, 1E3, -0.5 (not inf or nan)
NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check and convert one YAML value to a field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if type(None) in args:  # "X | None": null or "auto" means "choose for me"
        if value is None or value == AUTO:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        if inner is bool and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"  # a form (DEEPaaS) sends text
        if isinstance(value, str):  # a number typed into a form (DEEPaaS) arrives as text
            try:
                value = float(value)
            except ValueError:
                pass
        try:
            return _coerce(value, inner, where)
        except ConfigError:
            if _non_finite(value):
                raise  # a number, but nan or inf: that message says so
            what = f"{AUTO}, true or false" if inner is bool else f"{AUTO} or a number"
            raise ConfigError(f"{where}: expected {what}, got {value!r}") from None
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float) and isinstance(value, str) and NUMBER_TEXT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads 5e-2 (no dot) as text
    if annotation in (int, float) and _non_finite(value):  # YAML's .nan / .inf, "nan" typed into a form
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or float(value) != int(value):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        return name_as_written(value, where)
    if origin is tuple:
        if isinstance(value, (bool, int, float)) and typing.get_args(annotation)[0] is str:
            value = [value]  # wanted_words: 7, --set data.wanted_words=7: a list of that one name
        if isinstance(value, str):
            value = [w.strip() for w in value.split(",") if w.strip()] if value.strip() else []
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_type = typing.get_args(annotation)[0]
        if item_type is float:  # "0.9,1.1" typed on the command line or into a form
            value = [_number_or_text(v) for v in value]
        return tuple(_coerce(v, item_type, where) for v in value)
    raise ConfigError(f"{where}: unsupported type {annotation}")  # pragma: no cover


def name_as_written(value: Any, where: str) -> str:
    """The name (a folder, a word) a YAML value gives: text as it is, and a number YAML read from an
    unquoted scalar as the text it was written as where that text is the number's own spelling
    (wanted_words: [0, 1] names the folders 0 and 1, [1.5] the folder 1.5). A number spelt otherwise
    (01 and 007 are read as 1 and 7, 1_000 as 1000) or true/false/null is ConfigError naming ``where``
    with a hint to quote it: the folder meant cannot be told from the value YAML read."""
    if isinstance(value, str):
        return value
    if value is None:
        raise ConfigError(f'{where}: an empty or null name; write the name, in quotes ("null") if it is null')
    if isinstance(value, bool):
        spelt = str(value).lower()
        raise ConfigError(f'{where}: YAML reads {spelt} as a true/false value, not a name; '
                          f'write it in quotes ("{spelt}") to mean the text {spelt}')
    if isinstance(value, (int, float)):
        # an int built in Python or read from JSON has no other spelling; a float may (1.50, 1e3)
        written = getattr(value, "written", str(value) if isinstance(value, int) else None)
        if written == str(value):
            return written
        shown = written if written is not None else repr(value)
        raise ConfigError(f'{where}: YAML reads {shown} as the number {value!r}, not the name {shown}; '
                          f'write it in quotes ("{shown}") to mean the text {shown}')
    raise ConfigError(f"{where}: expected a string, got {value!r}")


def _non_finite(value: Any) -> bool:
    """Whether a value is a float that is nan or +-inf (no setting means either)."""
    return isinstance(value, float) and not math.isfinite(value)


def _number_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def _build_section(cls: type, values: dict[str, Any], section: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: section '{section}' must be a mapping, got {values!r}")
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown key '{section}.{unknown[0]}' "
                          f"(known: {', '.join(sorted(known))})")
    kwargs = {k: _coerce(v, hints[k], f"{source}: {section}.{k}") for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{source}: {_keyed_problems(str(exc), section, known)}") from None


def _keyed_problems(message: str, section: str, names: typing.Collection[str]) -> str:
    """A section's validation message naming its key as ``section.key``, the form --set takes:
    "train.seed must be in 0..2147483, got -1" (each of its problems, "; " apart, starts with one of
    the section's key ``names``). A message that starts with no key says which section it is about."""
    problems = message.split(PROBLEM_SEPARATOR)
    if not all(p.split(" ", 1)[0] in names for p in problems):
        return f"bad value in '{section}': {message}"
    return PROBLEM_SEPARATOR.join(f"{section}.{p}" for p in problems)


def config_from_dict(data: dict[str, Any] | None, source: str = "config") -> Config:
    """Build a Config from nested dicts; missing keys take their defaults."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the config must be a mapping of sections")
    sections = {f.name: f for f in fields(Config)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{source}: unknown section '{unknown[0]}' (known: {', '.join(sections)})")
    hints = typing.get_type_hints(Config)
    if data.get("smoothing"):
        data = {**data, "smoothing": _upgraded_smoothing(data["smoothing"], source)}
    built = {name: _build_section(hints[name], {} if data[name] is None else data[name], name, source)
             for name in data}  # a section given as [] or 0 is named, not read as empty
    try:
        return Config(**built)
    except ValueError as exc:  # a rule across sections (the hop against the frame stride)
        raise ConfigError(f"{source}: {exc}") from None


def _upgraded_smoothing(values: Any, source: str) -> Any:
    """The smoothing section with the older ``minimum_count`` read as ``minimum_span_ms``."""
    if not isinstance(values, dict):
        return values  # _build_section names the problem
    try:
        return upgrade_smoothing_keys(values)
    except ValueError as exc:
        names = {f.name for f in fields(SmoothingConfig)} | {LEGACY_MINIMUM_COUNT}
        raise ConfigError(f"{source}: {_keyed_problems(str(exc), 'smoothing', names)}") from None


def parse_override(text: str) -> tuple[str, str, Any]:
    """'train.epochs=30' -> ('train', 'epochs', 30); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not section or not name:
        raise ConfigError(f"--set {text!r}: expected section.key=value, e.g. train.epochs=30")
    try:
        value = read_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return section, name, value


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = (),
                base: dict[str, Any] | None = None) -> Config:
    """Read a YAML config (or start from defaults / ``base``), apply ``--set`` overrides, validate."""
    data: dict[str, Any] = json.loads(json.dumps(base)) if base else {}
    source = "config"
    if path is not None:
        source = str(path)
        try:
            loaded = read_yaml(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except UnicodeDecodeError as exc:  # a binary file, or text saved in another encoding
            raise ConfigError(f"{path}: not a YAML text file (byte {exc.start} is not UTF-8)") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({yaml_error_text(exc)})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the config must be a mapping of sections")
        for sec, values in (loaded or {}).items():
            data.setdefault(sec, {})
            if values is None:  # "train:" with nothing under it: that section's defaults
                continue
            if isinstance(values, dict):
                data[sec].update(values)
            else:
                data[sec] = values
    for text in overrides:
        section, name, value = parse_override(text)
        if section not in {f.name for f in fields(Config)}:
            raise ConfigError(f"--set {text}: unknown section '{section}'")
        values = data.setdefault(section, {})
        if not isinstance(values, dict):  # "train: 3" in the file
            raise ConfigError(f"{source}: section '{section}' must be a mapping, got {values!r}")
        values[name] = value
    return config_from_dict(data, source=source if not overrides else f"{source} + --set")


THRESHOLD_SECTION, THRESHOLD_NAME = "smoothing", "detection_threshold"
THRESHOLD_KEY = f"{THRESHOLD_SECTION}.{THRESHOLD_NAME}"
# why a model trained with each threshold at the edge of [0, 1] never detects usefully: a word fires
# when its smoothed score is above the threshold and is held until the score falls below a fraction of it
USELESS_THRESHOLDS = {0.0: "at 0 the first detection is held for ever (no score falls below 0)",
                      1.0: "no score is above 1, so nothing would ever be detected"}


def check_new_run(cfg: Config, path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> None:
    """ConfigError naming the config file (or the --set) and the key where ``cfg``, read from ``path``
    and ``overrides`` as ``load_config`` reads them, would train a model that never detects usefully.
    Checked when kws-train starts a run only: a run trained with such a config still loads (kws-convert,
    kws-mine, kws-eval, kws-train --resume read it with ``load_config``)."""
    threshold = cfg.smoothing.detection_threshold
    if threshold not in USELESS_THRESHOLDS:
        return
    where = str(path) if path is not None else "config"
    for text in overrides:
        section, name, _ = parse_override(text)
        if (section, name) == (THRESHOLD_SECTION, THRESHOLD_NAME):
            where = f"--set {text}"
    raise ConfigError(f"{where}: {THRESHOLD_KEY} must be between 0 and 1, not {threshold:g}: "
                      f"{USELESS_THRESHOLDS[threshold]}")


def config_warnings(cfg: Config) -> list[str]:
    """Settings that are valid but do not do what they say, one line each (kws-train prints them at
    the start of a run): a SpecAugment mask allowed to cover the whole input (it is drawn narrower,
    kws.trainer.augment.widest_mask), a warm-up as long as the training (the peak learning rate is
    never reached)."""
    from .augment import widest_mask

    out = []
    aug, fe, t = cfg.augment, cfg.features, cfg.train
    for count, key, width, extent, what in (
            ("time_masks", "time_mask_frames", aug.time_mask_frames, fe.num_frames, "the clip's {} frames"),
            ("freq_masks", "freq_mask_bins", aug.freq_mask_bins, fe.num_features, "features.num_features ({})")):
        drawn = widest_mask(width, extent)
        if getattr(aug, count) and drawn < width:
            out.append(f"augment.{key} {width} is not narrower than {what.format(extent)}: one mask could blank "
                       f"the whole input, so masks are drawn at most {drawn} wide")
    if t.warmup_epochs >= t.epochs:
        reached = t.learning_rate * t.epochs / (t.warmup_epochs + 1)
        out.append(f"train.warmup_epochs {t.warmup_epochs} is not below train.epochs {t.epochs}: the learning "
                   f"rate never reaches its peak {t.learning_rate:g} (at most {reached:.3g}); lower "
                   "train.warmup_epochs or raise train.epochs")
    return out


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from kws.edge.manifest import atomic_write_text

    atomic_write_text(path, "# resolved kws configuration (all values)\n"
                      + yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def with_data(cfg: Config, path: str | None, words: typing.Sequence[str] | None,
              negatives: typing.Sequence[str] = ()) -> Config:
    """The config with --data / --words / --negatives applied (taken verbatim, not parsed as YAML)."""
    changes: dict[str, Any] = {}
    # absolute: config.yaml and split.json keep them, and --resume may run from another folder
    if negatives:
        changes["negatives"] = tuple(str(Path(n).expanduser().absolute()) for n in negatives)
    if path:
        changes["path"] = path if "://" in path else str(Path(path).expanduser().absolute())
    if words is not None:
        changes["wanted_words"] = tuple(w.strip() for w in words)
    try:
        return cfg.replace(data=dataclasses.replace(cfg.data, **changes)) if changes else cfg
    except ValueError as exc:
        raise ConfigError(f"--words: {exc}") from None
