"""The input files whose sample rate leaves a model's top mel bands empty, counted while a command
reads them, for one warning line per run (kws-predict, kws-eval; kws-listen says it of its one input).
The rule itself is ``FrontendConfig.missing_band``."""
from __future__ import annotations

import os

from kws.edge.frontend import FrontendConfig


class LowRateFiles:
    """Counts the files read at a rate ``frontend.missing_band`` finds lacking, and keeps the first."""

    def __init__(self, frontend: FrontendConfig):
        self.frontend = frontend
        self.first: tuple[str, int] | None = None  # (name, rate) of the first such file
        self.count = 0

    def note(self, name: str | os.PathLike, input_rate: int) -> None:
        """Tell of one file read (at its own ``input_rate``)."""
        if self.frontend.missing_band(input_rate) is None:
            return
        self.count += 1
        if self.first is None:
            self.first = (str(name), int(input_rate))

    def warning(self) -> str | None:
        """One line: the first such file, how many there were, and what they lack; None if none."""
        if self.first is None:
            return None
        name, rate = self.first
        below = 2 * self.frontend.upper_hz  # a rate under twice the top band's edge leaves it empty
        many = "" if self.count == 1 else f" (first of {self.count} files below {below:g} Hz)"
        return f"{name}{many}: {self.frontend.missing_band(rate)}"
