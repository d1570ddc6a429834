"""``--data URL``: download a .tar.gz/.zip with a progress bar, cache it by checksum, and unpack
it safely (no path escaping the target, no links pointing outside, a size cap)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from kws.edge.errors import KwsError

CACHE_ENV = "KWS_CACHE_DIR"
CHUNK = 1 << 16
TIMEOUT_S = 60
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")


class FetchError(KwsError):
    """A URL could not be downloaded or its archive is unsafe or malformed."""


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kws")


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def _progress(total: int | None, desc: str, quiet: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the train extra
        return None
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=quiet, file=sys.stderr)


def download(url: str, max_bytes: int, quiet: bool = False) -> Path:
    """Download ``url`` into the cache, named by the SHA-256 of its content; reuse it next time."""
    root = cache_dir() / "downloads"
    root.mkdir(parents=True, exist_ok=True)
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    known = index.get(url)
    if known and (root / known).is_file():
        return root / known
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".download-")
    digest = hashlib.sha256()
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "kws"})
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp, os.fdopen(fd, "wb") as out:
            total = resp.headers.get("Content-Length")
            total = int(total) if total and total.isdigit() else None
            if total and total > max_bytes:
                raise FetchError(f"{url}: {total / 1e6:.0f} MB is over the {max_bytes / 1e6:.0f} MB limit "
                                 "(data.max_download_mb)")
            bar = _progress(total, "download", quiet)
            size = 0
            while chunk := resp.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"{url}: more than the {max_bytes / 1e6:.0f} MB limit (data.max_download_mb)")
                digest.update(chunk)
                out.write(chunk)
                if bar:
                    bar.update(len(chunk))
            if bar:
                bar.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        os.path.exists(tmp) and os.unlink(tmp)
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"{url}: download failed ({reason})") from None
    except BaseException:
        os.path.exists(tmp) and os.unlink(tmp)
        raise
    name = digest.hexdigest() + _suffix(url)
    os.replace(tmp, root / name)
    index[url] = name
    from kws.edge.manifest import atomic_write_text
    atomic_write_text(index_path, json.dumps(index, indent=1))
    return root / name


def _suffix(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    return next((s for s in ARCHIVE_SUFFIXES if path.endswith(s)), "")


def _inside(target: Path, name: str) -> bool:
    dest = (target / name).resolve()
    return dest == target or target in dest.parents


def safe_extract(archive: Path, target: Path, max_bytes: int) -> None:
    """Unpack a tar or zip into ``target``, refusing escapes, outside links, devices and bombs."""
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > max_bytes:
                raise FetchError(f"{archive}: unpacks to {total / 1e6:.0f} MB, over the limit")
            for info in infos:
                if not _inside(target, info.filename) or info.filename.startswith("/"):
                    raise FetchError(f"{archive}: entry {info.filename!r} would escape the target folder")
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    raise FetchError(f"{archive}: entry {info.filename!r} is a symbolic link; refusing")
            zf.extractall(target)
        return
    try:
        tf = tarfile.open(archive, "r:*")
    except tarfile.TarError as exc:
        raise FetchError(f"{archive}: not a .tar.gz or .zip archive ({exc})") from None
    with tf:
        members = tf.getmembers()
        total = 0
        for m in members:
            if not _inside(target, m.name) or m.name.startswith("/"):
                raise FetchError(f"{archive}: entry {m.name!r} would escape the target folder")
            if m.issym() or m.islnk():
                base = target / Path(m.name).parent if m.issym() else target
                dest = Path(os.path.normpath(base / m.linkname))
                if os.path.isabs(m.linkname) or not (dest == target or target in dest.parents):
                    raise FetchError(f"{archive}: link {m.name!r} -> {m.linkname!r} points outside the target")
            elif not (m.isfile() or m.isdir()):
                raise FetchError(f"{archive}: entry {m.name!r} is a device or fifo; refusing")
            total += max(m.size, 0)
            if total > max_bytes:
                raise FetchError(f"{archive}: unpacks to more than {max_bytes / 1e6:.0f} MB, over the limit")
        try:
            tf.extractall(target, filter="data")
        except TypeError:  # pragma: no cover - Python without extraction filters
            tf.extractall(target)


def data_root(folder: Path) -> Path:
    """The folder holding the label folders: descend through a single wrapping folder."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        return data_root(entries[0])
    return folder


def fetch_dataset(url: str, max_mb: int, quiet: bool = False) -> Path:
    """Download (or reuse) and unpack a dataset archive; returns the folder of label folders."""
    max_bytes = int(max_mb) * 1_000_000
    archive = download(url, max_bytes, quiet)
    target = cache_dir() / "datasets" / archive.name.split(".")[0]
    done = target / ".kws-unpacked"
    if not done.exists():
        partial = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else _mk(target.parent),
                                        prefix=".unpack-"))
        try:
            safe_extract(archive, partial, max_bytes)
            (partial / ".kws-unpacked").write_text(url + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return data_root(target)


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
