"""The DEEPaaS V2 model entry point (``deepaas.v2.model: kws``), as the seed exposed it.

``deepaas-run --listen-ip 127.0.0.1`` then serves ``/v2/models/kws/`` (metadata),
``/v2/models/kws/train/`` (train with the config's parameters as arguments) and
``/v2/models/kws/predict/`` (a WAV upload ``data`` or a ``url``; top-3 ``{label, probability}``).
Client errors are 4xx with ``{"error": reason}`` (no server folder names); URLs (predict, and a
training ``data_path``) reach only public addresses unless ``$KWS_ALLOW_PRIVATE_URLS`` is ``1`` or
lists networks.
The model is ``models/api`` if present, else the newest model in ``./models`` or ``$KWS_MODELS_DIR``;
it is looked up again on every prediction, so a model trained through the API is used next.
DEEPaaS runs train/predict/warm in worker processes; nothing here imports TensorFlow at import time.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os
import re
import typing
from pathlib import Path
from typing import Any

from aiohttp import web
from marshmallow import ValidationError, fields, validate

import kws
from kws.edge.errors import KwsError, ModelNotFoundError
from kws.edge.locate import COMPLETE_MARKERS, SINGLE_MODEL, default_model, models_dir
from kws.edge.manifest import MANIFEST_NAME, load_manifest

from .fetch import ALLOW_ALL, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, UrlPolicy, fetch_url
from .predictor import DEFAULT_TOP_K, Predictor, read_labels

LOG = logging.getLogger(__name__)
MODEL_NAME = "kws"
AUTHOR = "kws contributors"
LICENSE = "MIT"
DESCRIPTION = ("Keyword spotting: small convolutional models trained on folders of WAV files, "
               "predicting the top-3 keywords of a 1 s clip.")
ARG_SEPARATOR = "_"  # train argument names are <section>_<key>, e.g. train_epochs, data_wanted_words
# deepaas-run takes no options of ours: a lab set-up lets URLs reach its own network with this
ALLOW_PRIVATE_ENV = "KWS_ALLOW_PRIVATE_URLS"
QUERY_NAMES_LOCATION = "kws_query_names"  # a webargs location registered below: all query argument names
ARGUMENT_CHECK = "kws_argument_check"  # not <section>_<key> of any config section: never reaches the config
NO_MODEL_MESSAGE = "no model to predict with yet: train one first (POST /v2/models/kws/train/)"
# an absolute path in a message (not the path part of a URL): replaced before a client sees it
SERVER_PATH_RE = re.compile(r"(?<![\w:/.])/[^\s'\"():,]+")
HIDDEN_PATH = "<server path>"


class _ClientError:
    """An aiohttp HTTP error whose body is JSON ``{"error": message}``, picklable so that it comes back
    from DEEPaaS's worker process as itself (DEEPaaS answers anything else with a bare 500)."""

    def __init__(self, message: str):
        super().__init__(text=json.dumps({"error": message}), content_type="application/json")
        self.message = message

    def __reduce__(self):
        return (type(self), (self.message,))

    def __str__(self) -> str:
        return self.message


class BadRequest(_ClientError, web.HTTPBadRequest):
    """400 with the reason."""


class NoModel(_ClientError, web.HTTPNotFound):
    """404: there is no model to predict with yet."""


def public_message(exc: BaseException, replacements: dict[str, str] | None = None) -> str:
    """The error's message for a client: known paths replaced by names, other absolute paths hidden."""
    message = str(exc)
    for path, name in (replacements or {}).items():
        message = message.replace(path, name)
    return SERVER_PATH_RE.sub(HIDDEN_PATH, message)


def url_policy() -> UrlPolicy:
    """Public addresses only, unless $KWS_ALLOW_PRIVATE_URLS is 1 (any address) or a comma-separated
    list of networks (e.g. 10.1.0.0/16) that URLs may reach as well (lab set-ups)."""
    value = os.environ.get(ALLOW_PRIVATE_ENV, "").strip()
    if value == "1":
        return ALLOW_ALL
    networks = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            LOG.warning("$%s: %r is not a network (like 10.1.0.0/16); ignored", ALLOW_PRIVATE_ENV, item)
    return UrlPolicy(allow_networks=tuple(networks), hint=f"{ALLOW_PRIVATE_ENV}=1 in deepaas-run's environment")

_predictor: Predictor | None = None
_predictor_key: tuple | None = None
# where a folder's converted model is described (a kws-convert folder, a run with dist/)
CONVERTED_MANIFESTS = tuple(m for m in COMPLETE_MARKERS if Path(m).name == MANIFEST_NAME)


def _current_model() -> Path | None:
    try:
        return default_model(need=SINGLE_MODEL)
    except ModelNotFoundError:
        return None


