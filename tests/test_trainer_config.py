"""The typed config: defaults file, validation errors naming the key, --set overrides."""
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from kws.trainer.config import Config, ConfigError, load_config, save_config, with_data

REPO = Path(__file__).resolve().parent.parent


def test_default_yaml_lists_every_key_with_the_builtin_defaults():
    from_file = load_config(REPO / "configs" / "default.yaml")
    assert from_file == Config()
    listed = yaml.safe_load((REPO / "configs" / "default.yaml").read_text())
    assert {s: set(v) for s, v in listed.items()} == {s: set(v) for s, v in Config().to_dict().items()}


def _comments_by_key(text: str) -> dict[str, str]:
    """section.key -> the comment lines right above that key in a YAML config, joined."""
    blocks: dict[str, str] = {}
    section, comment = "", []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("# "))
            continue
        if line and not line.startswith(" "):
            section = line.split(":")[0]
        elif stripped:
            blocks[f"{section}.{stripped.split(':')[0]}"] = " ".join(comment)
        comment = []
    return blocks


def _enforced_limits() -> dict[str, tuple[float, float]]:
    """section.key -> the (min, max) its validation enforces, from the constants the code checks."""
    from kws.edge.manifest_schema import FRONTEND_RANGES, SMOOTHING_RANGES
    from kws.trainer import config as c

    limits = {f"features.{k}": (lo, hi) for k, (lo, hi, _) in FRONTEND_RANGES.items()
              if k not in ("lower_hz", "upper_hz")}  # their real bound is each other and sample_rate / 2
    limits |= {f"smoothing.{k}": (lo, hi) for k, (lo, hi, _) in SMOOTHING_RANGES.items()
               if k in Config().to_dict()["smoothing"] and k not in ("detection_threshold", "release_fraction")}
    limits |= {f"augment.{k}": v for k, v in c.AUGMENT_RANGE_LIMITS.items()}
    return limits | {"augment.gain_db": (0, c.MAX_GAIN_DB), "augment.eq_db": (0, c.MAX_EQ_DB),
                     "train.seed": (0, c.MAX_SEED), "model.width": (1, c.MAX_MODEL_WIDTH),
                     "model.blocks": (0, c.MAX_MODEL_BLOCKS),
                     "data.negatives_percentage": (0, c.MAX_EXTRA_WINDOWS_PERCENTAGE),
                     "augment.partial_word_percentage": (0, c.MAX_EXTRA_WINDOWS_PERCENTAGE)}


def test_every_default_yaml_key_has_a_comment_stating_its_limits():
    """A user editing default.yaml reads what each key does and what it may be: each key has its
    comment, each key the code bounds states those bounds as its error message does (lo..hi), and
    a key the code fills in says auto."""
    text = (REPO / "configs" / "default.yaml").read_text()
    comments = _comments_by_key(text)
    assert set(comments) == {f"{s}.{k}" for s, keys in Config().to_dict().items() for k in keys}
    assert not [key for key, comment in comments.items() if not comment], "keys without a comment"
    written = {key: "..".join(str(int(v)) if float(v).is_integer() else f"{v:g}" for v in limits)
               for key, limits in _enforced_limits().items()}  # 0.5..2, 0..2147483
    missing = [f"{key}: {text}" for key, text in written.items() if text not in comments[key]]
    assert not missing, f"comments that do not state the limits: {missing}"
    listed = yaml.safe_load(text)
    auto = [f"{s}.{f.name}" for s in ("model", "train")
            for f in dataclasses.fields(getattr(Config(), s)) if f.default is None]
    assert auto and all(listed[k.split(".")[0]][k.split(".")[1]] == "auto" for k in auto)


def test_set_overrides_are_typed():
    cfg = load_config(None, ["train.epochs=3", "model.architecture=conv", "features.feature_type=log_mel",
                             "data.wanted_words=[yes, no]"])
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.model.architecture == "conv"
    assert cfg.features.feature_type == "log_mel"
    assert cfg.data.wanted_words == ("yes", "no")


