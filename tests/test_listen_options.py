"""kws-listen's stdin options (issue 14 item 8): out-of-range --rate/--channels are one-line usage
errors before anything is allocated, and a closed stdin is a one-line error, not a traceback."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import SAMPLE_RATE, word_audio
from kws.edge.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, resample, to_int16

KWS_LISTEN = Path(sys.executable).parent / "kws-listen"
EXIT_USAGE = 2


@pytest.mark.parametrize("option, value", [
    ("--rate", "-1"), ("--rate", "0"), ("--rate", "99999999999"), ("--rate", str(MIN_SAMPLE_RATE - 1)),
    ("--rate", str(MAX_SAMPLE_RATE + 1)), ("--channels", "0"), ("--channels", "-2"), ("--channels", "100000"),
    ("--hop-ms", "10001"), ("--hop-ms", "1e9"),  # over a manifest's largest hop: clips were skipped unheard
    # a score fires above the threshold and its hold ends below it: at 0 the first detection was held for
    # ever (one line for a whole recording), and no score is above 1 (no detection at all)
    ("--threshold", "0"), ("--threshold", "1"),
])
def test_out_of_range_stdin_options_are_one_line_usage_errors(converted_run, option, value):
    proc = subprocess.run([str(KWS_LISTEN), "-m", str(converted_run), "--stdin", option, value],
                          input=b"", capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == EXIT_USAGE, err
    assert f"Invalid value for '{option}'" in err and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("Error:")] == [err.splitlines()[-1]]


def test_closed_stdin_is_a_one_line_error(converted_run):
    proc = subprocess.run(f"'{KWS_LISTEN}' -m '{converted_run}' --stdin <&-", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("Error: stdin is closed: nothing to read (pipe raw PCM in, e.g. arecord ... | "
                                   "kws-listen --stdin)")


def test_stdin_at_8khz_stereo_is_heard_at_its_own_rate(converted_run):
    """A valid --rate is the audio's rate (resampled to the model's), not silently the default."""
    word = word_audio("down", np.random.default_rng(17))
    clip = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), word, np.zeros(SAMPLE_RATE, np.float32)])
    at8k = to_int16(resample(clip, SAMPLE_RATE, 8000))
    stereo = np.stack([at8k, at8k], axis=1).reshape(-1)
    proc = subprocess.run([str(KWS_LISTEN), "-m", str(converted_run), "--stdin", "--rate", "8000", "--channels", "2",
                           "--threshold", "0.3"], input=stereo.tobytes(), capture_output=True, timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert "raw int16 PCM on stdin (8000 Hz, 2 ch), resampled to 16000 Hz" in err
    # 8 kHz audio leaves the model's mel bands above 4 kHz empty: on the keyword stream of test_edge.py
    # it fired 'down' three times where no word was, at the manifest's own threshold, without a word
    assert ("kws-listen: warning: 8000 Hz audio holds nothing above 4000 Hz, and the model hears up to 7600 Hz: "
            "expect missed words and false detections (record at 16000 Hz)") in err.splitlines()
    assert "2.5 s of audio" in err
    assert [line.split()[2] for line in proc.stdout.decode().splitlines()][:1] == ["down"]


@pytest.mark.parametrize("fmt, subtype, advice", [
    ("WAV", "PCM_16", "pipe it to --wav /dev/stdin"),
    ("FLAC", "PCM_16", "save it to a file and give --wav FILE"),
])
def test_an_audio_file_piped_to_stdin_is_refused_not_heard_as_raw_pcm(converted_run, fmt, subtype, advice):
    """`cat clip.wav | kws-listen --stdin` heard the header and, for a 48 kHz stereo WAV, six times too
    much audio at the wrong pitch (24 s of a 4 s file); a FLAC's compressed bytes fired a detection."""
    import io

    import soundfile as sf
    from click.testing import CliRunner

    from kws.edge.listen_cli import main as listen_main

    word = word_audio("down", np.random.default_rng(17))
    at48k = resample(np.concatenate([word, np.zeros(SAMPLE_RATE, np.float32)]), SAMPLE_RATE, 48000)
    buf = io.BytesIO()
    sf.write(buf, np.stack([at48k, at48k], axis=1), 48000, format=fmt, subtype=subtype)
    res = CliRunner().invoke(listen_main, ["-m", str(converted_run), "--stdin", "--threshold", "0.3"],
                             input=buf.getvalue())
    assert res.exit_code == 1, res.output
    assert res.stdout == ""
    assert res.stderr.strip().splitlines()[-1] == (
        f"Error: stdin: a {fmt} file, not the raw int16 PCM --stdin reads (its header would be heard as "
        f"sound, its rate and channels ignored); {advice}")


