"""Streaming sample-rate conversion (e.g. a 48 or 44.1 kHz microphone to the model's 16 kHz).

A polyphase FIR (rational factor up/down, Kaiser-windowed low-pass) with its state carried across
chunks, so the output does not depend on how the input was chunked. The filter delay is
compensated: output sample j is the input signal at time j * down / up.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

# taps on each side of the centre per unit of max(up, down), as scipy's resample_poly uses
HALF_LENGTH_PER_FACTOR = 10
KAISER_BETA = 5.0
# largest up or down factor: the filter has about 20 taps per unit of it, so a rate that shares no
# factor with the model's (a file declaring 383999 Hz) would design millions of taps; such a pair is
# resampled at the nearest ratio within this (every common rate, 8-192 kHz, is exact: at most 441)
MAX_RATE_FACTOR = 1000


def rate_factors(from_rate: int, to_rate: int) -> tuple[int, int]:
    """(up, down): the smallest integers with up / down = to_rate / from_rate, or, where either would
    exceed MAX_RATE_FACTOR, the closest ratio whose factors stay within it (383999 -> 16000 Hz is off
    by 3 parts per million)."""
    ratio = Fraction(int(to_rate), int(from_rate))
    if max(ratio.numerator, ratio.denominator) <= MAX_RATE_FACTOR:
        return ratio.numerator, ratio.denominator
    if ratio <= 1:
        near = ratio.limit_denominator(MAX_RATE_FACTOR)
        return max(1, near.numerator), near.denominator
    near = (1 / ratio).limit_denominator(MAX_RATE_FACTOR)
    return near.denominator, max(1, near.numerator)


def kaiser_lowpass(num_taps: int, cutoff: float, beta: float) -> np.ndarray:
    """Linear-phase low-pass FIR: a windowed sinc with its cutoff as a fraction of the Nyquist
    frequency and a Kaiser window, scaled to unit gain at DC (scipy.signal.firwin's design, in numpy
    so that resampling a microphone does not load scipy)."""
    m = np.arange(num_taps) - (num_taps - 1) / 2.0
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(num_taps, beta)
    return taps / taps.sum()


class StreamResampler:
    """Converts float32 chunks from ``from_rate`` to ``to_rate``; ``flush()`` ends the stream."""

    def __init__(self, from_rate: int, to_rate: int):
        if from_rate <= 0 or to_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        self.up, self.down = rate_factors(self.from_rate, self.to_rate)
        self.identity = self.up == self.down
        if self.identity:
            return
        factor = max(self.up, self.down)
        # scipy's resample_poly filter (half its length is HALF_LENGTH_PER_FACTOR * factor, never
        # rounded), so a file resampled whole (kws-eval --stream, kws serve, training) gives the same
        # samples as streamed (kws-listen, kws-predict); output j is centred at upsampled j * down + half
        half = HALF_LENGTH_PER_FACTOR * factor
        taps = kaiser_lowpass(2 * half + 1, 1.0 / factor, KAISER_BETA) * self.up
        self._delay = half  # in upsampled samples
        per_phase = -(-len(taps) // self.up)
        padded = np.zeros(per_phase * self.up)
        padded[:len(taps)] = taps
        # phase p, tap t: taps[p + t * up], applied to input sample (i0 - t)
        self._phases = padded.reshape(per_phase, self.up).T.astype(np.float32)
        self._taps_per_phase = per_phase
        self.reset()

    def reset(self) -> None:
        if self.identity:
            return
        # input history, global index of its first sample; zeros before the stream starts
        self._buf = np.zeros(self._taps_per_phase - 1, np.float32)
        self._buf_start = -(self._taps_per_phase - 1)
        self._next_out = 0
        self._inputs = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Resample the next chunk; returns every output sample whose input is now complete."""
        x = np.asarray(samples, np.float32).reshape(-1)
        if self.identity:
            return x
        self._buf = np.concatenate([self._buf, x])
        self._inputs += len(x)
        return self._emit(self._inputs - 1)

    def flush(self) -> np.ndarray:
        """The outputs still owed at the end of the stream (the input continued by silence)."""
        if self.identity:
            return np.zeros(0, np.float32)
        last_output = -(-self._inputs * self.up // self.down) - 1  # outputs covering the input's duration
        needed_input = (last_output * self.down + self._delay) // self.up
        pad = max(0, needed_input - (self._inputs - 1))
        self._buf = np.concatenate([self._buf, np.zeros(pad, np.float32)])
        out = self._emit(self._inputs - 1 + pad, limit=last_output)
        self._inputs += pad
        return out

    def _emit(self, last_input: int, limit: int | None = None) -> np.ndarray:
        # output j needs input up to i0 = (j * down + delay) // up
        last_j = (last_input * self.up + self.up - 1 - self._delay) // self.down
        if limit is not None:
            last_j = min(last_j, limit)
        j = np.arange(self._next_out, last_j + 1, dtype=np.int64)
        if len(j) == 0:
            return np.zeros(0, np.float32)
        a = j * self.down + self._delay
        i0 = a // self.up - self._buf_start
        phase = a % self.up
        idx = i0[:, None] - np.arange(self._taps_per_phase)[None, :]
        out = np.einsum("nt,nt->n", self._buf[idx], self._phases[phase])
        self._next_out = int(j[-1]) + 1
        # keep the history the next output needs
        next_i0 = (self._next_out * self.down + self._delay) // self.up
        keep_from = next_i0 - (self._taps_per_phase - 1) - self._buf_start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._buf_start += keep_from
        return out.astype(np.float32)
