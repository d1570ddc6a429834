"""The manifest loader refuses what a stranger's manifest.json can carry: paths out of its folder,
absurd frontend/smoothing numbers, control characters in labels; and, fuzzed, never raises
anything but ManifestError."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kws.edge.errors import ManifestError
from kws.edge.frontend import FrontendConfig
from kws.edge.manifest import Manifest, ModelEntry, TensorSpec, load_manifest, save_manifest

LABELS = ("_silence_", "_unknown_", "up", "down")
FUZZ_EXAMPLES = 200


def valid_dict() -> dict:
    fe = FrontendConfig()
    entry = ModelEntry("model_int8.tflite", TensorSpec((1, *fe.input_shape), "int8", 0.1, -3),
                       TensorSpec((1, len(LABELS)), "int8", 1 / 256, -128), "ab" * 32, 1234)
    return Manifest(LABELS, fe, {"int8": entry}, thresholds={"up": 0.8}).to_dict()


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_valid_manifest_round_trips(tmp_path):
    manifest = load_manifest(write(tmp_path, valid_dict()))
    assert manifest.labels == LABELS and manifest.threshold_for("up") == 0.8
    assert load_manifest(save_manifest(manifest, tmp_path / "again.json")) == manifest


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../etc/passwd", "../other/model_int8.tflite",
                                  "sub/model_int8.tflite", "..", "", "C:\\model.tflite", "a\0b"])
def test_model_file_must_stay_in_the_manifest_folder(tmp_path, name):
    data = valid_dict()
    data["models"]["int8"]["file"] = name
    with pytest.raises(ManifestError, match=r"models\.int8\.file must be a file name inside the manifest's folder"):
        load_manifest(write(tmp_path, data))


@pytest.mark.parametrize("section, key, value, expected", [
    ("frontend", "sample_rate", 1e9, r"frontend\.sample_rate must be in \[1000, 192000\], got 1000000000\.0"),
    ("frontend", "sample_rate", 16000.5, r"frontend\.sample_rate must be a whole number"),
    ("frontend", "clip_ms", 10 ** 7, r"frontend\.clip_ms must be in"),
    ("frontend", "num_mel_bins", 100000, r"frontend\.num_mel_bins must be in \[1, 512\]"),
    ("frontend", "stride_ms", True, r"frontend\.stride_ms must be a number, got True"),
    ("frontend", "window_ms", "30", r"frontend\.window_ms must be a number, got '30'"),
    ("smoothing", "hop_ms", 0, r"smoothing\.hop_ms must be in \[1, 10000\], got 0"),
    ("smoothing", "minimum_count", 10 ** 9, r"smoothing\.minimum_count must be in"),
    ("smoothing", "average_window_ms", -5, r"smoothing\.average_window_ms must be in"),
    ("smoothing", "detection_threshold", 2, r"smoothing\.detection_threshold must be in \[0, 1\]"),
    ("smoothing", "release_fraction", 2, r"smoothing\.release_fraction must be in \[0, 1\]"),
    ("smoothing", "release_ms", -1, r"smoothing\.release_ms must be in"),
    ("smoothing", "minimum_span_ms", 1e6, r"smoothing\.minimum_span_ms must be in"),
    ("smoothing", "minimum_span_ms", 900, r"smoothing: minimum_span_ms \(900\) must not exceed average_window_ms"),
])
def test_numbers_are_range_checked_with_the_field_named(tmp_path, section, key, value, expected):
    data = valid_dict()
    data[section][key] = value
    with pytest.raises(ManifestError, match=expected) as err:
        load_manifest(write(tmp_path, data))
    assert "\n" not in str(err.value)


def test_a_version_1_manifest_with_minimum_count_loads_as_a_span_at_its_hop(tmp_path):
    data = valid_dict()
    assert data["version"] == 2 and "minimum_count" not in data["smoothing"]
    data["version"] = 1
    smoothing = {k: v for k, v in data["smoothing"].items() if k not in ("minimum_span_ms", "release_fraction",
                                                                       "release_ms")}
    data["smoothing"] = {**smoothing, "minimum_count": 4, "hop_ms": 30.0}
    manifest = load_manifest(write(tmp_path, data))
    assert manifest.smoothing.minimum_span_ms == 90.0 and manifest.smoothing.hop_ms == 30.0
    assert manifest.smoothing.release_ms == 100.0  # the release rule applies to old models too
    # written back (e.g. by kws-eval --calibrate) in the current schema, under the current version
    again = json.loads(save_manifest(manifest, tmp_path / "again.json").read_text())
    assert again["version"] == 2 and again["smoothing"]["minimum_span_ms"] == 90.0
    assert "minimum_count" not in again["smoothing"]
    data["smoothing"]["minimum_span_ms"] = 90.0
    with pytest.raises(ManifestError, match="smoothing: give minimum_span_ms or the older minimum_count, not both"):
        load_manifest(write(tmp_path, data))


def test_infinite_numbers_are_refused(tmp_path):
    text = json.dumps(valid_dict()).replace('"sample_rate": 16000', '"sample_rate": 1e400')
    with pytest.raises(ManifestError, match=r"sample_rate must be a finite number"):
        load_manifest(write(tmp_path, text))


@pytest.mark.parametrize("label, expected", [
    ("a\x1b[2Jb", "control"), ("line\nbreak", "control"), ("x" * 65, "1..64"), (7, "printable"), ("", "1..64")])
def test_labels_are_printable_and_bounded(tmp_path, label, expected):
    data = valid_dict()
    data["labels"][3] = label
    with pytest.raises(ManifestError, match=rf"labels\[3\] must be .*{expected}"):
        load_manifest(write(tmp_path, data))


def test_shell_characters_in_labels_load_as_plain_text(tmp_path):
    """Printable labels are data: the loader keeps them, --on-detect never hands them to a shell."""
    data = valid_dict()
    data["labels"][3] = "a;touch /tmp/x $(id)"
    assert load_manifest(write(tmp_path, data)).labels[3] == "a;touch /tmp/x $(id)"


def test_not_utf8_and_too_deep_are_manifest_errors(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_bytes(b'{"labels": ["\xff"]}')
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(path)
    with pytest.raises(ManifestError, match="manifest"):
        load_manifest(write(tmp_path, "[" * 100_000 + "]" * 100_000))


# ------------------------------------------------------------------ fuzz
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10)


def _paths(value, prefix=()):
    """Every (path) to a value inside nested dicts/lists."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(valid_dict()) if p]


