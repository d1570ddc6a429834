"""Exception types raised at the kws API boundary; the CLIs turn them into one-line errors."""
from __future__ import annotations

import os


class KwsError(Exception):
    """Base class: a problem the user can act on (bad file, bad value, missing thing)."""


class AudioError(KwsError):
    """An audio file could not be read or has an unsupported format."""


class AudioTooLongError(AudioError):
    """An audio file is longer than the caller allows (a server's bound on work per request)."""


def one_line(message: str) -> str:
    """``message`` with every character that would break or hide part of its line (newlines, tabs,
    other control and separator characters) written as its escape, e.g. a JSON key "\\n" as \\n."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
                   for c in message)


def os_error_line(exc: OSError) -> str:
    """An OSError (a full disk, a read-only or forbidden folder) as one line naming its file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename
    return one_line(f"{os.fsdecode(name)}: {what}" if name is not None else what)


def naming(exc: OSError, path: str | os.PathLike, temporary: str | os.PathLike | None = None) -> OSError:
    """``exc`` as the same error about ``path``, the file being written, where it named no file (a full
    disk fails in write(), which names none) or only the ``temporary`` one written on the way, so
    ``os_error_line`` says which file could not be written; any other error unchanged."""
    named = exc.filename
    if exc.errno is None or (named is not None and (temporary is None
                                                    or os.fspath(named) != os.fspath(temporary))):
        return exc
    return type(exc)(exc.errno, exc.strerror, os.fspath(path))


class OneLineError(KwsError):
    """A KwsError whose message is kept to one line (``one_line``) even where it quotes text that is
    not: a file's own keys or values, another library's multi-line error."""

    def __init__(self, message: str):
        super().__init__(one_line(str(message)))


class ManifestError(OneLineError):
    """A manifest is missing, malformed, or does not match its model; one line even where it quotes
    the manifest's own keys or values."""


class ModelNotFoundError(KwsError):
    """No model at the given path, or no model in the models folder."""


class RuntimeMissingError(KwsError):
    """No TFLite runtime is installed."""
