"""Where an installed Python package lies on disk, found without importing it (its ``__init__`` may
pull in heavy or unneeded modules: ai-edge-litert's pybind wrapper, openwakeword's scikit-learn)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def installed_package_dir(name: str) -> Path | None:
    """The folder of package ``name``, or None where it is not installed."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])
