"""``--data URL``: download a .tar.gz/.zip with a progress bar (through ``kws.edge.urlfetch``), cache
it by checksum, revalidate the cached copy with the server (ETag / Last-Modified) before reuse, and
unpack it safely (no path escaping the target, no links pointing outside, a cap on size and entries)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

from kws.edge.urlfetch import (ALLOW_ALL, BlockedAddressError, FetchResult, TooLargeError, UrlPolicy, saving_error,
                                shown, stream_url)
from kws.edge.stopping import cleanup_held
from kws.edge.urlfetch import FetchError as UrlFetchError
from kws.trainer.dataset import passed_by_name

CACHE_ENV = "KWS_CACHE_DIR"
TIMEOUT_S = 60  # without any data from the server
DOWNLOAD_TIMEOUT_S = 12 * 3600  # a whole dataset download
MAX_ARCHIVE_ENTRIES = 1_000_000
ENTRY_COST_BYTES = 4096  # what an entry costs on disk at least (a file-system block): counted toward the cap
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz")
UNPACKING = "unpacking"  # what a local write failure of fetch_dataset was doing, after the download


class FetchError(UrlFetchError):
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


@dataclass(frozen=True)
class DownloadOptions:
    """How ``--data URL`` is fetched: ``refresh`` ignores the cache; ``allow_private_urls`` lets the URL
    reach loopback/private addresses (kws-train on your own machine: yes; a server such as DEEPaaS: no)."""

    refresh: bool = False
    allow_private_urls: bool = True


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"kws: {text}", file=sys.stderr)


def _load_index(path: Path) -> dict:
    """url -> {"file", "etag", "last_modified", "size"} (an old index maps url -> file name)."""
    try:
        index = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return {url: ({"file": e} if isinstance(e, str) else e) for url, e in index.items()
            if isinstance(e, (str, dict))} if isinstance(index, dict) else {}


def _validators(entry: dict) -> dict[str, str]:
    """Conditional request headers from what the server said last time."""
    headers = {}
    if entry.get("etag"):
        headers["If-None-Match"] = entry["etag"]
    if entry.get("last_modified"):
        headers["If-Modified-Since"] = entry["last_modified"]
    return headers


def download(url: str, max_bytes: int, quiet: bool = False, options: DownloadOptions = DownloadOptions()) -> Path:
    """Download ``url`` into the cache, named by the SHA-256 of its content. A cached copy is reused
    only when the server says it is unchanged (ETag / Last-Modified), or when the server cannot be
    reached (said on stderr); ``options.refresh`` always downloads. A failure to write the cache (a
    full disk) is an OSError naming the cache folder and the URL, and leaves no partial file."""
    root = cache_dir() / "downloads"
    root.mkdir(parents=True, exist_ok=True)
    index_path = root / "index.json"
    index = _load_index(index_path)
    known = index.get(url, {})
    cached = root / known["file"] if known.get("file") else None
    if cached is not None and not cached.is_file():
        cached = None
    conditional = _validators(known) if cached is not None and not options.refresh else {}
    policy = ALLOW_ALL if options.allow_private_urls else UrlPolicy(hint="KWS_ALLOW_PRIVATE_URLS=1")
    try:
        fd, tmp = tempfile.mkstemp(dir=root, prefix=".download-")
    except OSError as exc:
        raise saving_error(exc, root, url) from None
    digest = hashlib.sha256()
    bar = None

    def start(result: FetchResult) -> None:
        nonlocal bar
        total = result.headers.get("content-length", "")
        bar = _progress(int(total) if total.isdigit() else None, "download", quiet)

    try:
        with os.fdopen(fd, "wb") as out:
            def write(chunk: bytes) -> None:
                digest.update(chunk)
                out.write(chunk)
                if bar:
                    bar.update(len(chunk))

            result = stream_url(url, write, max_bytes=max_bytes, timeout_s=DOWNLOAD_TIMEOUT_S,
                                idle_timeout_s=TIMEOUT_S, policy=policy, headers=conditional,
                                on_headers=start, not_modified_ok=bool(conditional))
            out.flush()
            os.fsync(out.fileno())
        if bar:
            bar.close()
    except TooLargeError:
        os.unlink(tmp)
        raise FetchError(f"{url}: more than the {max_bytes / 1e6:.0f} MB limit (data.max_download_mb)") from None
    except UrlFetchError as exc:
        os.path.exists(tmp) and os.unlink(tmp)
        if cached is not None and not options.refresh and not isinstance(exc, BlockedAddressError):
            _say(quiet, f"could not check {url} for changes ({exc}); using the cached copy")
            return cached
        raise FetchError(f"{url}: download failed ({exc})") from None
    except OSError as exc:  # writing the cache (a full disk): the cache is named, not the URL
        os.path.exists(tmp) and os.unlink(tmp)
        raise saving_error(exc, root, url) from None
    except BaseException as exc:  # a second Ctrl-C cannot leave the partial download in the cache
        with cleanup_held(exc):
            os.path.exists(tmp) and os.unlink(tmp)
        raise
    if result.status == HTTPStatus.NOT_MODIFIED and cached is not None:
        os.unlink(tmp)
        _say(quiet, f"using the cached copy of {url} (the server says it is unchanged)")
        return cached
    name = digest.hexdigest() + _suffix(url)
    try:
        os.replace(tmp, root / name)
    except OSError as exc:
        os.unlink(tmp)
        raise saving_error(exc, root / name, url) from None
    if cached is not None and cached.name != name:
        _say(quiet, f"{url} changed since it was cached; using the new download")
    index[url] = {"file": name, "etag": result.headers.get("etag", ""), "size": result.size,
                  "last_modified": result.headers.get("last-modified", "")}
    from kws.edge.manifest import atomic_write_text
    atomic_write_text(index_path, json.dumps(index, indent=1))
    return root / name


def forget(url: str, archive: Path) -> None:
    """Remove a downloaded archive (refused as unsafe) from the cache and its index."""
    index_path = archive.parent / "index.json"
    index = _load_index(index_path)
    if index.pop(url, None) is not None:
        from kws.edge.manifest import atomic_write_text
        atomic_write_text(index_path, json.dumps(index, indent=1))
    archive.unlink(missing_ok=True)


def _suffix(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    return next((s for s in ARCHIVE_SUFFIXES if path.endswith(s)), "")


def _inside(target: Path, name: str) -> bool:
    dest = (target / name).resolve()
    return dest == target or target in dest.parents


def _unpacked_cost(sizes: list[int]) -> int:
    """Bytes an archive's entries take on disk, at least ENTRY_COST_BYTES each (so a bomb of empty
    files counts against the size cap too)."""
    return sum(max(size, 0) + ENTRY_COST_BYTES for size in sizes)


def _check_entry_count(archive: Path, count: int, max_entries: int) -> None:
    if count > max_entries:
        raise FetchError(f"{archive}: holds more than {max_entries} entries, over the limit")


def safe_extract(archive: Path, target: Path, max_bytes: int, max_entries: int = MAX_ARCHIVE_ENTRIES) -> None:
    """Unpack a tar or zip into ``target``, refusing escapes, outside links, devices and bombs (more
    than ``max_bytes`` on disk, counting each entry as at least ENTRY_COST_BYTES, or more than
    ``max_entries`` entries)."""
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            _check_entry_count(archive, len(infos), max_entries)
            total = _unpacked_cost([i.file_size for i in infos])
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
        raise FetchError(f"{archive}: not a .tar.gz or .zip archive ({str(exc).splitlines()[0]})") from None
    with tf:
        members = []
        total = 0
        for m in tf:  # one by one, so a million-entry archive is refused without listing it all
            members.append(m)
            _check_entry_count(archive, len(members), max_entries)
            if not _inside(target, m.name) or m.name.startswith("/"):
                raise FetchError(f"{archive}: entry {m.name!r} would escape the target folder")
            if m.issym() or m.islnk():
                base = target / Path(m.name).parent if m.issym() else target
                dest = Path(os.path.normpath(base / m.linkname))
                if os.path.isabs(m.linkname) or not (dest == target or target in dest.parents):
                    raise FetchError(f"{archive}: link {m.name!r} -> {m.linkname!r} points outside the target")
            elif not (m.isfile() or m.isdir()):
                raise FetchError(f"{archive}: entry {m.name!r} is a device or fifo; refusing")
            total += _unpacked_cost([m.size])
            if total > max_bytes:
                raise FetchError(f"{archive}: unpacks to more than {max_bytes / 1e6:.0f} MB, over the limit")
        try:
            tf.extractall(target, filter="data")
        except TypeError:  # pragma: no cover - Python without extraction filters
            tf.extractall(target)


def data_root(folder: Path) -> Path:
    """The folder holding the label folders: descend through a single wrapping folder (hidden names and
    __MACOSX/ passed by, by the rule every kws tool reads a dataset with)."""
    entries = [p for p in folder.iterdir() if not passed_by_name(p.name)]
    if len(entries) == 1 and entries[0].is_dir():
        return data_root(entries[0])
    return folder


def fetch_dataset(url: str, max_mb: int, quiet: bool = False,
                  options: DownloadOptions = DownloadOptions()) -> Path:
    """Download (or reuse, see ``download``) and unpack a dataset archive; returns the folder of
    label folders. An archive refused as unsafe is removed from the cache."""
    max_bytes = int(max_mb) * 1_000_000
    archive = download(url, max_bytes, quiet, options)
    target = cache_dir() / "datasets" / archive.name.split(".")[0]
    done = target / ".kws-unpacked"
    if not done.exists():
        try:  # a full disk, a read-only cache: the dataset's folder is named, not the temporary one
            partial = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else _mk(target.parent),
                                            prefix=".unpack-"))
        except OSError as exc:
            raise saving_error(exc, target, url, UNPACKING) from None
        try:
            safe_extract(archive, partial, max_bytes)
            (partial / ".kws-unpacked").write_text(url + "\n")
            if target.exists():
                shutil.rmtree(target)
            os.replace(partial, target)
        except FetchError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            forget(url, archive)
            # the URL the user gave, not the cache file's name (removed now), on one line
            reason = " ".join(str(exc).split()).removeprefix(f"{archive}: ")
            raise FetchError(f"{shown(url)}: {reason} (removed from the cache)") from None
        except OSError as exc:  # a full disk: the dataset's folder is named, not the removed temporary one
            shutil.rmtree(partial, ignore_errors=True)
            if exc.errno is None:  # not the system's: a damaged archive (gzip's BadGzipFile)
                raise
            raise saving_error(exc, target, url, UNPACKING) from None
        except BaseException as exc:  # a second Ctrl-C cannot leave half an unpacked dataset in the cache
            with cleanup_held(exc):
                shutil.rmtree(partial, ignore_errors=True)
            raise
    return data_root(target)


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
