"""The streaming (step) form of a model at run time: ``StepModel.step(frames)`` takes the newest
``step_frames`` feature frames and returns the scores of the window ending at the newest one; the
state tensors (each temporal layer's last input frames) stay in preallocated buffers between calls.

The .tflite's input 0 is the new frames and inputs 1..n the states; output 0 is the scores and
outputs 1..n the new states, in the same order (manifest ``streaming.models.<key>``). After each
invoke the new states are copied into the state inputs, straight from the output buffers where no
output shares memory with an input (checked once; TFLite Micro's planner may place an output where
an input was, so firmware copies through its own buffers).
Measured on x86, one core, ai-edge-litert, a 9-state int8 tcn: 56 us per step through the public
API (set_tensor, and a fresh view per tensor per step), 19 us with views kept alive.
With ai-edge-litert's C API (the default where libLiteRt.so loads, ``litert_c``) every tensor is a
numpy array of ours that the compiled model reads and writes in place, and each state input trades
buffers with its new-state output after every run (``CompiledModel.alternate``): nothing is copied.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import ManifestError
from .manifest import StreamEntry, TensorSpec
from .runtime import INT8_RANGE, UINT8_RANGE, ModelLoadError, _spec, open_runtime_model, same_tensor


# how the new states reach the inputs: straight from output to input buffer through views kept
# alive (the runtime's own Invoke), or set_tensor from our copies (the public API)
DIRECT_VIEWS = "direct views"
PUBLIC_API = "set_tensor"
# the C API: the compiled model's tensor buffers are our own arrays (read and written in place)
HOST_BUFFERS = "host buffers"


class StepModel:
    """One step .tflite with its state; ``reset()`` zeroes the state (a new stream)."""

    def __init__(self, path: str | os.PathLike, num_threads: int = 1, runtime: str | None = None):
        self.path = Path(path)
        self.runtime, self._compiled, self._it = open_runtime_model(self.path, runtime, num_threads,
                                                                    what="step model")
        if self._compiled is not None:
            self.input_specs, self.output_specs = self._compiled.input_specs, self._compiled.output_specs
        else:
            ins, outs = self._it.get_input_details(), self._it.get_output_details()
            self.input_specs = tuple(_spec(d) for d in ins)
            self.output_specs = tuple(_spec(d) for d in outs)
            self._in = [d["index"] for d in ins]
            self._out = [d["index"] for d in outs]
        if len(self.input_specs) < 1 or len(self.input_specs) != len(self.output_specs):
            raise ModelLoadError(f"{self.path}: a step model has frames + n states in and scores + n states "
                                 f"out; found {len(self.input_specs)} inputs and {len(self.output_specs)} outputs")
        for i, (a, b) in enumerate(zip(self.input_specs[1:], self.output_specs[1:]), start=1):
            if a != b:
                raise ModelLoadError(f"{self.path}: state {i} goes in as {a} but comes out as {b}")
        self.size_bytes = self.path.stat().st_size
        frames = self.input_specs[0]
        self.step_frames = int(frames.shape[1])
        self.num_features = int(np.prod(frames.shape[2:]))
        self._frames_f = np.zeros(frames.shape, np.float32)  # the frames divided by the scale, rounded
        self._frames_2d = self._frames_f.reshape(self.step_frames, self.num_features)
        # the quantization constants as numpy scalars, looked up once (not per step)
        self._in_quantized = frames.quantized
        self._in_scale = np.float32(frames.scale) if frames.quantized else None
        self._in_zero = np.float32(frames.zero_point)
        lo, hi = INT8_RANGE if frames.dtype == "int8" else UINT8_RANGE
        self._in_lo, self._in_hi = np.float32(lo - frames.zero_point), np.float32(hi - frames.zero_point)
        out_spec = self.output_specs[0]
        self._out_quantized = out_spec.quantized
        self._out_zero, self._out_scale = out_spec.zero_point, np.float32(out_spec.scale)
        self._zero_states = [self._state_zero(s) for s in self.input_specs[1:]]
        self._scores = np.zeros(int(np.prod(self.output_specs[0].shape)), np.float32)
        if self._compiled is not None:
            cm = self._compiled
            # each state input and its new-state output trade buffers on every run: nothing is copied
            cm.alternate([(i, i) for i in range(1, len(self.input_specs))])
            self._raw = cm.run_alternating
            self.state_copy = HOST_BUFFERS
            self._frames_in = cm.inputs[0]
            self._state_sets = (list(cm.inputs[1:]), list(cm.outputs[1:]))  # the state inputs per phase
            self._state_pairs = ()
            self._score_flat = cm.outputs[0].reshape(-1)  # a view: the output buffer itself
            self._frames_in_2d = self._frames_in.reshape(self.step_frames, self.num_features)
            self.reset()
            return
        self._it.invoke()  # once through the public path: delegates are in place, buffers final
        self._raw = self._raw_invoker()
        if self._raw is not None:
            self.state_copy = DIRECT_VIEWS
            self._frames_in = self._it.tensor(self._in[0])()
            self._states = [self._it.tensor(i)() for i in self._in[1:]]
            self._new_states = [self._it.tensor(i)() for i in self._out[1:]]
            self._state_pairs = tuple(zip(self._states, self._new_states))
            self._score_q = self._it.tensor(self._out[0])()
            self._score_flat = self._score_q.reshape(-1)  # a view: the output buffer itself
        else:
            self.state_copy = PUBLIC_API
            self._frames_in = np.zeros(frames.shape, frames.dtype)
            self._states = [np.zeros(s.shape, s.dtype) for s in self.input_specs[1:]]
            self._score_view = self._it.tensor(self._out[0])
            self._state_views = [self._it.tensor(i) for i in self._out[1:]]
        self._frames_in_2d = self._frames_in.reshape(self.step_frames, self.num_features)
        self.reset()

    def _raw_invoker(self):
        """The runtime's own Invoke, which lets views of the input/output buffers stay alive (the
        public ``invoke()`` refuses while any exists), if it has one and no state output shares
        memory with an input; else None."""
        raw = getattr(getattr(self._it, "_interpreter", None), "Invoke", None)
        if raw is None:
            return None
        spans = []
        for index in self._in + self._out:
            view = self._it.tensor(index)()
            start = view.__array_interface__["data"][0]
            spans.append((start, start + view.nbytes))
            del view
        ins, outs = spans[:len(self._in)], spans[len(self._in):]
        if any(a0 < b1 and b0 < a1 for a0, a1 in ins for b0, b1 in outs):
            return None
        return raw

    @staticmethod
    def _state_zero(spec: TensorSpec) -> np.ndarray:
        """The state of an empty history: float 0.0, i.e. the zero point when quantized."""
        return np.full(spec.shape, spec.zero_point if spec.quantized else 0, spec.dtype)

    @property
    def num_labels(self) -> int:
        return int(self._scores.size)

    @property
    def input_spec(self) -> TensorSpec:
        return self.input_specs[0]

    @property
    def num_states(self) -> int:
        return len(self._zero_states)

    @property
    def _current_states(self) -> list[np.ndarray]:
        """The arrays the next step reads its states from."""
        if self._compiled is not None:
            return self._state_sets[self._compiled.phase]
        return self._states

    def reset(self) -> None:
        """Forget the history (every state back to zero)."""
        for state, zero in zip(self._current_states, self._zero_states):
            np.copyto(state, zero)

    def step(self, frames: np.ndarray) -> np.ndarray:
        """Scores (float32 per label; a buffer reused by the next call) after the newest
        ``step_frames`` frames, (step_frames, features) float."""
        if type(frames) is not np.ndarray or frames.dtype != np.float32 or frames.shape != self._frames_2d.shape:
            frames = np.asarray(frames, np.float32).reshape(self._frames_2d.shape)
        if self._in_quantized:
            # round(x / scale) + zero point, clipped to the type's range: clipped before the zero point
            # is added (the same integers), which the add then writes into the int8 input directly
            f = self._frames_2d
            np.divide(frames, self._in_scale, out=f)
            np.rint(f, out=f)
            np.maximum(f, self._in_lo, out=f)
            np.minimum(f, self._in_hi, out=f)
            np.add(f, self._in_zero, out=self._frames_in_2d, casting="unsafe")
        else:
            np.copyto(self._frames_in_2d, frames)
        if self._raw is not None:
            self._raw()
            for state, new in self._state_pairs:
                np.copyto(state, new)
            scores = self._score_flat
        else:
            it = self._it
            it.set_tensor(self._in[0], self._frames_in)
            for index, state in zip(self._in[1:], self._states):
                it.set_tensor(index, state)
            it.invoke()
            for view, state in zip(self._state_views, self._states):
                np.copyto(state, view())
            scores = self._score_view().reshape(-1)
        if self._out_quantized:
            np.subtract(scores, self._out_zero, out=self._scores, dtype=np.float32)
            self._scores *= self._out_scale
        else:
            np.copyto(self._scores, scores)
        return self._scores

    def check_entry(self, entry: StreamEntry, manifest_path: str | os.PathLike = "manifest") -> None:
        """ManifestError unless the manifest's description of the step model's tensors matches it."""
        for what, listed, actual in (("inputs", entry.inputs, self.input_specs),
                                     ("outputs", entry.outputs, self.output_specs)):
            if len(listed) != len(actual):
                raise ManifestError(f"{manifest_path}: lists {len(listed)} {what} of {self.path.name}, the model "
                                    f"has {len(actual)}")
            for (name, spec), real in zip(listed, actual):
                if not same_tensor(spec, real):
                    raise ManifestError(f"{manifest_path}: says {what} {name} of {self.path.name} is {spec}, "
                                        f"the model has {real}")
