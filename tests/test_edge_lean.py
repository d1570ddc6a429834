"""The listen path loads only what it needs: no scipy for resampling, its numpy filter designs
match scipy's, and a kws-listen run on a WAV file imports neither scipy nor TensorFlow."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.signal import firwin

from kws.edge.resample import KAISER_BETA, kaiser_lowpass


@pytest.mark.parametrize("num_taps, cutoff", [(61, 1 / 3), (441, 1 / 160), (2 * 480 + 1, 1 / 147), (9, 0.5)])
def test_kaiser_lowpass_is_scipys_firwin(num_taps, cutoff):
    want = firwin(num_taps, cutoff, window=("kaiser", KAISER_BETA))
    np.testing.assert_allclose(kaiser_lowpass(num_taps, cutoff, KAISER_BETA), want, rtol=0, atol=1e-12)


def _modules_after(code: str) -> dict:
    """Which heavy modules a fresh interpreter holds after running ``code``."""
    probe = code + "\nimport json, sys\nprint(json.dumps({m: m in sys.modules for m in " \
                   "('scipy', 'tensorflow', 'soundfile', 'importlib.metadata', 'tempfile')}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_resampling_a_48khz_microphone_does_not_load_scipy():
    loaded = _modules_after("import numpy as np\nfrom kws.edge.resample import StreamResampler\n"
                            "r = StreamResampler(48000, 16000)\nout = r.process(np.ones(4800, np.float32))\n"
                            "assert len(out) > 1500 and abs(float(out[-1]) - 1.0) < 1e-3")
    assert not loaded["scipy"] and not loaded["tensorflow"]


def _pcm16_wav(path, samples: np.ndarray, rate: int = 16000) -> None:
    import soundfile as sf

    sf.write(path, samples, rate, format="WAV", subtype="PCM_16")


@pytest.mark.parametrize("channels", [1, 2])
def test_a_plain_16bit_wav_reads_the_same_without_libsndfile(tmp_path, channels):
    import soundfile as sf

    from kws.edge.audio import open_audio, read_audio
    from kws.edge.pcmwav import CanonicalWav

    rng = np.random.default_rng(4)
    data = rng.uniform(-0.9, 0.9, (5000, channels)).astype(np.float32)
    path = tmp_path / "plain.wav"
    _pcm16_wav(path, data if channels > 1 else data[:, 0])
    with open_audio(path) as reader:
        assert isinstance(reader._file, CanonicalWav)
        blocks = [b.copy() for b in reader.blocks(777)]
        info = reader.info
    assert [len(b) for b in blocks] == [777] * 6 + [5000 - 6 * 777]
    assert (info.sample_rate, info.channels, info.sample_format, info.num_samples, info.container) == \
        (16000, channels, "int16", 5000, "WAV")
    ref = sf.read(path, dtype="float32", always_2d=True)[0]
    want = ref[:, 0] if channels == 1 else ref.mean(axis=1, dtype=np.float32)
    np.testing.assert_array_equal(np.concatenate(blocks), want)
    np.testing.assert_array_equal(read_audio(path)[0], want)


def test_other_wavs_still_go_through_soundfile(tmp_path):
    import soundfile as sf

    from kws.edge.audio import open_audio
    from kws.edge.pcmwav import CanonicalWav

    tone = np.sin(np.arange(4000) / 5.0).astype(np.float32) * 0.5
    for subtype in ("PCM_24", "FLOAT"):
        path = tmp_path / f"{subtype}.wav"
        sf.write(path, tone, 16000, format="WAV", subtype=subtype)
        with open_audio(path) as reader:
            assert not isinstance(reader._file, CanonicalWav)
    plain = tmp_path / "cut.wav"
    _pcm16_wav(plain, tone)
    plain.write_bytes(plain.read_bytes()[:-100])  # shorter than its header says: soundfile's rules apply
    with open_audio(plain) as reader:
        assert not isinstance(reader._file, CanonicalWav)


def test_streaming_a_plain_wav_for_kws_listen_loads_neither_scipy_nor_soundfile(tmp_path):
    path = tmp_path / "noise.wav"
    _pcm16_wav(path, np.random.default_rng(2).normal(0, 0.05, 16000 * 2).astype(np.float32))
    code = f"""
import numpy as np
from kws.edge.sources import FileSource
import kws.edge.listen_cli
src = FileSource({str(path)!r}, 16000)
total = sum(len(c) for c in src.chunks())
assert total == 32000, total
"""
    loaded = _modules_after(code)
    assert loaded == {"scipy": False, "tensorflow": False, "soundfile": False, "importlib.metadata": False,
                      "tempfile": False}


def test_kws_listen_on_a_wav_loads_no_libcrypto_metadata_or_on_detect_modules(converted_run, tmp_path):
    """Model files are hashed without OpenSSL (hashlib's _hashlib), the runtime's version comes from
    its package, not importlib.metadata, and --on-detect's and the microphone's modules stay unloaded:
    together about 6 MiB of kws-listen's peak RSS (docs/BENCHMARKS.md, "Edge")."""
    path = tmp_path / "noise.wav"
    _pcm16_wav(path, np.random.default_rng(3).normal(0, 0.05, 16000 * 2).astype(np.float32))
    code = f"""
import sys
from kws.edge.listen_cli import main
sys.argv = ["kws-listen", "-m", {str(converted_run)!r}, "--wav", {str(path)!r}, "--json"]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
"""
    probe = code + "\nimport json\nprint(json.dumps({m: m in sys.modules for m in " \
                   "('_hashlib', 'importlib.metadata', 'subprocess', 'queue', 'shlex')}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "_hashlib": False, "importlib.metadata": False, "subprocess": False, "queue": False, "shlex": False}
    assert "kws-listen: model " in out.stderr  # the start-up line, with the runtime's version, was printed


def test_builtin_sha256_gives_hashlibs_digest(tmp_path):
    import hashlib

    from kws.edge.model_loader import sha256_of

    path = tmp_path / "blob"
    path.write_bytes(np.random.default_rng(5).integers(0, 256, 3 << 20, dtype=np.uint8).tobytes())
    assert sha256_of(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_atomic_write_replaces_whole_and_steps_past_a_stale_temporary_name(tmp_path):
    import os

    from kws.edge.manifest import atomic_write_text

    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    stale = tmp_path / f".summary.json.{os.getpid()}.0.tmp"  # left by a crash of a process with our pid
    stale.write_text("stale")
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and stale.read_text() == "stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([stale.name, "summary.json"])
    assert _modules_after(f"from kws.edge.manifest import atomic_write_text\n"
                          f"atomic_write_text({str(tmp_path / 'x.json')!r}, '{{}}')")["tempfile"] is False