def test_numbers_in_exponent_notation_without_a_dot(tmp_path):
    """YAML 1.1 reads 5e-2 and 1e2 as text; they are numbers wherever a number is expected."""
    cfg = load_config(None, ["train.weight_decay=5e-2", "train.epochs=1e1", "train.learning_rate=1E-3"])
    assert cfg.train.weight_decay == 0.05 and cfg.train.epochs == 10 and cfg.train.learning_rate == 0.001
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  unknown_percentage: 1e2\n")
    assert load_config(path).data.unknown_percentage == 100.0
    for bad in ("train.weight_decay=inf", "train.epochs=1.5e0", "train.weight_decay=5e"):
        with pytest.raises(ConfigError):
            load_config(None, [bad])


@pytest.mark.parametrize("override", [
    "train.learning_rate=nan", "train.learning_rate=.inf", "train.final_learning_rate=.nan", "augment.gain_db=.inf",
    "augment.time_shift_ms=.inf", "train.time_budget_s=.inf", "train.epochs=.inf", "train.epochs=.nan",
    "train.epochs=1e400", "augment.speed_range=[.nan, 1.1]", "smoothing.hop_ms=.nan", "convert.max_accuracy_drop=.nan",
])
def test_nan_and_inf_are_refused_naming_the_key(override, tmp_path):
    """No setting means nan or inf: before, a learning rate of nan trained a model of nan weights to
    the end, an infinite gain or time shift crashed the first epoch with a traceback (its run folder
    left behind), and an integer key raised OverflowError/ValueError instead of naming the key."""
    from click.testing import CliRunner

    from kws.trainer.cli import main

    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"{key}: expected a finite number, got -?(nan|inf)$"):
        load_config(None, [override])
    section, name = key.split(".")
    path = tmp_path / "c.yaml"
    path.write_text(f"{section}:\n  {name}: {override.split('=')[1]}\n")
    with pytest.raises(ConfigError, match=rf"{path}: {key}: expected a finite number"):
        load_config(path)
    res = CliRunner().invoke(main, ["--data", str(tmp_path), "--set", override, "--out", str(tmp_path / "run")])
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1, res.output
    assert re.fullmatch(rf"Error: config \+ --set: {key}: expected a finite number, got -?(nan|inf)", lines[0])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, message", [
    ("train.epoch=3", "unknown key 'train.epoch'"),
    ("trian.epochs=3", "unknown section 'trian'"),
    ("train.epochs=three", "train.epochs: expected an integer"),
    ("train.epochs=0", "train.epochs must be >= 1, got 0"),
    ("model.architecture=resnet", "architecture must be one of"),
    ("features.stride_ms=50", "stride_ms must be in (0, window_ms]"),
    ("train.epochs", "expected section.key=value"),
    ("train.learning_rate=fast", "train.learning_rate: expected auto or a number, got 'fast'"),
    ("train.learning_rate=-0.1", "train.learning_rate must be auto or > 0, got -0.1"),
    ("model.input_normalization=on", "model.input_normalization: expected auto, true or false, got 'on'"),
    # each of these was a traceback deep in training (or a NaN model) before
    ("train.seed=-5", "seed must be in 0..2147483, got -5"),
    ("train.seed=5000000", "seed must be in 0..2147483"),
    ("augment.gain_db=1000000", "gain_db must be <= 60 dB"),
    ("augment.eq_db=100000", "eq_db must be <= 40 dB"),
    ("model.width=100000", "model.width must be auto or in 1..1024, got 100000"),
    ("features.stride_ms=0.01", "stride_ms must be in 1..1000, got 0.01"),
    ("features.clip_ms=1000000000000", "clip_ms must be a whole number in 50..10000"),
    ("features.clip_ms=1000.5", "features.clip_ms: expected an integer, got 1000.5"),
    # trained, it became a 20 ms hop in the manifest, and kws-listen --hop-ms 25 was refused
    ("smoothing.hop_ms=25", "smoothing.hop_ms 25 must be a whole multiple of features.stride_ms (10)"),
    # one result per 500 ms window: the model trained and converted, and kws-listen never detected
    # named as the key is (before: "smoothing.hop 600 ms", a key there is not)
    ("smoothing.hop_ms=600", "smoothing.hop_ms 600: results that far apart never span the 125 ms a decision needs"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=None) as err:
        load_config(None, [override])
    assert message in str(err.value)


