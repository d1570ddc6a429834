"""Clip classification for ``kws-predict``: gather inputs (files, folders, URLs), fetch URLs
safely, classify clips (sliding windows for long ones), read test lists, compute metrics."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from kws.edge.audio import load_audio
from kws.edge.errors import AudioError, KwsError
from kws.edge.frontend import Frontend
from kws.edge.manifest import BACKGROUND_LABELS
from kws.edge.urlfetch import ALLOW_ALL, FetchError, UrlPolicy, stream_url

URL_SCHEMES = ("http://", "https://")
MAX_URL_BYTES = 20 * 1024 * 1024
URL_TIMEOUT_S = 15.0
READ_CHUNK = 64 * 1024
WINDOW_HOP_MS = 100.0
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
    """Files stay, folders become their WAVs (sorted, recursive), URLs are kept for fetching.

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
            wavs = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() == ".wav")
            if not wavs:
                errors.append((item, "folder holds no .wav files"))
            sources.extend(Source(str(w), w) for w in wavs)
        elif p.is_file():
            sources.append(Source(item, p))
        else:
            errors.append((item, "no such file or folder"))
    return sources, errors


def fetch_url(url: str, dest_dir: str | os.PathLike, max_bytes: int = MAX_URL_BYTES,
              timeout_s: float = URL_TIMEOUT_S, policy: UrlPolicy = ALLOW_ALL) -> Path:
    """Download an http(s) URL to a temp file with the guarded fetcher (``kws.edge.urlfetch``:
    whole-fetch deadline, size cap, address policy); FetchError unless it is a WAV file."""
    if not is_url(url):
        raise FetchError("only http:// and https:// URLs are supported")
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=dest_dir)
    path = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            stream_url(url, f.write, max_bytes=max_bytes, timeout_s=timeout_s, policy=policy)
        with open(path, "rb") as f:
            head = f.read(12)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        path.unlink(missing_ok=True)
        raise FetchError("not a WAV file")
    return path


def window_starts(num_samples: int, clip_samples: int, hop_samples: int) -> list[int]:
    """Start offsets of sliding clip windows covering the audio (the last one ends at its end)."""
    if num_samples <= clip_samples:
        return [0]
    starts = list(range(0, num_samples - clip_samples + 1, hop_samples))
    if starts[-1] != num_samples - clip_samples:
        starts.append(num_samples - clip_samples)
    return starts


def classify_audio(clf, audio: np.ndarray, top_k: int = DEFAULT_TOP_K,
                   frontend: Frontend | None = None) -> dict:
    """Classify one clip; longer audio is cut into sliding windows (hop WINDOW_HOP_MS) and the
    window with the most confident non-background top label is reported (else the best window).

    Returns {"label", "score", "top": [{"label", "score"}...], "window_s": start of the window}.
    """
    cfg = clf.frontend
    fe = frontend or Frontend(cfg)
    n = cfg.clip_samples
    hop = max(1, int(round(cfg.sample_rate * WINDOW_HOP_MS / 1000)))
    starts = window_starts(len(audio), n, hop)
    clips = np.stack([_fit(audio[s:s + n], n) for s in starts])
    probs = clf.predict(fe.features(clips))
    best_idx = np.argmax(probs, axis=1)
    best_score = probs[np.arange(len(probs)), best_idx]
    keyword = np.array([clf.labels[i] not in BACKGROUND_LABELS for i in best_idx])
    if keyword.any():
        w = int(np.argmax(np.where(keyword, best_score, -1.0)))
    else:
        w = int(np.argmax(best_score))
    order = np.argsort(-probs[w])[:max(1, top_k)]
    top = [{"label": clf.labels[i], "score": round(float(probs[w, i]), 6)} for i in order]
    return {"label": top[0]["label"], "score": top[0]["score"], "top": top,
            "window_s": round(starts[w] / cfg.sample_rate, 3)}


def _fit(clip: np.ndarray, n: int) -> np.ndarray:
    if len(clip) < n:
        return np.pad(clip, (0, n - len(clip)))
    return clip


def read_list(list_path: str | os.PathLike, labels: Sequence[str] | None = None,
              label_from_folder: bool = False) -> list[Source]:
    """Parse a test list: one ``path[,label]`` per line (``#`` comments, blank lines skipped).

    Relative paths are relative to the list's folder. Without a label on the line, the parent
    folder's name is the label when ``label_from_folder`` and it is one of ``labels``.
    """
    list_path = Path(list_path)
    try:
        text = list_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KwsError(f"{list_path}: cannot read the list ({exc.strerror})") from None
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
                    policy: UrlPolicy = ALLOW_ALL) -> Iterator[dict]:
    """Classify each source; yields a result dict, or {"path", "error"} for a failed one."""
    fe = Frontend(clf.frontend)
    with tempfile.TemporaryDirectory(prefix="kws-predict-") as tmp:
        for src in sources:
            path = src.path
            try:
                if src.url is not None:
                    path = fetch_url(src.url, tmp, max_bytes=max_bytes, timeout_s=timeout_s, policy=policy)
                audio, _ = load_audio(path, clf.frontend.sample_rate)
                res = {"path": src.name, **classify_audio(clf, audio, top_k, fe)}
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
