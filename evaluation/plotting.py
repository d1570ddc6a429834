"""Whether figures can be drawn: matplotlib comes with the train extra, not with the edge install,
so the tools that draw (reports, kws inspect --plot) say so in one line instead of failing."""
from __future__ import annotations

import importlib.util

MISSING = "plots need matplotlib, which this install lacks: pip install matplotlib"


def plotting_available() -> bool:
    """Whether matplotlib imports here (checked without importing it)."""
    return importlib.util.find_spec("matplotlib") is not None