def _load_text(tmp_path: Path, text: str) -> None:
    try:
        load_manifest(write(tmp_path, text))
    except ManifestError as exc:
        assert str(exc) and "\n" not in str(exc).strip()


FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(json.dumps(valid_dict()))))
def test_fuzz_truncated_manifest(tmp_path, cut):
    _load_text(tmp_path, json.dumps(valid_dict())[:cut])


@FUZZ
@given(path=st.sampled_from(ALL_PATHS), value=JSON_VALUES)
def test_fuzz_field_values_and_types(tmp_path, path, value):
    data = copy.deepcopy(valid_dict())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    _load_text(tmp_path, json.dumps(data))


def test_a_key_with_a_newline_is_named_on_one_line(tmp_path):
    """The fuzz found it: a models entry keyed "\\n" made the error two lines; the key is escaped."""
    data = copy.deepcopy(valid_dict())
    data["models"] = {"\n": None}
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, json.dumps(data)))
    assert "\n" not in str(err.value) and "models.\\n" in str(err.value)


@FUZZ
@given(path=st.sampled_from(ALL_PATHS))
def test_fuzz_missing_fields(tmp_path, path):
    data = copy.deepcopy(valid_dict())
    node = data
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    _load_text(tmp_path, json.dumps(data))


def test_a_manifest_listing_no_model_is_named_when_a_model_is_opened(tmp_path):
    """An edited manifest with an empty models section loaded, and kws-listen -m <folder> then said
    'Error: manifest lists no model files' without naming the manifest; given the .tflite beside it,
    'manifest does not describe model_int8.tflite'."""
    from kws.edge.model_loader import open_model

    data = valid_dict()
    data["models"] = {}
    path = write(tmp_path, data)
    with pytest.raises(ManifestError) as err:
        open_model(tmp_path)
    assert str(err.value) == f"{path}: lists no model files (its models section is empty; re-run kws-convert)"
    (tmp_path / "model_int8.tflite").write_bytes(b"")
    with pytest.raises(ManifestError) as err:
        open_model(tmp_path / "model_int8.tflite")
    assert str(err.value) == f"{path}: does not describe model_int8.tflite (it lists: nothing)"


def test_ignore_labels_may_not_silence_every_keyword_or_name_a_label_the_model_lacks(tmp_path):
    """A hand-edited ignore_labels listing every keyword loaded, and kws-listen then ran forever
    without a word; a misspelt label in it was taken as it stood, so the label meant went on firing.
    The background names stay allowed without being labels: every manifest lists them by default."""
    path = tmp_path / "manifest.json"
    data = valid_dict()
    data["labels"] = ["up", "down"]  # a model trained without the background labels ...
    assert load_manifest(write(tmp_path, data)).ignore_labels == ("_silence_", "_unknown_")  # ... still loads
    data = valid_dict()
    data["ignore_labels"] = ["_silence_", "_unknown_", "up", "down"]
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, data))
    assert str(err.value) == (f"{path}: ignore_labels lists every keyword (up, down), so nothing would ever be "
                              "detected: leave out the ones to detect")
    data["ignore_labels"] = ["up", "down"]  # the background labels would be all that is left to report
    with pytest.raises(ManifestError, match="ignore_labels lists every keyword"):
        load_manifest(write(tmp_path, data))
    data["ignore_labels"] = ["_silence_", "_unknown_", "dwon"]
    with pytest.raises(ManifestError) as err:
        load_manifest(write(tmp_path, data))
    assert str(err.value) == (f"{path}: ignore_labels names unknown label(s) dwon "
                              "(the model's labels: _silence_, _unknown_, up, down)")
    data["ignore_labels"] = ["_silence_", "_unknown_", "down"]
    assert load_manifest(write(tmp_path, data)).ignore_labels == ("_silence_", "_unknown_", "down")


def test_kws_eval_names_a_manifest_that_lists_no_model(tmp_path):
    """kws-eval -m of such a folder said 'manifest: lists no model files', naming no file, when it
    looked up the model file whose scores it measures."""
    from click.testing import CliRunner

    from kws.evaluation.eval_cli import main as eval_main

    data = valid_dict()
    data["models"] = {}
    path = write(tmp_path, data)
    (tmp_path / "words").mkdir()
    res = CliRunner().invoke(eval_main, ["-m", str(tmp_path), "--keywords", str(tmp_path / "words")])
    assert res.exit_code == 1
    assert res.output == f"Error: {path}: lists no model files (its models section is empty; re-run kws-convert)\n"
