"""Exception types raised at the kws API boundary; the CLIs turn them into one-line errors."""


class KwsError(Exception):
    """Base class: a problem the user can act on (bad file, bad value, missing thing)."""


class AudioError(KwsError):
    """An audio file could not be read or has an unsupported format."""


class ManifestError(KwsError):
    """A manifest is missing, malformed, or does not match its model."""


class ModelNotFoundError(KwsError):
    """No model at the given path, or no model in the models folder."""


class RuntimeMissingError(KwsError):
    """No TFLite runtime is installed."""
