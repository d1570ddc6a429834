"""Clip classification for ``kws-predict``: gather inputs (audio files, folders, URLs), fetch URLs
safely, classify clips (sliding windows for long ones, streamed in bounded memory), read test lists."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from kws.edge.audio import (AUDIO_SUFFIXES, MAGIC_BYTES, NO_SAMPLES, UNREADABLE, cut_short_note, looks_like_audio,
                            no_samples_reason, open_audio, stream_audio)
from kws.edge.errors import AudioError, KwsError, os_error_line
from kws.edge.frontend import Frontend
from kws.edge.manifest import BACKGROUND_LABELS
from kws.edge.urlfetch import ALLOW_ALL, FetchError, UrlPolicy, saving_error, stream_url
from kws.trainer.dataset import NOT_READ_NOTE, audio_files

from .lowrate import LowRateFiles

URL_SCHEMES = ("http://", "https://")
MAX_URL_BYTES = 20 * 1024 * 1024
URL_TIMEOUT_S = 15.0
READ_CHUNK = 64 * 1024
WINDOW_HOP_MS = 100.0
WINDOW_BATCH = 16  # windows scored together: their features (16 x 98 frames x 512-point FFTs) are the peak memory
DEFAULT_TOP_K = 3


@dataclass(frozen=True)
class Source:
    """One input: its display name, a local file to read, and its true label if known."""

    name: str
    path: Path | None  # None for a URL not yet fetched
    url: str | None = None
    true: str | None = None


def is_url(text: str) -> bool:
    return text.lower().startswith(URL_SCHEMES)


def expand_inputs(items: Sequence[str]) -> tuple[list[Source], list[tuple[str, str]]]:
    """Files stay (a hidden one too: it was named), folders become their audio files as kws-train
    reads a folder (``kws.trainer.dataset.audio_files``: sorted, recursive, no hidden file or folder,
    nothing in ``__MACOSX/``), URLs are kept for fetching; a named pipe is read like a file.

    Returns (sources, errors) where errors are (input, message) for inputs that do not exist.
    """
    sources, errors = [], []
    for item in items:
        if is_url(item):
            sources.append(Source(item, None, url=item))
            continue
        if "://" in item:
            errors.append((item, "only http:// and https:// URLs are supported"))
            continue
        p = Path(item)
        if p.is_dir():
            files = audio_files(p)
            if not files:
                errors.append((item, f"folder holds no audio files ({', '.join(AUDIO_SUFFIXES)}; {NOT_READ_NOTE})"))
            sources.extend(Source(str(w), w) for w in files)
        elif p.is_file() or p.is_fifo():
            sources.append(Source(item, p))
        else:
            errors.append((item, "no such file or folder"))
    return sources, errors


def label_by_folder(src: Source, labels: Sequence[str] | None) -> Source:
    """``src`` with its parent folder's name as its true label, where it has none and that name is a
    model label (kws-predict --label-from-folder)."""
    if src.true is not None or src.path is None or labels is None or src.path.parent.name not in labels:
        return src
    return replace(src, true=src.path.parent.name)


def fetch_url(url: str, dest_dir: str | os.PathLike, max_bytes: int = MAX_URL_BYTES,
              timeout_s: float = URL_TIMEOUT_S, policy: UrlPolicy = ALLOW_ALL) -> Path:
    """Download an http(s) URL to a temp file in ``dest_dir`` with the guarded fetcher
    (``kws.edge.urlfetch``: whole-fetch deadline, size cap, address policy); FetchError unless it is
    a WAV file, or where the temp file cannot be written (a full disk: naming ``dest_dir``)."""
    if not is_url(url):
        raise FetchError("only http:// and https:// URLs are supported")
    try:
        fd, tmp = tempfile.mkstemp(suffix=".audio", dir=dest_dir)
    except OSError as exc:
        raise FetchError(os_error_line(saving_error(exc, dest_dir, url))) from None
    path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            stream_url(url, f.write, max_bytes=max_bytes, timeout_s=timeout_s, policy=policy)
        with open(path, "rb") as f:
            head = f.read(MAGIC_BYTES)
    except OSError as exc:  # the temp file, not the network (stream_url's errors are FetchErrors)
        path.unlink(missing_ok=True)
        raise FetchError(os_error_line(saving_error(exc, dest_dir, url))) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if not looks_like_audio(head):
        path.unlink(missing_ok=True)
        raise FetchError("not an audio file")
    return path


class WindowScanner:
    """Scores sliding clip windows (hop WINDOW_HOP_MS) of audio fed chunk by chunk, holding only the
    last clip plus one batch of windows, and keeps the window to report: the most confident one whose
    top label is a keyword, else the most confident one (the first on ties)."""

    def __init__(self, clf, top_k: int = DEFAULT_TOP_K, frontend: Frontend | None = None):
        cfg = clf.frontend
        self.clf, self.top_k = clf, top_k
        self.fe = frontend or feature_frontend(clf)
        self.sample_rate = cfg.sample_rate
        self.n = cfg.clip_samples
        self.hop = max(1, int(round(cfg.sample_rate * WINDOW_HOP_MS / 1000)))
        # a frontend that hears words only at the end of its window (the embedding family) scans the
        # audio as a stream would: silence before it, so that the first window ends one hop in, and
        # ``tail_samples`` of silence after it, so that a word at the very end reaches that place too
        self._lead = self.n - self.hop if getattr(self.fe, "tail_samples", 0) else 0
        self._tail = int(getattr(self.fe, "tail_samples", 0))
        self._buf = np.zeros(self._lead, np.float32)
        self._buf_start = 0  # stream index of _buf[0]
        self.total = self._lead
        self.audio_samples = 0
        self._next = 0  # start of the next full window
        self._last_scored = -1
        self._batch: list[tuple[int, np.ndarray]] = []
        self._best_keyword: tuple[float, int, np.ndarray] | None = None
        self._best_any: tuple[float, int, np.ndarray] | None = None

    def feed(self, chunk: np.ndarray) -> None:
        """Take the next samples (float32 mono at the model's rate)."""
        self._buf = np.concatenate([self._buf, np.asarray(chunk, np.float32)])
        self.total += len(chunk)
        self.audio_samples += len(chunk)
        while self._next + self.n <= self.total:
            self._add(self._next)
            self._next += self.hop
        # keep what the next window and the final (end-aligned) window need
        keep_from = max(self._buf_start, min(self._next, self.total - self.n))
        self._buf = self._buf[keep_from - self._buf_start:]
        self._buf_start = keep_from

    def _add(self, start: int) -> None:
        clip = self._buf[start - self._buf_start:start - self._buf_start + self.n]
        self._batch.append((start, _fit(clip, self.n).copy()))
        self._last_scored = start
        if len(self._batch) >= WINDOW_BATCH:
            self._score()

    def _score(self) -> None:
        if not self._batch:
            return
        starts = [s for s, _ in self._batch]
        probs = self.clf.predict(self.fe.features(np.stack([c for _, c in self._batch])))
        self._batch = []
        for start, p in zip(starts, probs):
            top = int(np.argmax(p))
            entry = (float(p[top]), start, p)
            if self._best_any is None or entry[0] > self._best_any[0]:
                self._best_any = entry
            if self.clf.labels[top] not in BACKGROUND_LABELS and (
                    self._best_keyword is None or entry[0] > self._best_keyword[0]):
                self._best_keyword = entry

    def result(self) -> dict:
        """{"label", "score", "top": [{"label", "score"}...], "window_s": start of the window}."""
        if self._tail:
            self.feed(np.zeros(self._tail, np.float32))
        last = max(0, self.total - self.n)
        if self._last_scored != last:  # audio shorter than a clip, or not ending on the hop grid
            self._add(last)
        self._score()
        _, start, probs = self._best_keyword or self._best_any
        order = np.argsort(-probs)[:max(1, self.top_k)]
        top = [{"label": self.clf.labels[i], "score": round(float(probs[i]), 6)} for i in order]
        return {"label": top[0]["label"], "score": top[0]["score"], "top": top,
                "window_s": round(max(0, start - self._lead) / self.sample_rate, 3)}


def classify_audio(clf, audio: np.ndarray, top_k: int = DEFAULT_TOP_K,
                   frontend: Frontend | None = None) -> dict:
    """Classify one clip; longer audio is cut into sliding windows (hop WINDOW_HOP_MS) and the
    window with the most confident non-background top label is reported (else the best window).

    Returns {"label", "score", "top": [{"label", "score"}...], "window_s": start of the window}.
    """
    return classify_chunks(clf, [audio], top_k, frontend)


def classify_chunks(clf, chunks, top_k: int = DEFAULT_TOP_K, frontend: Frontend | None = None) -> dict:
    """``classify_audio`` over audio arriving in chunks (a file streamed block by block)."""
    scanner = WindowScanner(clf, top_k, frontend)
    for chunk in chunks:
        scanner.feed(chunk)
    if scanner.audio_samples == 0:
        raise AudioError(f"{UNREADABLE} ({NO_SAMPLES})")
    return scanner.result()


def _fit(clip: np.ndarray, n: int) -> np.ndarray:
    if len(clip) < n:
        return np.pad(clip, (0, n - len(clip)))
    return clip


def feature_frontend(clf):
    """What turns a classifier's windows into its inputs: its own (``clf.feature_frontend``, the
    embedding family's mel + embedding pipeline) or the frontend its config describes."""
    return getattr(clf, "feature_frontend", None) or Frontend(clf.frontend)


def read_list(list_path: str | os.PathLike, labels: Sequence[str] | None = None,
              label_from_folder: bool = False) -> list[Source]:
    """Parse a test list: one ``path[,label]`` per line (``#`` comments, blank lines skipped).

    Relative paths are relative to the list's folder. Without a label on the line, the parent
    folder's name is the label when ``label_from_folder`` and it is one of ``labels``.
    """
    list_path = Path(list_path)
    try:
        text = list_path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is not a path
    except OSError as exc:
        raise KwsError(f"{list_path}: cannot read the list ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise KwsError(f"{list_path}: not a text list (byte {exc.start} is not UTF-8)") from None
    out = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        path_text, _, label = (part.strip() for part in line.rpartition(",")) if "," in line else (line, "", "")
        if not path_text:
            raise KwsError(f"{list_path}:{lineno}: empty path")
        if is_url(path_text):
            src = Source(path_text, None, url=path_text, true=label or None)
        else:
            p = Path(path_text)
            if not p.is_absolute():
                p = list_path.parent / p
            true = label or None
            if true is None and label_from_folder and labels is not None and p.parent.name in labels:
                true = p.parent.name
            src = Source(path_text, p, true=true)
        if src.true is not None and labels is not None and src.true not in labels:
            raise KwsError(f"{list_path}:{lineno}: label {src.true!r} is not one of the model's labels "
                           f"({', '.join(labels)})")
        out.append(src)
    if not out:
        raise KwsError(f"{list_path}: the list holds no entries")
    return out


def predict_sources(clf, sources: Sequence[Source], top_k: int = DEFAULT_TOP_K,
                    max_bytes: int = MAX_URL_BYTES, timeout_s: float = URL_TIMEOUT_S,
                    policy: UrlPolicy = ALLOW_ALL, low_rate: LowRateFiles | None = None) -> Iterator[dict]:
    """Classify each source; yields a result dict, or {"path", "error"} for a failed one. ``low_rate``
    is told of each source's own sample rate."""
    fe = feature_frontend(clf)
    with tempfile.TemporaryDirectory(prefix="kws-predict-") as tmp:
        for src in sources:
            path = src.path
            try:
                if src.url is not None:
                    path = fetch_url(src.url, tmp, max_bytes=max_bytes, timeout_s=timeout_s, policy=policy)
                with open_audio(path) as reader:
                    if reader.seekable and reader.info.num_samples == 0:
                        raise AudioError(f"{UNREADABLE} ({no_samples_reason(reader.info)})")
                    chunks = stream_audio(reader, clf.frontend.sample_rate)
                    res = {"path": src.name, **classify_chunks(clf, chunks, top_k, fe)}
                if low_rate is not None:
                    low_rate.note(src.name, reader.info.sample_rate)
                note = cut_short_note(reader.info)
                if note:
                    res["warning"] = note
                if src.url is not None:
                    path.unlink()
            except (KwsError, AudioError) as exc:
                msg = str(exc)
                if path is not None:  # the input's own name is already in the line; never a temp name
                    msg = msg.replace(str(path) + ": ", "").replace(str(path), src.name)
                yield {"path": src.name, "error": msg}
                continue
            finally:
                if src.url is not None and path is not None:
                    path.unlink(missing_ok=True)
            if src.true is not None:
                res["true"] = src.true
            yield res