@pytest.mark.parametrize("hop_ms", ["520", "1000"])
def test_a_hop_longer_than_the_smoothing_window_is_refused_not_silent(converted_run, hop_ms):
    # one result per 500 ms window never spans the 125 ms a decision needs: kws-listen ran the whole
    # file and reported 0 detections, whatever was said
    proc = subprocess.run([str(KWS_LISTEN), "-m", str(converted_run), "--stdin", "--hop-ms", hop_ms],
                          input="\0" * 64000, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"Error: hop {hop_ms} ms: results that far apart never span the 125 ms a "
                                   "decision needs within the 500 ms smoothing window, so nothing would ever "
                                   "be detected; use a shorter hop")


def test_a_one_second_clip_is_heard_to_its_end(converted_run, tmp_path):
    """A file ends on silence heard out for one model window: a 1 s clip (one hop before, which the
    smoother can never decide on) gets its word, the summary keeps the file's length, and kws-eval's
    scores of the same audio run through the same silence."""
    import soundfile as sf
    from kws.edge.recognizer import Recognizer
    from kws.evaluation.scoring import stream_scores

    clip = word_audio("down", np.random.default_rng(17))  # exactly 1 s, the word inside
    wav = tmp_path / "down.wav"
    sf.write(wav, clip, SAMPLE_RATE, subtype="PCM_16")
    proc = subprocess.run([str(KWS_LISTEN), "-m", str(converted_run), "--wav", str(wav), "--threshold", "0.3"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    heard = [line.split() for line in proc.stdout.splitlines()]
    assert [h[2] for h in heard][:1] == ["down"], proc.stdout
    assert "1.0 s of audio, " in proc.stderr
    assert "over 1 hops" in proc.stderr  # the silence's hops are not the file's cost

    rec = Recognizer.from_manifest(converted_run / "manifest.json", threshold=0.3)
    assert rec.process(clip) == []  # one hop: no decision yet
    assert [d.label for d in rec.finish()][:1] == ["down"]
    assert rec.timer.count == 1
    times, _ = stream_scores(converted_run / "manifest.json", clip)
    hop_s = rec.hop_ms / 1000.0
    assert times[0] == pytest.approx(1.0) and times[-1] == pytest.approx(2.0, abs=hop_s)


@pytest.mark.parametrize("source", ["--wav", "--stdin"])
def test_a_duration_cut_is_heard_out_like_the_end_of_a_file(converted_run, tmp_path, source):
    """--duration ends the input as a file's end does: the word in the last second before the cut is
    decided on (it went unheard: the cut skipped Recognizer.finish's second of silence), and the
    summary counts the audio up to the cut."""
    import soundfile as sf
    from click.testing import CliRunner

    from kws.edge.listen_cli import main as listen_main

    word = word_audio("down", np.random.default_rng(17))  # 1 s, the word inside
    audio = np.concatenate([word, word])  # the cut falls after the first
    wav = tmp_path / "two.wav"
    sf.write(wav, audio, SAMPLE_RATE, subtype="PCM_16")
    args = ["--wav", str(wav)] if source == "--wav" else ["--stdin"]
    res = CliRunner().invoke(listen_main, ["-m", str(converted_run), *args, "--threshold", "0.3", "--duration", "1"],
                             input=to_int16(audio).tobytes())
    assert res.exit_code == 0, res.output
    assert [line.split()[2] for line in res.stdout.splitlines()] == ["down"]
    assert "1.0 s of audio, 1 detection(s)" in res.stderr and "over 1 hops" in res.stderr


@pytest.mark.parametrize("duration", ["1e-5", "0.00003"])
def test_a_duration_shorter_than_one_sample_is_a_usage_error(converted_run, duration):
    """0.00001 s is no sample at 16 kHz: kws-listen heard 0.0 s of audio and exited 0."""
    from click.testing import CliRunner

    from kws.edge.listen_cli import main as listen_main

    res = CliRunner().invoke(listen_main, ["-m", str(converted_run), "--stdin", "--duration", duration],
                             input=b"\0" * 64000)
    assert res.exit_code == EXIT_USAGE, res.output
    assert res.stderr.strip().splitlines()[-1] == (f"Error: Invalid value for '--duration': {float(duration):g} s is "
                                                   "less than one sample at the model's 16000 Hz")
