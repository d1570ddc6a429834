"""firmware_notes/: the committed golden vectors match kws.edge.frontend, the generator reproduces
them, and the reference C frontend (built here with gcc) matches them too."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kws.edge.frontend import Frontend, FrontendConfig, StreamingFrontend

REPO = Path(__file__).resolve().parents[1]
NOTES = REPO / "firmware_notes"
GOLDEN = NOTES / "golden"
C_DIR = NOTES / "c_frontend"
FEATURE_ATOL = 1e-4        # numpy frontend vs committed golden features
C_MAX_REL = 1e-3           # C frontend: max abs error / feature range of the case
MAX_GOLDEN_BYTES = 1 << 20

sys.path.insert(0, str(GOLDEN))
_dont_write = sys.dont_write_bytecode
sys.dont_write_bytecode = True  # keep __pycache__ out of the golden folder
import make_golden  # noqa: E402

sys.dont_write_bytecode = _dont_write


def _index() -> dict:
    return json.loads((GOLDEN / "index.json").read_text(encoding="utf-8"))


CASES = _index()["cases"]
CASE_IDS = [c["name"] for c in CASES]


def _load(case: dict) -> tuple[FrontendConfig, np.ndarray, np.ndarray, np.ndarray]:
    index = _index()
    cfg = FrontendConfig.from_dict(index["configs"][case["config"]]["frontend"])
    pcm = np.fromfile(GOLDEN / case["pcm"]["file"], dtype="<i2")
    feats = np.fromfile(GOLDEN / case["features"]["file"], dtype="<f4").reshape(case["features"]["shape"])
    q = np.fromfile(GOLDEN / case["int8"]["file"], dtype=np.int8).reshape(case["int8"]["shape"])
    assert pcm.shape == tuple(case["pcm"]["shape"])
    return cfg, pcm, feats, q


def test_golden_folder_is_small_and_complete():
    files = [p for p in GOLDEN.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < MAX_GOLDEN_BYTES
    names = {p.name for p in files}
    for case in CASES:
        for key in ("pcm", "features", "int8"):
            assert case[key]["file"] in names
        assert f"{case['name']}.txt" in names
    assert {c["signal"] for c in CASES} == {"tone_1khz", "chirp", "noise", "silence"}
    assert {_index()["configs"][c["config"]]["frontend"]["feature_type"] for c in CASES} == {"mfcc", "log_mel"}


def test_default_config_derived_sizes_as_documented():
    derived = _index()["configs"]["mfcc"]["derived"]
    cfg = FrontendConfig()
    assert derived == make_golden.derived_sizes(cfg)
    assert (derived["window_samples"], derived["stride_samples"], derived["fft_size"]) == (480, 160, 512)
    assert (derived["num_frames"], cfg.num_features, derived["num_fft_bins"]) == (98, 40, 257)
    spec = (NOTES / "frontend_spec.md").read_text(encoding="utf-8")
    for text in ("480", "160", "512", "257", "98"):
        assert text in spec


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_golden_features_match_numpy_frontend(case):
    cfg, pcm, feats, q = _load(case)
    audio = pcm.astype(np.float32) / 32768.0
    got = Frontend(cfg).features(audio)
    assert got.shape == feats.shape == (cfg.num_frames, cfg.num_features)
    np.testing.assert_allclose(got, feats, rtol=0, atol=FEATURE_ATOL)
    # streaming in odd chunk sizes gives the same frames
    for chunk in (37, 160, 1000):
        sfe = StreamingFrontend(cfg)
        streamed = np.concatenate([sfe.push(audio[i:i + chunk]) for i in range(0, len(audio), chunk)])
        np.testing.assert_allclose(streamed, feats, rtol=0, atol=FEATURE_ATOL)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_golden_int8_matches_quantization_rule(case):
    cfg, pcm, feats, q = _load(case)
    scale, zp = case["int8"]["scale"], case["int8"]["zero_point"]
    got = make_golden.quantize(Frontend(cfg).features(pcm.astype(np.float32) / 32768.0), scale, zp)
    assert np.abs(got.astype(int) - q.astype(int)).max() <= 1
    # the rule itself, written out: clamp(round(x / scale) + zero_point, -128, 127)
    by_hand = np.clip(np.round(feats.astype(np.float64) / scale) + zp, -128, 127)
    assert np.abs(by_hand - q).max() <= 1
    if case["signal"] != "silence":
        assert len(np.unique(q)) > 10  # the example scale spreads real signals over many steps


def test_quantize_rounds_half_to_even_and_clamps():
    x = np.array([-1000.0, -0.5, 0.5, 1.5, 2.49, 1000.0], np.float32)
    assert make_golden.quantize(x, 1.0, 0).tolist() == [-128, 0, 0, 2, 2, 127]
    assert make_golden.quantize(np.array([0.0, 1.0], np.float32), 0.5, -3).tolist() == [-3, -1]


def test_generator_reproduces_committed_vectors(tmp_path):
    index = make_golden.generate(tmp_path)
    committed = _index()
    # feature min/max may move by float32 rounding on another machine; everything else is equal
    for new, old in zip(index["cases"], committed["cases"]):
        for key in ("min", "max"):
            assert abs(new["features"].pop(key) - old["features"].pop(key)) < FEATURE_ATOL
    assert json.loads(json.dumps(index)) == committed
    for name in committed["signals"]:
        a = np.fromfile(tmp_path / f"{name}.s16le", "<i2").astype(int)
        b = np.fromfile(GOLDEN / f"{name}.s16le", "<i2").astype(int)
        assert np.abs(a - b).max(initial=0) <= 1
    for case in committed["cases"]:
        assert (tmp_path / f"{case['name']}.txt").read_text() == (GOLDEN / f"{case['name']}.txt").read_text()


# --- the reference C implementation ---------------------------------------------------------

@pytest.fixture(scope="module")
def golden_check(tmp_path_factory) -> Path:
    """The C checker, built with the same flags as firmware_notes/c_frontend/Makefile."""
    gcc, make = shutil.which("gcc"), shutil.which("make")
    if gcc is None:
        pytest.skip("gcc not found: the reference C frontend cannot be built (apt-get install gcc)")
    build = tmp_path_factory.mktemp("c_frontend")
    if make is not None:
        proc = subprocess.run([make, "-C", str(C_DIR), f"BUILD={build}", "all"], capture_output=True, text=True)
    else:
        proc = subprocess.run([gcc, "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-O2", "-o",
                               str(build / "golden_check"), str(C_DIR / "golden_check.c"),
                               str(C_DIR / "kws_frontend.c"), "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, f"C build failed:\n{proc.stdout}\n{proc.stderr}"
    return build / "golden_check"


def _run_check(exe: Path, case_txt: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([str(exe), str(case_txt), *args], capture_output=True, text=True, timeout=60)
    values = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(\w+) ([-+0-9.e]+)", line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return proc.returncode, {**values, "stdout": proc.stdout, "stderr": proc.stderr}


@pytest.mark.parametrize("chunk", [1, 37, 160, 16000])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_c_frontend_matches_golden(golden_check, case, chunk):
    rc, out = _run_check(golden_check, GOLDEN / f"{case['name']}.txt", "--chunk", str(chunk))
    assert rc == 0, out["stdout"] + out["stderr"]
    feats = case["features"]
    assert out["feature_range"] == pytest.approx(feats["max"] - feats["min"], rel=1e-4)
    assert out["max_abs_error"] <= C_MAX_REL * out["feature_range"]
    assert out["max_rel_error"] <= C_MAX_REL
    assert out["int8_max_step"] <= 1 and out["window_int8_max_step"] <= 1


def test_c_frontend_fails_loudly_on_a_wrong_vector(golden_check, tmp_path):
    """The checker is not vacuous: a corrupted expected file makes it fail."""
    case = CASES[1]
    for p in GOLDEN.iterdir():
        shutil.copy(p, tmp_path / p.name)
    feats = np.fromfile(tmp_path / case["features"]["file"], "<f4")
    feats[123] += 0.5
    feats.astype("<f4").tofile(tmp_path / case["features"]["file"])
    rc, out = _run_check(golden_check, tmp_path / f"{case['name']}.txt")
    assert rc == 1 and "FAIL" in out["stdout"]
    assert out["max_abs_error"] == pytest.approx(0.5, abs=0.01)


def test_c_frontend_static_sizes_as_documented(golden_check):
    proc = subprocess.run([str(golden_check), "--sizes"], capture_output=True, text=True, check=True)
    sizes = dict(re.findall(r"sizeof\((\w+)\) (\d+)", proc.stdout))
    doc = (NOTES / "microcontroller.md").read_text(encoding="utf-8")
    for name, size in sizes.items():
        assert f"{int(size):,}" in doc or size in doc, f"microcontroller.md should state sizeof({name}) = {size}"


# --- the smoothing reference in smoothing.md ------------------------------------------------

SMOOTH_HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
int main(void) {
  static smoother_t s; int n, i, j, d; unsigned long t; float sc[MAX_LABELS];
  if (scanf("%d %f %f %f %f %f %d", &s.num_labels, &s.window_ms, &s.min_span_ms, &s.suppression_ms,
            &s.release_fraction, &s.release_ms, &n) != 7) return 2;
  smoother_reset(&s);
  for (j = 0; j < s.num_labels; j++) { if (scanf("%f", &s.threshold[j]) != 1) return 2; s.ignore[j] = j < 2; }
  for (i = 0; i < n; i++) {
    if (scanf("%lu", &t) != 1) return 2;
    for (j = 0; j < s.num_labels; j++) if (scanf("%f", &sc[j]) != 1) return 2;
    d = smoother_update(&s, sc, (uint32_t)t);
    if (d >= 0) printf("%lu %d\n", t, d);
  }
  return 0;
}
"""


