"""Click parameter types shared by the command-line tools."""
from __future__ import annotations

import math

import click


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses nan and inf: nan passes every range comparison and
    either would otherwise end deep in the tool as a traceback (``int(nan)``) or a silent no-op."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):  # said first: "inf is not in the range" would hide the cause
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)
