"""kws-convert for a run of the ``embedding`` family: the frozen speech embedding as int8 and float
TFLite, the trained head as int8 and float TFLite, the mel frontend's constants, and a manifest of
``family: embedding`` (kws.edge.embedding_pipeline runs it).

The int8 pipeline's embedding follows ``convert.embedding_quantization``: ``dynamic`` (int8 weights,
float activations that the runtime quantizes as it runs) or ``full`` (full-integer, calibrated on mel
windows of the run's own training windows, kept by kws-train in ``RUN/embeddings/train.npz``). The
head's int8 model is full-integer, calibrated on the run's training embeddings. Each pipeline
(int8: int8 embedding -> int8 head; float: float -> float) is scored on the test split's windows with
the edge runtime, and the int8 one must pass the same accuracy guard as any int8 model; where it
fails, the manifest serves the float pipeline and the int8 head is kept as
``model_int8.rejected.tflite``.
"""
from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kws.edge.embedding_frontend import (FFT_SIZE, MEL_BINS, MEL_CONSTANTS_FILE, MEL_HOP_SAMPLES, SAMPLE_RATE,
                                         WINDOW_SAMPLES, save_mel_constants)
from kws.edge.embedding_pipeline import HOP_MS
from kws.edge.frontend import FrontendConfig
from kws.edge.manifest import (MANIFEST_NAME, EmbeddingSection, Manifest, ModelEntry, atomic_write_bytes,
                               save_manifest)
from kws.edge.runtime import TFLiteModel
from kws.trainer.embedding_data import CACHE_DIR, Embedder, eval_windows
from kws.trainer.speech_embedding import KNOWN_SHA256, WHEEL_PACKAGE, WHEEL_VERSION

from . import opcheck
from .errors import AccuracyGuardError, FormatError, SourceError
from .evaluate import edge_python, run_tflite_runtime, scores
from .flatbuffer import parse_model
from .report import REPORT_FORMAT, REPORT_NAME, REPORT_VERSION, guard_failures
from .source import TEST_SEED_OFFSET, VALIDATION_SEED_OFFSET, TEST_SPLIT, FeatureSet, RunData

EMBEDDING_FILES = {"int8": "embedding_int8.tflite", "float": "embedding_float.tflite"}
HEAD_FILES = {"int8": "model_int8.tflite", "float": "model_float.tflite"}
HEAD_REJECTED_FILE = "model_int8.rejected.tflite"
EMBEDDING_FORMATS = ("int8", "float")
# convert.embedding_quantization -> what the int8 pipeline's embedding is, in words
EMBEDDING_SCHEMES = {"full": "int8 weights and activations",
                     "dynamic": "int8 weights, activations quantized by the runtime as it runs"}
EDGE_CHECK_WINDOWS = 64  # mel windows the edge environment's tflite-runtime runs the embedding on
WEIGHTS_PROVENANCE = {
    "name": "speech_embedding (Google; released on TF Hub under Apache-2.0)",
    "source": f"the ONNX conversion inside the {WHEEL_PACKAGE} {WHEEL_VERSION} wheel (melspectrogram.onnx, "
              "embedding_model.onnx); openWakeWord's README places its included pre-trained models under "
              "CC BY-NC-SA 4.0: check that statement, or take the weights from Google's own release, before "
              "shipping commercially",
    "onnx_sha256": KNOWN_SHA256,
}


def frontend_description(mel_matrix: np.ndarray) -> FrontendConfig:
    """The manifest's frontend section for this family (descriptive: the mel frames are computed from
    the constants file): 16 kHz, a head window of WINDOW_SAMPLES, 32 log-mel bins every 10 ms over the
    band the mel matrix covers."""
    used = np.flatnonzero(mel_matrix.sum(axis=1) > 0)
    hz = SAMPLE_RATE / FFT_SIZE
    return FrontendConfig(sample_rate=SAMPLE_RATE, clip_ms=int(round(WINDOW_SAMPLES * 1000 / SAMPLE_RATE)),
                          window_ms=FFT_SIZE * 1000 / SAMPLE_RATE, stride_ms=MEL_HOP_SAMPLES * 1000 / SAMPLE_RATE,
                          feature_type="log_mel", num_features=MEL_BINS, num_mel_bins=MEL_BINS,
                          lower_hz=float(used[0] * hz), upper_hz=float(used[-1] * hz))