def _smooth_by_the_rules(times, scores, window, min_span, suppression, release_fraction, release_ms,
                         thresholds, ignore):
    """The five rules of smoothing.md, written independently."""
    queue, held, below_since, last_time, out = [], None, None, {}, []
    for t, s in zip(times, scores):
        if queue and t < queue[-1][0]:
            continue
        queue.append((t, s))
        queue = [(u, v) for u, v in queue if u >= t - window]
        if t - queue[0][0] < max(min_span, window / 4):
            continue
        avg = np.mean([v for _, v in queue], axis=0)
        top = int(np.argmax(avg))
        if held is not None:
            if avg[held] < release_fraction * thresholds[held]:
                below_since = t if below_since is None else below_since
                if t - below_since >= release_ms:
                    held, below_since = None, None
            else:
                below_since = None
        if (held is None and top not in ignore and avg[top] > thresholds[top]
                and t - last_time.get(top, -np.inf) > suppression):
            held, below_since, last_time[top] = top, None, t
            out.append((t, top))
    return out


# A uint32 ms counter (the frontend's frame count times 10 ms, or a board's millisecond tick) wraps to
# 0 after 2**32 ms, 49.7 days; this stream start puts the wrap 25 s in
UINT32_TIMES = 2**32
START_BEFORE_WRAP_MS = UINT32_TIMES - 25_000


