"""Shared fixtures: a tiny synthetic dataset and a model trained on it once per test session."""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(TESTS_DIR))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite sends Ctrl-C to itself and to the tools it starts. A suite started as a background job
# (`make test &`, nohup) inherits SIGINT ignored, and every process it starts would ignore it too;
# Python's own handler here gives the children the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from audio_fixtures import make_dataset  # noqa: E402

# Settings that train the fixture model in ~15 s on 2 cores and reach >90% on its synthetic words.
FIXTURE_WORDS = ("up", "down", "beep")
# The shared fixture run is the earlier default (ds_cnn, raw-volume background) that most tests were
# written against; tests/test_streaming.py trains its own tcn (today's default architecture).
FIXTURE_OVERRIDES = ("train.epochs=8", "train.batch_size=16", "train.seed=3", "model.architecture=ds_cnn",
                     "augment.background_snr_db=[]")


@pytest.fixture(scope="session", autouse=True)
def isolated_models_dir(tmp_path_factory):
    """Runs started without --out go to a temp models folder, never the checkout's ./models."""
    path = tmp_path_factory.mktemp("default_models")
    old = os.environ.get("KWS_MODELS_DIR")
    os.environ["KWS_MODELS_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("KWS_MODELS_DIR", None)
    else:
        os.environ["KWS_MODELS_DIR"] = old


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Three synthetic words (rising chirp, falling chirp, two-tone beep), _unknown_ bursts, noise."""
    return make_dataset(tmp_path_factory.mktemp("data") / "words")


@pytest.fixture(scope="session")
def trained_run(tiny_dataset, tmp_path_factory) -> Path:
    """A ds_cnn run folder trained on tiny_dataset (config, labels, ckpts, model.keras, metrics)."""
    from kws.trainer.config import load_config, with_data
    from kws.trainer.train import train

    cfg = with_data(load_config(None, FIXTURE_OVERRIDES), str(tiny_dataset), FIXTURE_WORDS)
    out = tmp_path_factory.mktemp("models") / "fixture_run"
    train(cfg, out=out, quiet=True)
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real noise and words); tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real audio not available: {SHARED_DATA} is missing (only present in the dev workspace)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def converted_run(trained_run, tmp_path_factory) -> Path:
    """The fixture run converted by kws-convert (int8 + float TFLite and manifest.json): the folder."""
    from kws.converters.convert import ConvertOptions, convert

    out = tmp_path_factory.mktemp("dist") / "dist"
    convert(ConvertOptions(model=str(trained_run), formats=("int8", "float"), out=str(out),
                           check_edge_env=False), say=lambda msg: None)
    return out
