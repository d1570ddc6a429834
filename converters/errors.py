"""Errors of kws-convert; the CLI prints each as one line and exits with its ``exit_code``."""
from __future__ import annotations

from kws.edge.errors import KwsError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_GUARD = 3


class ConvertError(KwsError):
    """Conversion cannot go on: bad model folder, data gone, a converter failure."""

    exit_code = EXIT_ERROR


class SourceError(ConvertError):
    """The model folder is missing, incomplete (half-written) or unreadable."""


class OutputError(ConvertError):
    """The output folder cannot be created or written."""


class FormatError(ConvertError):
    """An unknown --formats name or a bad option value (a usage error)."""

    exit_code = EXIT_USAGE


class VerificationError(ConvertError):
    """An artifact was written but does not reproduce the Keras model (e.g. the .pb)."""


class AccuracyGuardError(ConvertError):
    """The int8 model lost more accuracy than allowed; float artifacts and the report are kept."""

    exit_code = EXIT_GUARD