@pytest.mark.parametrize("start_ms", [0, START_BEFORE_WRAP_MS], ids=["from_0", "across_uint32_wrap"])
def test_smoothing_reference_code_follows_the_rules(tmp_path, start_ms):
    """The C reference decides like the rules, also when its uint32 ms times wrap to 0 mid-stream:
    it used to take every result after the wrap for an out-of-order one and drop it, so a device
    that had run 49.7 days (74.5 h with the old sample-count time) never detected again."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: cannot compile the smoothing reference of smoothing.md")
    text = (NOTES / "smoothing.md").read_text(encoding="utf-8")
    code = re.search(r"```c\n(.*?)```", text, re.S).group(1)
    src = tmp_path / "smooth.c"
    src.write_text(code + SMOOTH_HARNESS)
    exe = tmp_path / "smooth"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o", str(exe), str(src)], check=True)
    rng = np.random.default_rng(5)
    total = 0
    for trial in range(12):
        n, labels = 400, 5
        times = np.arange(1, n + 1) * 125  # ms; exact in float, so both sides see the same window edges
        raw = rng.random((n, labels)) ** 4
        for k in range(0, n, 13):
            raw[k:k + rng.integers(2, 12), rng.integers(0, labels)] += 3
        scores = (raw / raw.sum(1, keepdims=True)).astype(np.float32)
        window, suppression = float(rng.choice([500, 1000, 2000])), float(rng.choice([0, 250, 1000]))
        min_span = float(rng.choice([0, 250, 500]))
        release_fraction, release_ms = float(rng.choice([0.5, 1.0])), float(rng.choice([0, 250, 500]))
        thresholds = [0.5, 0.5, 0.6, 0.5, 0.5]
        lines = [f"{labels} {window} {min_span} {suppression} {release_fraction} {release_ms} {n}",
                 " ".join(map(str, thresholds))]
        stream_times = start_ms + times  # what the device's counter would read, before the wrap
        lines += [f"{t % UINT32_TIMES} " + " ".join(repr(float(v)) for v in row)
                  for t, row in zip(stream_times, scores)]
        proc = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
        got = [tuple(map(int, line.split())) for line in proc.stdout.splitlines()]
        want = _smooth_by_the_rules(stream_times, scores, window, min_span, suppression, release_fraction,
                                    release_ms, thresholds, {0, 1})
        assert got == [(t % UINT32_TIMES, label) for t, label in want]
        total += len(want)
    assert total > 50  # the scenarios do fire


def test_smoothing_reference_and_kws_edge_agree_on_the_same_scores():
    """The Python smoother that kws-listen runs follows the rules of smoothing.md too."""
    from kws.edge.manifest import SmoothingConfig
    from kws.edge.smoothing import PosteriorSmoother

    rng = np.random.default_rng(11)
    labels = ("_silence_", "_unknown_", "a", "b", "c")
    n = 600
    times = np.arange(1, n + 1) * 40
    raw = rng.random((n, len(labels))) ** 4
    for k in range(0, n, 17):
        raw[k:k + rng.integers(3, 30), rng.integers(0, len(labels))] += 3
    scores = raw / raw.sum(1, keepdims=True)
    cfg = SmoothingConfig(average_window_ms=500, minimum_span_ms=80, suppression_ms=1000, release_fraction=0.5,
                          release_ms=200, detection_threshold=0.5, hop_ms=40)
    sm = PosteriorSmoother(labels, cfg)
    got = [(t, labels.index(r.label)) for t, s in zip(times, scores) if (r := sm.update(s, float(t))).is_detection]
    want = _smooth_by_the_rules(times, scores, 500, 80, 1000, 0.5, 200, [0.5] * 5, {0, 1})
    assert got == want and len(want) > 10


def test_the_pages_name_the_defaults_the_tools_use():
    """A port follows these pages: they said ds_cnn was the default (its 6 ops miss the default tcn's
    STRIDED_SLICE and ADD), a 40 ms hop, and 2-frame steps, where kws-train and kws-convert give a tcn
    at 30 ms with 3-frame steps."""
    from kws.converters.stream_export import DEFAULT_STEP_MS
    from kws.trainer.config import ModelConfig

    step = round(DEFAULT_STEP_MS / FrontendConfig().stride_ms)
    streaming = (NOTES / "streaming.md").read_text(encoding="utf-8")
    micro = (NOTES / "microcontroller.md").read_text(encoding="utf-8")
    assert f"({step} = {DEFAULT_STEP_MS:g} ms by default)" in streaming
    assert f"takes {step} new frames" in micro
    default_rows = re.findall(r"^\| `(\w+)` \(default\) \| ([A-Z_0-9, ]+) \|", micro, flags=re.M)
    assert [arch for arch, _ops in default_rows] == [ModelConfig().architecture]
    if default_rows[0][0] == "tcn":
        assert {"STRIDED_SLICE", "ADD"} <= set(default_rows[0][1].replace(" ", "").split(","))


def test_the_port_pages_count_the_default_tcns_frames_per_hop():
    """The Android, iOS, frontend and Pi pages said a 40 ms hop of 4 frames by default; the default
    tcn's manifest lists kws-convert's 30 ms step as its hop (3 frames)."""
    from kws.converters.stream_export import DEFAULT_STEP_MS, hop_for_step
    from kws.edge.manifest import SmoothingConfig

    stride = FrontendConfig().stride_ms
    hop = hop_for_step(SmoothingConfig().hop_ms, DEFAULT_STEP_MS)
    frames = round(hop / stride)
    for page in ("android.md", "ios.md"):
        assert f"// {frames} (default tcn, {hop:g} ms)" in (NOTES / page).read_text(encoding="utf-8"), page
    spec = (NOTES / "frontend_spec.md").read_text(encoding="utf-8")
    assert f"`smoothing.hop_ms` of {hop:g} the model runs every {frames} new frames" in spec
    for page in ("smoothing.md", "raspberry_pi.md"):
        assert f"`smoothing.hop_ms`: {hop:g} ms for the default tcn" in (NOTES / page).read_text(encoding="utf-8"), page