@pytest.mark.parametrize("override, message", [
    # out of range: percentages, probabilities (a percentage typed for one), counts
    ("data.validation_percentage=100", "data.validation_percentage must be in [0, 100), got 100.0"),
    ("augment.background_frequency=80", "augment.background_frequency must be in [0, 1], got 80.0"),
    ("augment.time_masks=-1", "augment.time_masks must be >= 0, got -1"),
    ("smoothing.release_fraction=0", "smoothing.release_fraction must be in (0, 1], got 0.0"),
    ("smoothing.minimum_count=0", "smoothing.minimum_count must be a whole number >= 1, got 0"),
    # what a manifest holds (before: the run trained, and its converted manifest was refused by every tool)
    ("smoothing.average_window_ms=100000", "smoothing.average_window_ms must be in 1..60000, got 100000.0"),
    ("smoothing.suppression_ms=1000000", "smoothing.suppression_ms must be in 0..600000, got 1000000.0"),
    # windows per epoch, like data.negatives_percentage (before: any size, an epoch of millions of windows)
    ("augment.partial_word_percentage=500000", "augment.partial_word_percentage must be in [0, 10000], got 500000.0"),
    # [min, max] ranges: low > high, empty
    ("augment.speed_range=[1.1, 0.9]", "augment.speed_range must be [min, max] with 0.5 <= min <= max <= 2.0, "
                                       "got [1.1, 0.9]"),
    ("augment.reverb_drr_db=[]", "augment.reverb_drr_db must be [min, max] with -20.0 <= min <= max <= 40.0, got []"),
    # unknown choices
    ("data.negatives_label=_noise_", "data.negatives_label must be one of _unknown_, _silence_, got '_noise_'"),
    ("convert.embedding_quantization=half", "convert.embedding_quantization must be one of full, dynamic, got 'half'"),
    # points of accuracy: above 100 the int8 guard could never fail, without saying so
    ("convert.max_accuracy_drop=150", "convert.max_accuracy_drop must be in [0, 100] (points of accuracy), got 150.0"),
    # each named alone with its value (before: "epochs and batch_size must be >= 1, got 30, 0",
    # "learning rates must be positive", "warmup_epochs, weight_decay and max_train_eval_clips must be >= 0",
    # "width must be in 1..1024 and blocks in 0..32, got 128, 100", "embedding_weights must be auto or a folder")
    ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
    ("train.final_learning_rate=-1", "train.final_learning_rate must be >= 0, got -1.0"),
    ("train.weight_decay=-0.5", "train.weight_decay must be >= 0, got -0.5"),
    ("model.blocks=100", "model.blocks must be in 0..32, got 100"),
    ("model.embedding_weights=", "model.embedding_weights must be auto or a folder, got ''"),
    ("data.validation_percentage=95", "data.validation_percentage (95) + testing_percentage (10) must be below 100: "
                                      "nothing would be left to train on"),
    # the frontend's relations name the key that breaks them (before: "need 0 <= lower_hz < upper_hz <=
    # sample_rate/2, got 8000.0..7600.0", whichever was set)
    ("features.upper_hz=9000", "features.upper_hz must be at most sample_rate/2 (8000 Hz), got 9000"),
    ("features.lower_hz=8000", "features.lower_hz must be below upper_hz (7600 Hz), got 8000"),
    ("features.num_features=100", "features.num_features must be in 1..num_mel_bins (40) for mfcc, got 100"),
])
def test_a_bad_value_is_one_line_naming_section_key_the_value_and_what_is_allowed(override, message, tmp_path):
    """The key is named as --set takes it (before: "bad value in 'train': ..."), with the value given,
    from --set and from a config file alike."""
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert str(err.value) == f"config + --set: {message}"
    key, value = override.split("=", 1)
    section, name = key.split(".")
    path = tmp_path / "c.yaml"
    path.write_text(f"{section}:\n  {name}: {value or repr('')}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_talk_background_without_background_mixes_is_refused():
    """Talk from the negatives is mixed only where background is (background_frequency of the clips):
    with background_frequency 0 the share was silently ignored."""
    with pytest.raises(ConfigError) as err:
        load_config(None, ["augment.talk_background_share=0.5", "augment.background_frequency=0"])
    assert str(err.value) == ("config + --set: augment.talk_background_share 0.5 is a share of the "
                              "background mixes, and background_frequency 0 makes none: set background_frequency > 0")
    assert load_config(None, ["augment.talk_background_share=0", "augment.background_frequency=0"])
    assert load_config(None, ["augment.talk_background_share=0.5"]).augment.background_frequency == 0.8


def test_yaml_mistakes_name_the_line_and_a_repeated_key_is_refused(tmp_path):
    """A syntax error says where; a section or key given twice is an error, not 'the last one wins'."""
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\n  batch_size: 16: 4\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \(line 3, column 17: mapping values"):
        load_config(path)
    path.write_text("train:\n  epochs: 3\nmodel:\n  width: 32\ntrain:\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=r"line 5, column 1: 'train' is given twice \(first at line 1\)"):
        load_config(path)
    path.write_text("train:\n  epochs: 3\n  epochs: 4\n")
    with pytest.raises(ConfigError, match="'epochs' is given twice"):
        load_config(path)


def test_an_empty_section_is_the_defaults_and_a_section_that_is_no_mapping_is_named(tmp_path):
    """"train:" with nothing under it is that section's defaults, with or without --set (before,
    --set train.epochs=2 then raised a TypeError traceback); "train: []" or "train: 0" is an error
    naming the file and section (before, [] and 0 were silently read as an empty section, so a run
    trained 30 epochs with every default)."""
    path = tmp_path / "c.yaml"
    path.write_text("train:\nmodel:\n  width: 32\n")
    assert load_config(path, ["train.epochs=2"]).train.epochs == 2
    assert load_config(path).train == Config().train
    assert load_config(path, base={"train": {"epochs": 5}}).train.epochs == 5  # an empty section keeps the base's
    for value in ("[]", "0", "''", "false", "[epochs]"):
        path.write_text(f"train: {value}\n")
        for overrides in ((), ("train.epochs=2",)):
            with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}( \+ --set)?: section 'train' must be a mapping"):
                load_config(path, overrides)


def test_a_config_that_is_not_utf8_text_is_named(tmp_path):
    """A binary file or a Latin-1 one given to --config: one line naming it (before: a
    UnicodeDecodeError traceback)."""
    path = tmp_path / "c.yaml"
    path.write_bytes("train:\n  epochs: 3  # r\u00e9glage\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: not a YAML text file \(byte 23 is not UTF-8\)$"):
        load_config(path)


def test_unknown_key_in_a_file_names_file_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 2\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "train.lerning_rate" in str(err.value)


def test_config_is_frozen_and_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=5", "augment.gain_db=0"])
    with pytest.raises(Exception):
        cfg.train.epochs = 9  # type: ignore[misc]
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg
    assert cfg.digest() == load_config(tmp_path / "config.yaml").digest()
    assert cfg.digest() != Config().digest()


def test_yes_no_on_off_stay_words(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  wanted_words: [yes, no, on, off, up]\n")
    assert load_config(path).data.wanted_words == ("yes", "no", "on", "off", "up")
    assert load_config(None, ["data.wanted_words=[on,off]"]).data.wanted_words == ("on", "off")


@pytest.mark.parametrize("written, words", [
    ("[0, 1, 2]", ("0", "1", "2")),  # spoken digits: folders 0 .. 9
    ("[1.0, 10, -1, 1e3, '01', 08]", ("1.0", "10", "-1", "1e3", "01", "08")),  # 1e3, 08: text to YAML
    ("7", ("7",)),  # one word, not a list
])
def test_number_words_in_a_config_name_the_folders_as_written(written, words, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  wanted_words: {written}\n")
    cfg = load_config(path)
    assert cfg.data.wanted_words == words
    save_config(cfg, tmp_path / "saved.yaml")  # kws-train --resume reads the run's copy back
    assert load_config(tmp_path / "saved.yaml").data.wanted_words == words


def test_number_words_given_with_set_name_the_folders_as_written():
    assert load_config(None, ["data.wanted_words=[0,1]"]).data.wanted_words == ("0", "1")
    assert load_config(None, ["data.wanted_words=0,01"]).data.wanted_words == ("0", "01")
    assert load_config(None, ["data.wanted_words=5"]).data.wanted_words == ("5",)


@pytest.mark.parametrize("written, message", [
    ("[01, 2]", 'YAML reads 01 as the number 1, not the name 01; write it in quotes ("01")'),
    ("[007]", 'YAML reads 007 as the number 7, not the name 007; write it in quotes ("007")'),
    ("[1.50]", 'YAML reads 1.50 as the number 1.5, not the name 1.50; write it in quotes ("1.50")'),
    ("[1_000]", 'YAML reads 1_000 as the number 1000, not the name 1_000; write it in quotes ("1_000")'),
    ("[true]", 'YAML reads true as a true/false value, not a name; write it in quotes ("true")'),
    ("[up, null]", 'an empty or null name; write the name, in quotes ("null") if it is null'),
])
def test_a_word_yaml_reads_as_another_value_is_refused_with_a_hint_to_quote_it(written, message, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"data:\n  wanted_words: {written}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}: data.wanted_words: {message}")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=re.escape(f"config + --set: data.wanted_words: {message}")):
        load_config(None, [f"data.wanted_words={written}"])


def test_with_data_rejects_empty_word():
    with pytest.raises(ConfigError, match="empty word"):
        with_data(Config(), "/data", ["yes", "", "no"])
    # before, --words up,up trained a model with two 'up' labels, each up clip in the split twice
    with pytest.raises(ConfigError) as err:
        with_data(Config(), "/data", ["up", "no", " up", "no"])
    assert str(err.value) == "--words: wanted_words names 'no', 'up' more than once"
    with pytest.raises(ConfigError, match=r"^config \+ --set: data.wanted_words names 'up' more than once$"):
        load_config(None, ["data.wanted_words=[up, up]"])
    assert with_data(Config(), "~/x", ["yes"]).data.path == str(Path("~/x").expanduser())


def test_auto_learning_rate_is_the_architectures_and_is_saved_as_a_number(tmp_path):
    assert Config().train.learning_rate == 0.002  # ds_cnn
    conv = load_config(None, ["model.architecture=conv"])
    assert conv.train.learning_rate == 0.0005  # conv stays at chance at 0.002
    assert load_config(None, ["model.architecture=conv", "train.learning_rate=0.003"]).train.learning_rate == 0.003
    assert load_config(None, ["model.architecture=conv", "train.learning_rate=auto"]).train.learning_rate == 0.0005
    save_config(conv, tmp_path / "config.yaml")
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["train"]["learning_rate"] == 0.0005  # a resumed run keeps the rate it started with
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  architecture: low_latency_conv\ntrain:\n  learning_rate: auto\n")
    assert load_config(path).train.learning_rate == 0.001


def test_the_older_smoothing_minimum_count_is_read_as_a_span_at_the_hop():
    cfg = load_config(None, ["smoothing.minimum_count=5", "smoothing.hop_ms=20"])
    assert cfg.smoothing.minimum_span_ms == 80.0 and cfg.smoothing.hop_ms == 20.0
    with pytest.raises(ConfigError, match="bad value in 'smoothing': give minimum_span_ms or the older"):
        load_config(None, ["smoothing.minimum_count=5", "smoothing.minimum_span_ms=80"])


@pytest.mark.parametrize("overrides, expected", [
    ((), False),  # tcn: off by default
    (("model.architecture=embedding",), True),  # the embedding head: on by default
    (("model.architecture=embedding", "model.input_normalization=false"), False),  # the wake-word recipe
    (("model.architecture=ds_cnn", "model.input_normalization=true"), True),
    (("model.architecture=embedding", "model.input_normalization=auto"), True),
])
def test_input_normalization_auto_is_on_for_the_embedding_head_only(overrides, expected):
    assert load_config(None, list(overrides)).model.input_normalization is expected


def test_input_normalization_from_a_form_as_text():
    """DEEPaaS sends form values as text: true/false/auto are read, anything else is named."""
    assert load_config(None, base={"model": {"input_normalization": "true"}}).model.input_normalization is True
    assert load_config(None, base={"model": {"architecture": "embedding", "input_normalization": "False"}}
                       ).model.input_normalization is False
    with pytest.raises(ConfigError, match="model.input_normalization: expected auto, true or false, got 'yes'"):
        load_config(None, base={"model": {"input_normalization": "yes"}})


@pytest.mark.parametrize("option", ["--data", "--config", "--arch", "--out", "--resume"])
def test_an_empty_kws_train_option_is_a_usage_error(option, tmp_path, monkeypatch):
    """--arch '' was silently ignored, --resume '' said 'no data: give --data', and --out '' trained
    into the current folder; each is now a usage error naming the option."""
    from click.testing import CliRunner

    from kws.trainer.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["--data", str(tmp_path)] if option not in ("--data", "--resume") else []
    res = CliRunner().invoke(main, args + [option, ""])
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1] == f"Error: Invalid value for {option}: is empty"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("threshold", [0, 1])
def test_a_threshold_that_never_detects_is_refused_when_training_starts(threshold, tmp_path):
    """smoothing.detection_threshold 0 (the first detection held for ever) or 1 (no detection) trained
    a whole run into a model kws-listen and kws-mine then refused to run at that threshold. kws-train
    refuses it before anything is written, naming the file or --set and the key; a run already
    trained with it still loads (kws-convert, kws-mine and kws-eval read its config.yaml)."""
    from click.testing import CliRunner

    from kws.trainer.cli import main
    from kws.trainer.config import check_new_run

    path = tmp_path / "c.yaml"
    path.write_text(f"smoothing:\n  detection_threshold: {threshold}\n")
    assert load_config(path).smoothing.detection_threshold == threshold  # an old run's config loads
    why = "at 0 the first detection is held for ever" if threshold == 0 else "no score is above 1"
    for args, where in ((["--config", str(path)], str(path)),
                        (["--set", f"smoothing.detection_threshold={threshold}"],
                         f"--set smoothing.detection_threshold={threshold}")):
        res = CliRunner().invoke(main, ["--data", str(tmp_path), *args, "--out", str(tmp_path / "run")])
        lines = res.output.strip().splitlines()
        assert res.exit_code == 1 and len(lines) == 1, res.output
        assert lines[0].startswith(f"Error: {where}: smoothing.detection_threshold must be between 0 and 1, "
                                   f"not {threshold}: {why}"), lines[0]
        assert not (tmp_path / "run").exists()
    check_new_run(load_config(path, ["smoothing.detection_threshold=0.5"]), path)  # a --set mends the file's


@pytest.mark.parametrize("overrides, warning", [
    # masks are drawn 0..width wide: one as wide as the clip (98 frames) or the features (40) blanked it all
    (["augment.time_mask_frames=120"], "augment.time_mask_frames 120 is not narrower than the clip's 98 frames: "
                                       "one mask could blank the whole input, so masks are drawn at most 97 wide"),
    (["features.clip_ms=100"], "augment.time_mask_frames 10 is not narrower than the clip's 8 frames: "
                               "one mask could blank the whole input, so masks are drawn at most 7 wide"),
    (["augment.freq_mask_bins=40"], "augment.freq_mask_bins 40 is not narrower than features.num_features (40): "
                                    "one mask could blank the whole input, so masks are drawn at most 39 wide"),
    # linear warm-up over epoch + 1 of warmup_epochs + 1 steps: the last epoch trains at 3/4 of the peak
    (["train.epochs=3", "train.warmup_epochs=3", "train.learning_rate=0.002"],
     "train.warmup_epochs 3 is not below train.epochs 3: the learning rate never reaches its peak 0.002 "
     "(at most 0.0015); lower train.warmup_epochs or raise train.epochs"),
])
def test_settings_that_do_not_do_what_they_say_are_warned_of(overrides, warning):
    from kws.trainer.config import config_warnings

    assert config_warnings(load_config(None, overrides)) == [warning]


def test_default_settings_and_masks_turned_off_warn_of_nothing():
    from kws.trainer.config import config_warnings

    assert config_warnings(load_config(None)) == []
    assert config_warnings(load_config(None, ["augment.time_masks=0", "augment.time_mask_frames=500"])) == []