def _agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """How close ``other`` embeddings are to ``reference`` ones: max abs error, worst and mean cosine."""
    cos = np.sum(reference * other, 1) / (np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1) + 1e-9)
    return {"max_abs_diff": round(float(np.abs(reference - other).max()), 6),
            "cosine_min": round(float(cos.min()), 6), "cosine_mean": round(float(cos.mean()), 6)}


def convert_embedding_run(src, formats: tuple[str, ...], out: Path, staging: Path, max_drop: float,
                          check_edge: bool, say: Callable[[str], None], t_start: float) -> Any:
    """The whole conversion of an embedding-family run into ``staging``, then moved to ``out``; returns
    a ConvertResult (raises AccuracyGuardError after writing, as for other models)."""
    from kws.trainer.tfimport import import_tensorflow

    from .convert import _deliver, _evaluate_tflite, _json_default, _sha256, destination
    from .tflite import batch1_model, convert_dynamic, convert_float, convert_int8

    tf = import_tensorflow()
    import keras

    cfg, labels = src.cfg, src.labels
    wanted = [f for f in EMBEDDING_FORMATS if f in formats]
    skipped = [f for f in formats if f not in EMBEDDING_FORMATS]
    if not wanted:
        raise FormatError(f"--formats {','.join(formats)}: a model of the embedding family converts to int8 and "
                          "float TFLite only")
    if skipped:
        say(f"{', '.join(skipped)}: not made for the embedding family (its embedding runs on Linux-class "
            "devices, not in TFLite Micro)")
    cache = src.path / CACHE_DIR / "train.npz"
    if not cache.is_file():
        raise SourceError(f"{cache}: missing (kws-train keeps the run's training embeddings there; "
                          f"resume or retrain the run)")
    with np.load(cache, allow_pickle=False) as data:
        train_x, calibration_mel = data["x"], data["calibration_mel"]
    try:
        head = keras.models.load_model(src.run.model, compile=False)
    except Exception as exc:  # noqa: BLE001 - zip, h5 and deserialization errors all mean "corrupt"
        raise SourceError(f"{src.run.model}: cannot load the Keras model: {str(exc).splitlines()[0][:200]}") from None
    if tuple(head.input_shape[1:]) != tuple(train_x.shape[1:]) or int(head.output_shape[-1]) != len(labels):
        raise SourceError(f"{src.run.model}: maps {tuple(head.input_shape[1:])} -> {head.output_shape[-1]} labels; "
                          f"the run's embeddings are {tuple(train_x.shape[1:])} and it has {len(labels)} labels")
    say(f"model: {src.path} (embedding head, labels {', '.join(labels)})")
    embedder = Embedder(cfg.model.embedding_weights)
    data = RunData(src, say)
    offset = TEST_SEED_OFFSET if data.eval_split == TEST_SPLIT else VALIDATION_SEED_OFFSET
    windows = eval_windows(data.eval_items, data.clips, cfg, data.backgrounds, seed=cfg.train.seed + offset)
    mel = embedder.mel_windows(windows)
    keras_emb = embedder.embed(mel)
    y = np.array([labels.index(i.label) for i in data.eval_items], np.int64)
    groups = tuple(i.group for i in data.eval_items)
    by_label = {l: int((y == k).sum()) for k, l in enumerate(labels) if (y == k).any()}
    keras_x = keras_emb.reshape(len(windows), *train_x.shape[1:])
    keras_probs = np.asarray(head.predict(keras_x, verbose=0), np.float32)
    keras_scores = scores(keras_probs, y, labels, groups)

    produced: list[str] = []

    def write(name: str, payload: bytes) -> Path:
        atomic_write_bytes(staging / name, payload)  # an OSError (a full disk) names the file
        produced.append(name)
        return staging / name

    timings: dict[str, float] = {}
    artifacts: dict[str, dict[str, Any]] = {}
    heads: dict[str, ModelEntry] = {}
    embeddings: dict[str, ModelEntry] = {}
    failures: list[str] = []
    guard: dict[str, Any] = {"checked": False, "max_accuracy_drop": max_drop, "reference": "model.keras on float embeddings",
                             "compared": "int8 embedding -> int8 head", "passed": None, "failures": []}
    rng = np.random.default_rng(cfg.train.seed)
    head_cal = train_x[np.sort(rng.choice(len(train_x), size=min(len(train_x), cfg.convert.calibration_clips),
                                          replace=False))]
    scheme = cfg.convert.embedding_quantization
    for key in wanted:
        t0 = time.time()
        how = EMBEDDING_SCHEMES[scheme] + (f", calibrated on {len(calibration_mel)} mel windows of the training "
                                           "windows" if scheme == "full" else "")
        say(f"{key}: converting the speech embedding" + (f" ({how})" if key == "int8" else ""))
        if key == "float":
            emb_blob = convert_float(batch1_model(embedder.model))
        elif scheme == "full":
            emb_blob = convert_int8(batch1_model(embedder.model), calibration_mel)
        else:
            emb_blob = convert_dynamic(batch1_model(embedder.model))
        emb_path = write(EMBEDDING_FILES[key], emb_blob)
        emb_model = TFLiteModel(emb_path, num_threads=1)
        tfl_emb = emb_model.predict_batch(mel).reshape(keras_emb.shape)
        uses = opcheck.op_uses(parse_model(emb_blob, EMBEDDING_FILES[key]))
        bad_ops = opcheck.unsupported(uses)
        art: dict[str, Any] = {"file": EMBEDDING_FILES[key], "size_bytes": len(emb_blob),
                               "quantization": scheme if key == "int8" else "none",
                               "vs_keras": _agreement(keras_emb, tfl_emb), "ops": [u.to_dict() for u in uses],
                               "ops_supported": not bad_ops, "ops_unsupported": bad_ops}
        if bad_ops:
            failures.append(f"embedding {key}: ops not supported by {opcheck.OLDEST_RUNTIME}: {'; '.join(bad_ops)}")
        if check_edge:
            if edge_python() is not None:
                say(f"{key}: loading {EMBEDDING_FILES[key]} with tflite-runtime in the edge environment")
            art["tflite-runtime"] = run_tflite_runtime(emb_path, mel[:EDGE_CHECK_WINDOWS], None,
                                                       tfl_emb[:EDGE_CHECK_WINDOWS]).to_dict()
        embeddings[key] = ModelEntry(EMBEDDING_FILES[key], emb_model.input_spec, emb_model.output_spec,
                                     _sha256(emb_blob), len(emb_blob))
        artifacts[f"embedding_{key}"] = art
        say(f"{key}: converting the head" + (f" (calibrated on {len(head_cal)} training embeddings)" if key == "int8" else ""))
        head_blob = convert_int8(batch1_model(head), head_cal) if key == "int8" else convert_float(batch1_model(head))
        head_path = write(HEAD_FILES[key], head_blob)
        ev = FeatureSet(tfl_emb.reshape(keras_x.shape), y, data.eval_split, by_label, groups)
        head_art, sc, entry = _evaluate_tflite(key, HEAD_FILES[key], head_blob, head_path, ev, keras_scores, labels,
                                               check_edge, say)
        head_art["pipeline"] = f"{EMBEDDING_FILES[key]} -> {HEAD_FILES[key]}"
        if key == "int8":
            guard["checked"] = True
            guard_fail = guard_failures(keras_scores, sc, max_drop) if sc is not None else \
                [f"ai-edge-litert cannot run {HEAD_FILES[key]}"]
            guard["failures"], guard["passed"] = guard_fail, not guard_fail
            guard["silence_and_unknown_as_one"] = keras_scores.keyword_view is not None
            head_art["status"] = "rejected" if guard_fail else "ok"
            if guard_fail:
                (staging / HEAD_FILES[key]).rename(staging / HEAD_REJECTED_FILE)
                produced[produced.index(HEAD_FILES[key])] = HEAD_REJECTED_FILE
                head_art["file"] = HEAD_REJECTED_FILE
                failures.extend(f"int8 {f}" for f in guard_fail)
                entry = None
        if entry is not None:
            heads[key] = entry
        artifacts[key] = head_art
        timings[f"{key}_s"] = round(time.time() - t0, 2)

    if not heads:
        raise AccuracyGuardError(f"{failures[0] if failures else 'no usable model'}; nothing to serve")
    consts = embedder.mel.consts
    save_mel_constants(consts, staging / MEL_CONSTANTS_FILE)
    produced.append(MEL_CONSTANTS_FILE)
    mel_bytes = (staging / MEL_CONSTANTS_FILE).read_bytes()
    smoothing = cfg.smoothing
    if abs(smoothing.hop_ms / HOP_MS - round(smoothing.hop_ms / HOP_MS)) > 1e-9 or smoothing.hop_ms < HOP_MS:
        import dataclasses

        say(f"hop: the embedding family scores every {HOP_MS:g} ms; the manifest's hop is {HOP_MS:g} ms "
            f"(the run's smoothing.hop_ms was {smoothing.hop_ms:g})")
        smoothing = dataclasses.replace(smoothing, hop_ms=HOP_MS)
    section = EmbeddingSection(mel_constants=MEL_CONSTANTS_FILE, mel_sha256=_sha256(mel_bytes),
                               mel_size_bytes=len(mel_bytes), weights=dict(WEIGHTS_PROVENANCE),
                               models={k: e for k, e in embeddings.items() if k in heads})
    manifest = Manifest(labels=tuple(labels), frontend=frontend_description(consts.mel_matrix), models=heads,
                        smoothing=smoothing, config_digest=cfg.digest(), embedding=section,
                        extra={"converted_by": "kws-convert", "source_run": str(src.path.resolve()),
                               "architecture": cfg.model.architecture, "tensorflow": tf.__version__,
                               "test_accuracy": {k: artifacts[k].get("accuracy") for k in heads},
                               "keras_test_accuracy": keras_scores.accuracy,
                               "embedding_quantization": scheme,
                               "int8_calibration": {"embedding_mel_windows": int(len(calibration_mel))
                                                    if scheme == "full" else 0,
                                                    "head_embeddings": int(len(head_cal))}})
    save_manifest(manifest, staging / MANIFEST_NAME)
    produced.append(MANIFEST_NAME)
    owned = [MANIFEST_NAME, REPORT_NAME, MEL_CONSTANTS_FILE, HEAD_REJECTED_FILE, *EMBEDDING_FILES.values(),
             *HEAD_FILES.values()]
    dest = destination(out, produced + [REPORT_NAME], owned, failures)
    report = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION, "family": "embedding",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": str(src.path.resolve()), "architecture": cfg.model.architecture, "labels": list(labels),
        "formats": list(formats), "out": str(dest.resolve()), "config_digest": cfg.digest(),
        "evaluation": {"split": data.eval_split, "clips": int(len(y)), "by_label": by_label},
        "keras": {"file": "model.keras", **keras_scores.to_dict()}, "artifacts": artifacts, "guard": guard,
        "failures": failures, "not_made": skipped, "files": sorted(produced + [REPORT_NAME]),
        "timings": {**timings, "total_s": round(time.time() - t_start, 2)}, "tensorflow": tf.__version__,
    }
    from kws.edge.manifest import atomic_write_text

    atomic_write_text(staging / REPORT_NAME, json.dumps(report, indent=1, default=_json_default) + "\n")
    produced.append(REPORT_NAME)
    return _deliver(staging, out, dest, produced, owned, report, failures)
