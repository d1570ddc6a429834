"""kws-predict: files, folders, URLs, --json, --list metrics, sliding windows, Keras and TFLite."""
from __future__ import annotations

import errno
import functools
import http.server
import json
import os
import socket
import threading
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from audio_fixtures import SAMPLE_RATE, other_audio, word_audio
from net_servers import bytes_server
from kws.edge.audio import write_wav
from kws.evaluation.models import load_classifier
from kws.edge.urlfetch import FetchError
from kws.evaluation.predict import Source, fetch_url, predict_sources
from kws.evaluation.predict_cli import main as predict_main

WORDS = ("up", "down", "beep")


@pytest.fixture(scope="module")
def dist(converted_run, tmp_path_factory) -> Path:
    """A private copy of the converted fixture run (calibration may rewrite its manifest)."""
    out = tmp_path_factory.mktemp("dist") / "dist"
    shutil.copytree(converted_run, out)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Fresh synthetic words (a seed the training set never saw), 5 per word, in label folders."""
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(123)
    for w in WORDS:
        for i in range(5):
            write_wav(root / w / f"{w}{i}.wav", word_audio(w, rng), SAMPLE_RATE)
    return root


def _run(args):
    res = CliRunner().invoke(predict_main, [str(a) for a in args])
    return res


def test_tflite_predictions_are_right(dist, clips):
    clf = load_classifier(dist)
    assert clf.kind == "tflite" and list(clf.labels[2:]) == list(WORDS)
    sources = [Source(str(p), p, true=p.parent.name) for p in sorted(clips.rglob("*.wav"))]
    results = list(predict_sources(clf, sources, top_k=3))
    correct = sum(r["label"] == r["true"] for r in results)
    assert correct >= 14, results  # 15 clips
    for r in results:
        assert len(r["top"]) == 3 and r["top"][0]["score"] >= r["top"][1]["score"] >= r["top"][2]["score"]


def test_keras_run_folder_matches_tflite(trained_run, dist, clips):
    keras_clf, tfl = load_classifier(trained_run), load_classifier(dist)
    assert keras_clf.kind == "keras"
    paths = sorted(clips.rglob("*.wav"))[:6]
    k = [r["label"] for r in predict_sources(keras_clf, [Source(str(p), p) for p in paths])]
    t = [r["label"] for r in predict_sources(tfl, [Source(str(p), p) for p in paths])]
    assert k == t == [p.parent.name for p in paths]


def test_json_lines_and_folder_input(dist, clips):
    res = _run(["-m", dist, clips / "beep", "--json", "--top-k", "2"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert len(lines) == 5
    for obj in lines:
        assert set(obj) == {"path", "label", "score", "top"}
        assert obj["label"] == "beep" and obj["score"] == obj["top"][0]["score"]
        assert [set(t) for t in obj["top"]] == [{"label", "score"}] * 2


def test_list_metrics_match_hand_computed_confusion(dist, clips, tmp_path):
    files = sorted(clips.rglob("*.wav"))
    # relative paths from the list's folder; deliberately mislabel two clips as "up"
    lines = []
    for i, p in enumerate(files):
        label = "up" if i in (5, 10) else p.parent.name
        lines.append(f"../{clips.name}/{p.parent.name}/{p.name},{label}")
    lst = clips.parent / "lists" / "test.txt"
    lst.parent.mkdir(exist_ok=True)
    lst.write_text("# test list\n" + "\n".join(lines) + "\n")
    out = tmp_path / "report"
    res = _run(["-m", dist, "--list", lst, "--json", "--report", out])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert len(rows) == len(files) and all("true" in r for r in rows)
    labels = load_classifier(dist).labels
    cm = np.zeros((len(labels), len(labels)), int)
    for r in rows:
        cm[labels.index(r["true"]), labels.index(r["label"])] += 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["confusion_matrix"] == cm.tolist()
    assert metrics["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-6)
    up = labels.index("up")
    assert metrics["per_class"]["up"]["recall"] == pytest.approx(cm[up, up] / cm[up].sum(), abs=1e-5)
    assert metrics["per_class"]["up"]["precision"] == pytest.approx(cm[up, up] / cm[:, up].sum(), abs=1e-5)
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_report_gives_accuracy_per_speaker(dist, clips, tmp_path):
    """Files named <speaker>_<take>: --group-pattern groups them, metrics.json has each speaker's
    accuracy computed from the same predictions, and the summary line names the worst."""
    root = tmp_path / "bytalker"
    for p in sorted(clips.rglob("*.wav")):
        (root / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, root / p.parent.name / f"talker{int(p.stem[-1]) % 2}_{p.stem}.wav")
    lst = root / "list.txt"
    lst.write_text("".join(f"{p.parent.name}/{p.name},{p.parent.name}\n" for p in sorted(root.rglob("*.wav"))))
    out = tmp_path / "report"
    res = _run(["-m", dist, "--list", lst, "--json", "--report", out, "--group-pattern", r"^(talker\d)_"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    spk = json.loads((out / "metrics.json").read_text())["by_speaker"]
    assert set(spk["per_speaker"]) == {"talker0", "talker1"}
    for name, got in spk["per_speaker"].items():
        mine = [r for r in rows if Path(r["path"]).name.startswith(name + "_")]
        assert got["count"] == len(mine)
        assert got["accuracy"] == pytest.approx(sum(r["label"] == r["true"] for r in mine) / len(mine), abs=1e-5)
    text = _run(["-m", dist, "--list", lst, "--group-pattern", r"^(talker\d)_"]).output
    assert "labelled clips from 2 speakers, 2 of them never heard in training (worst: " in text


def test_report_counts_as_unseen_only_the_speakers_training_never_heard(trained_run, dist, tmp_path):
    """metrics.json's unseen_speakers comes from the model's training run (the manifest's
    source_run): it said every speaker of the list was unseen, training's own speakers too. A
    model without its run claims nothing."""
    split = json.loads((trained_run / "split.json").read_text())
    root = Path(split["root"])
    rows = [e for e in split["splits"]["training"][:12] + split["splits"]["testing"] if e[0]]
    lst = tmp_path / "list.txt"
    lst.write_text("".join(f"{root / path},{label}\n" for path, label, _ in rows))
    tested = {g for path, _, g in split["splits"]["testing"] if path and g}
    res = _run(["-m", dist, "--list", lst, "--report", tmp_path / "report"])
    assert res.exit_code == 0, res.output
    spk = json.loads((tmp_path / "report" / "metrics.json").read_text())["by_speaker"]
    assert spk["speakers"] == len({g for *_, g in rows}) > len(tested) > 0
    assert spk["unseen_speakers"] == len(tested)
    assert f"speakers, {len(tested)} of them never heard in training (worst: " in res.output

    orphan = tmp_path / "orphan"
    shutil.copytree(dist, orphan)
    manifest = json.loads((orphan / "manifest.json").read_text())
    manifest["extra"]["source_run"] = str(tmp_path / "gone")
    (orphan / "manifest.json").write_text(json.dumps(manifest))
    res = _run(["-m", orphan, "--list", lst, "--report", tmp_path / "orphan_report"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "orphan_report" / "metrics.json").read_text())["by_speaker"]["unseen_speakers"] is None
    assert "never heard" not in res.output


def test_a_list_saved_with_a_byte_order_mark_reads_its_first_path(dist, clips, tmp_path):
    lst = tmp_path / "excel.txt"
    lst.write_bytes(f"{clips}/down/down0.wav,down\r\n{clips}/up/up0.wav,up\r\n".encode("utf-8-sig"))
    res = _run(["-m", dist, "--list", lst, "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [(Path(r["path"]).name, r["true"]) for r in rows] == [("down0.wav", "down"), ("up0.wav", "up")]


def test_label_from_folder(dist, clips, tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text(f"{clips}/down/down0.wav\n{clips}/up/up0.wav,up\n")
    res = _run(["-m", dist, "--list", lst, "--json", "--label-from-folder"])
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert [r["true"] for r in rows] == ["down", "up"]
    res = _run(["-m", dist, "--list", lst, "--json"])
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert "true" not in rows[0] and rows[1]["true"] == "up"


def test_label_from_folder_labels_files_and_folders_given_as_inputs(dist, clips, tmp_path):
    """The README's 'kws-predict --report DIR with labels (--list, --label-from-folder)': a folder of label
    folders gets its metrics without a list (the flag was ignored without --list: no metrics.json)."""
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "x.wav").write_bytes((clips / "up" / "up0.wav").read_bytes())
    res = _run(["-m", dist, clips / "down", clips / "up" / "up1.wav", tmp_path / "misc" / "x.wav",
                "--json", "--label-from-folder", "--report", tmp_path / "rep"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines() if line.startswith("{")]
    assert [(Path(r["path"]).name, r.get("true")) for r in rows] == (
        [(f"down{i}.wav", "down") for i in range(5)] + [("up1.wav", "up"), ("x.wav", None)])
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["count"] == 6
    res = _run(["-m", dist, clips / "down", "--json", "--report", tmp_path / "rep2"])
    assert not (tmp_path / "rep2" / "metrics.json").exists()


def test_folders_are_read_as_kws_train_reads_them_and_a_named_hidden_file_is_read(tmp_path):
    """A folder copied from a Mac or a USB stick holds hidden files (._ companions, .Trashes/) and
    __MACOSX/: kws-predict classified them (or failed on each) where every other tool passes them by.
    A hidden file or folder named on the command line is still read: it was asked for."""
    from kws.evaluation.predict import expand_inputs

    rng = np.random.default_rng(8)
    root = tmp_path / "clips"
    for rel in ("up/a.wav", "up/.b.wav", ".Trashes/c.wav", "__MACOSX/up/d.wav", ".hidden/e.wav"):
        write_wav(root / rel, word_audio("up", rng), SAMPLE_RATE)
    sources, errors = expand_inputs([str(root), str(root / "up" / ".b.wav"), str(root / ".hidden")])
    assert errors == []
    assert [s.path.relative_to(root).as_posix() for s in sources] == ["up/a.wav", "up/.b.wav", ".hidden/e.wav"]
    (root / "only_hidden").mkdir()
    (root / "up" / ".b.wav").rename(root / "only_hidden" / ".b.wav")
    sources, errors = expand_inputs([str(root / "only_hidden")])
    assert sources == [] and len(errors) == 1
    assert "folder holds no audio files" in errors[0][1] and "hidden files and folders and __MACOSX/ are not read" \
        in errors[0][1]


def test_long_clip_reports_keyword_window(dist, tmp_path):
    rng = np.random.default_rng(7)
    audio = np.concatenate([other_audio(rng) * 0.2, word_audio("down", rng), rng.normal(0, 0.003, SAMPLE_RATE)])
    write_wav(tmp_path / "long.wav", audio.astype(np.float32), SAMPLE_RATE)
    res = list(predict_sources(load_classifier(dist), [Source("long", tmp_path / "long.wav")]))[0]
    assert res["label"] == "down"
    assert 0.3 <= res["window_s"] <= 1.7


def test_files_at_a_rate_that_leaves_the_top_bands_empty_are_said_once(dist, tmp_path):
    """8 kHz clips hold nothing above 4 kHz, where the model hears up to 7600 Hz: they were resampled
    without a word, as kws-listen now warns; one line for the run, naming the first and the count."""
    rng = np.random.default_rng(11)
    calls = tmp_path / "calls"
    for name, rate in (("a", 8000), ("b", 16000), ("c", 8000), ("d", 22050)):  # 22.05 kHz covers 7600 Hz
        write_wav(calls / f"{name}.wav", word_audio("up", rng, sample_rate=rate), rate)
    res = _run(["-m", dist, calls])
    assert res.exit_code == 0, res.output
    assert [line for line in res.output.splitlines() if "warning" in line] == [
        f"warning: {calls / 'a.wav'} (first of 2 files below 15200 Hz): 8000 Hz audio holds nothing above "
        "4000 Hz, and the model hears up to 7600 Hz: expect missed words and false detections (record at 16000 Hz)"]
    res = _run(["-m", dist, calls / "b.wav", calls / "c.wav"])
    assert [line for line in res.output.splitlines() if "warning" in line] == [
        f"warning: {calls / 'c.wav'}: 8000 Hz audio holds nothing above 4000 Hz, and the model hears up to "
        "7600 Hz: expect missed words and false detections (record at 16000 Hz)"]


@pytest.fixture(scope="module")
def http_root(clips, tmp_path_factory):
    """A local HTTP server (127.0.0.1, own thread) serving a WAV, a text file and a large file."""
    root = tmp_path_factory.mktemp("www")
    (root / "clip.wav").write_bytes((clips / "up" / "up1.wav").read_bytes())
    (root / "page.html").write_text("<html>not audio</html>")
    (root / "big.wav").write_bytes(b"RIFF" + bytes(300_000))
    (root / "broken.wav").write_bytes(_mp3_in_wav())
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _mp3_in_wav() -> bytes:
    """A WAV container holding MPEG audio (format tag 0x55): a file the WAV reader refuses."""
    import struct

    fmt = struct.pack("<HHIIHH", 0x55, 1, SAMPLE_RATE, 2 * SAMPLE_RATE, 2, 16)
    data = bytes(100)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_urls_good_bad_unreachable_and_too_large(dist, http_root, clips):
    bad_port = _closed_port()
    res = _run(["-m", dist, "--json", "--max-mb", "0.2", "--timeout", "5",
                f"{http_root}/clip.wav", f"{http_root}/page.html", f"http://127.0.0.1:{bad_port}/x.wav",
                f"{http_root}/big.wav", f"{http_root}/missing.wav", "ftp://host/x.wav", f"{http_root}/broken.wav",
                clips / "down" / "down1.wav"])
    assert res.exit_code == 1
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(o["path"].rsplit("/", 1)[-1], o["label"]) for o in out] == [("clip.wav", "up"), ("down1.wav", "down")]
    err = res.stderr
    assert "page.html: not an audio file" in err
    assert f"127.0.0.1:{bad_port}/x.wav: could not fetch http://127.0.0.1:{bad_port}/x.wav: connection refused" in err
    assert "big.wav: URL content is" in err and "allowed" in err
    assert "missing.wav: URL returned HTTP 404 Not Found" in err
    assert "ftp://host/x.wav: only http:// and https:// URLs are supported" in err
    broken = next(line for line in err.splitlines() if "broken.wav" in line)
    assert broken.startswith(f"error: {http_root}/broken.wav: ") and "tmp" not in broken, broken
    assert "6 input(s) failed" in err


def test_a_full_disk_while_downloading_a_url_names_the_folder_not_the_network(tmp_path, monkeypatch):
    """A URL input whose temporary copy cannot be written (a full /tmp) is that input's one-line error
    naming the folder, not 'could not fetch URL'; no partial copy is left."""
    class FullFile:
        def __init__(self, f):
            self._f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._f.close()

    dest = tmp_path / "kws-predict-x"
    dest.mkdir()
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: FullFile(real_fdopen(fd, *a, **k)))
    with bytes_server(b"RIFF" + bytes(5000)) as srv:
        url = f"{srv.url}/clip.wav"
        with pytest.raises(FetchError) as err:
            fetch_url(url, dest, timeout_s=5)
    assert str(err.value) == f"{dest}: No space left on device (downloading {url})"
    assert list(dest.iterdir()) == []


def test_bad_model_is_one_line_error(tmp_path):
    res = _run(["-m", tmp_path / "nope", "x.wav"])
    assert res.exit_code == 1 and "no such model file or folder" in res.output


def _tampered(dist: Path, tmp_path: Path, name: str, change) -> Path:
    out = tmp_path / name
    shutil.copytree(dist, out)
    manifest = json.loads((out / "manifest.json").read_text())
    change(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_every_tool_refuses_a_manifest_that_does_not_match_its_model(dist, clips, tmp_path):
    """kws-predict and kws serve's Predictor use kws-listen's loader: same checks, one-line errors."""
    from kws.edge.errors import ManifestError
    from kws.serving.predictor import Predictor

    clip = clips / "up" / "up0.wav"
    cases = {
        "labels": (lambda m: m.update(labels=m["labels"][:-1]), "outputs, the manifest lists"),
        "sha256": (lambda m: m["models"]["int8"].update(sha256="0" * 64), "sha256 differs"),
        "escape": (lambda m: m["models"]["int8"].update(file="../dist/model_int8.tflite"),
                   "models.int8.file must be a file name inside the manifest's folder"),
        "rate": (lambda m: m["frontend"].update(sample_rate=10 ** 9), "frontend.sample_rate must be in"),
    }
    for name, (change, message) in cases.items():
        bad = _tampered(dist, tmp_path, name, change)
        res = _run(["-m", bad, clip])
        assert res.exit_code == 1 and message in res.output, (name, res.output)
        assert "Traceback" not in res.output and len(res.output.strip().splitlines()) == 1
        with pytest.raises(ManifestError, match=message.replace(".", r"\.")):
            Predictor(bad)


def test_the_server_checks_a_training_run_as_the_other_tools_do(trained_run, tmp_path):
    """kws serve -m RUN loaded model.keras unchecked: a corrupt file or binary labels.txt was a traceback
    at start-up, and a labels.txt one label short a 500 on every request."""
    from kws.edge.errors import ModelNotFoundError
    from kws.serving.predictor import Predictor

    def damaged(name: str, change) -> Path:
        out = tmp_path / name
        shutil.copytree(trained_run, out, ignore=shutil.ignore_patterns("dist", "logs"))
        change(out)
        return out

    labels = (trained_run / "labels.txt").read_text().split()
    cases = {
        "garbage": (lambda d: (d / "model.keras").write_bytes(b"PK\x03\x04 not a zip"),
                    "model.keras: cannot load the Keras model (corrupt or half-written?)"),
        "binary_labels": (lambda d: (d / "labels.txt").write_bytes(b"\xff\xfe\x00yes"),
                          "labels.txt: unreadable labels"),
        "short_labels": (lambda d: (d / "labels.txt").write_text("\n".join(labels[:-1]) + "\n"),
                         f"labels.txt say (98, 40) -> {len(labels) - 1}"),
    }
    for name, (change, message) in cases.items():
        with pytest.raises(ModelNotFoundError) as err:
            Predictor(damaged(name, change))
        assert message in str(err.value) and "\n" not in str(err.value), (name, str(err.value))
    assert Predictor(trained_run).labels == labels


def test_unwritable_report_folder_is_one_line_error(dist, clips, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    res = _run(["-m", dist, clips / "up" / "up0.wav", "--report", blocker / "report"])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert f"{blocker / 'report'}: cannot write the report there (Not a directory)" in res.output
    assert "up0.wav" not in res.output  # refused before any clip was classified


def test_windows_streamed_in_any_chunking_match_every_window_scored_at_once(dist):
    """Long files are scored window by window as they stream (issue 14 item 7): the answer is the one
    of stacking every 100 ms window of the whole file, whatever the chunk sizes."""
    from kws.edge.frontend import Frontend
    from kws.edge.manifest import BACKGROUND_LABELS
    from kws.evaluation.predict import WINDOW_BATCH, classify_audio, classify_chunks

    clf = load_classifier(dist)
    rng = np.random.default_rng(40)
    parts = [rng.normal(0, 0.003, SAMPLE_RATE * 6)] + [word_audio(w, rng) for w in ("beep", "down")]
    audio = np.concatenate(parts + [rng.normal(0, 0.003, 12345)]).astype(np.float32)  # not on the hop grid
    n, hop = SAMPLE_RATE, SAMPLE_RATE // 10
    starts = list(range(0, len(audio) - n + 1, hop)) + [len(audio) - n]
    assert len(starts) > WINDOW_BATCH  # more than one batch of windows
    probs = clf.predict(Frontend(clf.frontend).features(np.stack([audio[s:s + n] for s in starts])))
    top = probs.argmax(axis=1)
    best = probs.max(axis=1)
    keyword = np.array([clf.labels[i] not in BACKGROUND_LABELS for i in top])
    w = int(np.argmax(np.where(keyword, best, -1.0))) if keyword.any() else int(np.argmax(best))
    expected = (clf.labels[top[w]], round(float(best[w]), 6), round(starts[w] / SAMPLE_RATE, 3))
    whole = classify_audio(clf, audio)
    assert (whole["label"], whole["score"], whole["window_s"]) == expected
    for size in (5, 997, SAMPLE_RATE, len(audio)):
        chunks = [audio[:5], audio[5:]] if size == 5 else [audio[i:i + size] for i in range(0, len(audio), size)]
        assert classify_chunks(clf, chunks) == whole, size
    short = classify_audio(clf, audio[:SAMPLE_RATE // 2])  # shorter than a clip: one zero-padded window
    assert short["window_s"] == 0.0


def test_without_m_kws_predict_names_the_model_it_chose(dist, clips, tmp_path, monkeypatch):
    """Without -m kws-predict took the newest run silently: after a second training (a run on part
    of the data, say) its scores came from that model with nothing to tell which. It now names the
    model on stderr, as kws-listen does; with -m it says nothing more."""
    models = tmp_path / "models"
    shutil.copytree(dist, models / "20260101T000000Z" / "dist")
    monkeypatch.setenv("KWS_MODELS_DIR", str(models))
    clip = clips / "up" / "up0.wav"
    res = CliRunner().invoke(predict_main, [str(clip)])
    assert res.exit_code == 0, res.output
    chosen = models / "20260101T000000Z" / "dist" / "model_int8.tflite"
    assert res.stderr == f"kws-predict: model {chosen} (no -m: models/api, else the newest model; -m picks another)\n"
    assert res.stdout.startswith(f"{clip}: up ")
    assert CliRunner().invoke(predict_main, ["-m", str(chosen), str(clip)]).stderr == ""