def get_metadata() -> dict[str, Any]:
    """Name, version, author, license, description, and the model predictions would use."""
    model = _current_model()
    return {
        "id": MODEL_NAME,
        "name": MODEL_NAME,
        "version": kws.__version__,
        "author": AUTHOR,
        "license": LICENSE,
        "description": DESCRIPTION,
        "models_dir": str(models_dir().resolve()),
        "model": str(model) if model else None,
        "labels": model_labels(model) if model else [],
    }


def model_labels(model: Path) -> list[str]:
    """The labels of a model folder: a training run's labels.txt, else its converted model's manifest
    (a kws-convert folder has no labels.txt); [] when neither can be read."""
    labels = read_labels(model)
    if labels:
        return labels
    for name in CONVERTED_MANIFESTS:
        if (model / name).is_file():
            try:
                return list(load_manifest(model / name).labels)
            except KwsError:
                return []
    return []


# ---------------------------------------------------------------- training

def _choices() -> dict[str, tuple[str, ...]]:
    """Allowed values of the config's enumerated strings."""
    from kws.edge.frontend import FEATURE_TYPES
    from kws.trainer.config import LR_SCHEDULES, OPTIMIZERS

    out = {"train_lr_schedule": LR_SCHEDULES, "train_optimizer": OPTIMIZERS,
           "features_feature_type": FEATURE_TYPES}
    try:
        from kws.trainer.models import MODEL_BUILDERS
        out["model_architecture"] = tuple(MODEL_BUILDERS)
    except ImportError:  # the registry needs TensorFlow; without it any name is passed on
        pass
    return out


def _field_for(annotation: Any, default: Any, description: str, choices: tuple[str, ...] | None):
    """A webargs (marshmallow) field for one config value; missing arguments keep the default."""
    meta = {"description": description}
    shown = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) if isinstance(default, tuple) else default
    if default is None and type(None) in typing.get_args(annotation):
        from kws.trainer.config import AUTO

        shown = AUTO
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        meta["description"] += f" (true, false or {AUTO})" if inner == [bool] else f" (a number, or {AUTO})"
    kwargs: dict[str, Any] = {"required": False, "load_default": shown, "metadata": meta}
    if choices:
        meta["enum"] = list(choices)
        kwargs["validate"] = validate.OneOf(list(choices))
    if annotation is bool:
        return fields.Bool(**kwargs)
    if annotation is int:
        return fields.Int(**kwargs)
    if annotation is float:
        return fields.Float(**kwargs)
    if typing.get_origin(annotation) is tuple:
        meta["description"] += " (comma-separated)"
        return fields.Str(**kwargs)
    return fields.Str(**kwargs)


def _query_names(request, name: str, field: fields.Field) -> list[str]:
    """A webargs location: the names of every query argument of the request."""
    return sorted(set(request.query.keys()))


def _argument_check(known: set[str]) -> fields.Field:
    """A field that sees every query argument name and rejects (422, naming them) those not in ``known``.

    DEEPaaS's parser looks up declared names only, so an unknown (misspelt) training argument would
    otherwise be dropped silently and the run trained with the default."""
    from webargs import aiohttpparser

    parser = aiohttpparser.parser
    if QUERY_NAMES_LOCATION not in parser.__location_map__:
        parser.location_handler(QUERY_NAMES_LOCATION)(_query_names)

    def check(names: list[str]) -> None:
        unknown = sorted(set(names) - known - {ARGUMENT_CHECK})
        if unknown:
            raise ValidationError(f"unknown training argument(s): {', '.join(unknown)} (arguments are "
                                  f"<section>_<key>, e.g. train_epochs)")

    return fields.List(fields.Str(), required=False, load_default=list, validate=check, metadata={
        "location": QUERY_NAMES_LOCATION, "description": "(set by the server: rejects unknown arguments; "
                                                         "a value given here is ignored)"})


def get_train_args() -> dict[str, fields.Field]:
    """One argument per config value, named <section>_<key> (as ``--set section.key=`` of kws-train),
    and a check that rejects any other argument."""
    from kws.trainer.config import Config

    hints = typing.get_type_hints(Config)
    choices = _choices()
    args: dict[str, fields.Field] = {}
    for section in dataclasses.fields(Config):
        cls = hints[section.name]
        sec_hints = typing.get_type_hints(cls)
        defaults = cls()
        for f in dataclasses.fields(cls):
            name = f"{section.name}{ARG_SEPARATOR}{f.name}"
            desc = f"{section.name}.{f.name}"
            if name == "data_path":
                desc = "data folder (one sub-folder of WAVs per label) or URL of a .tar.gz holding them"
            # a field whose default is None ("auto") is resolved per architecture when the run is
            # configured, so the form offers auto rather than the value the default architecture gets
            default = None if f.default is None else getattr(defaults, f.name)
            args[name] = _field_for(sec_hints[f.name], default, desc, choices.get(name))
    args[ARGUMENT_CHECK] = _argument_check(set(args))
    return args


def config_from_args(kwargs: dict[str, Any]):
    """The Config of a training request; arguments not given (or None) keep their defaults."""
    from kws.trainer.config import Config, load_config

    sections: dict[str, dict[str, Any]] = {}
    names = {s.name for s in dataclasses.fields(Config)}
    for key, value in kwargs.items():
        section, _, name = key.partition(ARG_SEPARATOR)
        if section not in names or not name or value is None:
            continue
        sections.setdefault(section, {})[name] = value
    return load_config(None, base=sections)


def train(**kwargs: Any) -> dict[str, Any]:
    """Train like kws-train: a new timestamped run folder under the models folder. A data URL may
    reach only public addresses (unless $KWS_ALLOW_PRIVATE_URLS=1)."""
    from kws.trainer.config import check_new_run
    from kws.trainer.fetch import DownloadOptions
    from kws.trainer.train import train as run_training

    try:
        cfg = config_from_args(kwargs)
        check_new_run(cfg, "the training request")  # as kws-train: no run that can never detect usefully
        if not cfg.data.path:
            raise BadRequest("data_path is required: a folder of WAV folders or a URL of a .tar.gz")
        allow = url_policy().allow_private
        result = run_training(cfg, out=None, quiet=True, download=DownloadOptions(allow_private_urls=allow))
    except (KwsError, ValueError) as exc:
        raise BadRequest(public_message(exc)) from None
    metrics = result.metrics or {}
    summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}
    for split in ("train", "validation", "test"):  # each split's accuracy, and the test's per speaker
        report = metrics.get(split)
        if isinstance(report, dict) and "accuracy" in report:
            summary[f"{split}_accuracy"] = report["accuracy"]
            if split == "test" and report.get("by_speaker"):
                summary["test_by_speaker"] = report["by_speaker"]
    return {"model": str(result.run_dir), "labels": read_labels(result.run_dir), "metrics": summary}


# ---------------------------------------------------------------- prediction

def _predictor_for_current() -> Predictor:
    """The loaded model of the current default model, reloaded when that changes."""
    global _predictor, _predictor_key
    model = default_model(need=SINGLE_MODEL)
    key = _model_key(model)
    if _predictor is None or key != _predictor_key:
        _predictor, _predictor_key = Predictor(model), key
    return _predictor


def _model_key(model: Path) -> tuple:
    """What changes when the folder's model is replaced: its path and each marker file's inode, size and
    modification time (kws-convert and kws-train write model.keras / manifest.json last, so a new model
    in the same folder, a copied-in one included, changes at least one of them)."""
    stamps = []
    for name in COMPLETE_MARKERS:
        try:
            st = (model / name).stat()
        except OSError:
            continue
        stamps.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
    return (str(model.resolve()), tuple(stamps))


def warm() -> None:
    """Load the current model in the worker process (no model yet is fine)."""
    try:
        _predictor_for_current()
    except ModelNotFoundError as exc:
        LOG.warning("no model to warm: %s", exc)
    except KwsError as exc:  # a damaged default model: the server still starts, predictions say why
        LOG.warning("cannot load the default model: %s", exc)


def get_predict_args() -> dict[str, fields.Field]:
    return {
        "data": fields.Field(required=False, load_default=None, metadata={
            "description": "WAV file to classify", "location": "form", "type": "file"}),
        "url": fields.Str(required=False, load_default=None, metadata={
            "description": "http(s) URL of a WAV file to classify"}),
        "top_k": fields.Int(required=False, load_default=DEFAULT_TOP_K, validate=validate.Range(1, 100),
                            metadata={"description": "how many labels to return"}),
    }


def predict(**kwargs: Any) -> dict[str, Any]:
    """Top-k ``{label, probability}`` of an uploaded WAV (``data``) or a ``url``. Client errors are
    4xx with the reason (no server folder names); the upload's temporary file is always removed."""
    upload, url = kwargs.get("data"), kwargs.get("url")
    tmp = getattr(upload, "filename", None)
    name = getattr(upload, "original_filename", None) or "upload"
    try:
        top_k = kwargs.get("top_k") or DEFAULT_TOP_K
        if bool(upload) == bool(url):
            raise BadRequest("give exactly one of: data (a WAV upload) or url")
        try:
            predictor = _predictor_for_current()
        except ModelNotFoundError:
            raise NoModel(NO_MODEL_MESSAGE) from None
        if upload:
            result = predictor.predict_file(tmp, top_k)
        else:
            name = url
            data = fetch_url(url, DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_S, url_policy())
            result = predictor.predict_fetched(data, top_k)
    except KwsError as exc:
        raise BadRequest(public_message(exc, {tmp: name} if tmp else None)) from None
    finally:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
    return {"input": name, "model": str(predictor.path), "labels": result.labels}
