"""The C++ files kws-convert writes for TensorFlow Lite Micro (converters/carray.py), built as a
firmware would build them: strict flags with trigraphs on, the two model arrays and their labels read
back from a compiled program, alignment and read-only placement checked on the compiled objects.
Needs no model: the renderers get a made-up flatbuffer, ops, quantization and labels."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kws.converters import carray
from kws.converters.errors import ConvertError
from kws.converters.flatbuffer import ModelInfo, OpCode, OperatorInfo, TensorInfo
from kws.converters.opcheck import OpUse
from kws.edge.manifest import TensorSpec

# Labels a dataset's folder names may hold: trigraph sequences (??= is #, ??/ is a backslash that
# would swallow the closing quote), quotes, backslashes, a tab, UTF-8, an octal-looking tail after a
# non-ASCII byte, a leading digit.
LABELS = ("_silence_", "what??=", "??/", 'say "hi"', "back\\slash", "tab\there", "café", "é7", "7up")
# Every byte value, a length that does not fill the last row, and the flatbuffer identifier at 4.
MODEL = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 3 + b"\x00\xff?\\\"??="
STEP_MODEL = MODEL[::-1]
USES = [OpUse("CONV_2D", 3, 2, False, 6), OpUse("FULLY_CONNECTED", 9, 1, False, 11), OpUse("SOFTMAX", 1, 1, False, 3)]
ARENA = carray.ArenaEstimate(peak_activations=62_720, bookkeeping=5_000, total=75_776)
INPUT = TensorSpec((1, 98, 40), "int8", 0.10242190957069397, -128)
OUTPUT = TensorSpec((1, len(LABELS)), "int8", 0.00390625, -128)
STEP_INPUTS = (TensorSpec((1, 3, 40), "int8", 0.10242190957069397, -128), TensorSpec((1, 2, 1, 16), "int8", 0.05, 7),
               TensorSpec((1, 4, 1, 16), "int8", 0.025, -3))
STEP_OUTPUTS = (OUTPUT, *STEP_INPUTS[1:])
STRICT_FLAGS = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
# C++11 and C++14 still replace trigraphs (-trigraphs makes GNU mode do it too); C++17 dropped them.
STANDARDS = [["-std=c++11", "-trigraphs"], ["-std=c++14", "-trigraphs"], ["-std=c++17"]]

# Writes the window model's bytes, its labels (each NUL-terminated), its two scales as float32, then
# the same for the step model; exits non-zero where the X-macro does not list KWS_MODEL_NUM_OPS ops.
MAIN = r"""
#include <cstdio>
#include <cstring>
#include "model_int8.h"
#include "stream_int8.h"

struct Resolver {
  int added = 0;
  void AddConv2D() { ++added; }
  void AddFullyConnected() { ++added; }
  void AddSoftmax() { ++added; }
};

static void Dump(const unsigned char* data, unsigned int len, const char* const* labels, int n, float in, float out) {
  std::fwrite(data, 1, len, stdout);
  for (int i = 0; i < n; ++i) std::fwrite(labels[i], 1, std::strlen(labels[i]) + 1, stdout);
  std::fwrite(&in, sizeof in, 1, stdout);
  std::fwrite(&out, sizeof out, 1, stdout);
}

int main() {
  Resolver window, step;
#define KWS_ADD_WINDOW_OP(name) window.name();
  KWS_MODEL_OPS(KWS_ADD_WINDOW_OP)
#define KWS_ADD_STEP_OP(name) step.name();
  KWS_STREAM_MODEL_OPS(KWS_ADD_STEP_OP)
  if (window.added != KWS_MODEL_NUM_OPS || step.added != KWS_STREAM_MODEL_NUM_OPS) return 2;
  Dump(g_kws_model_data, g_kws_model_data_len, kKwsLabels, kKwsNumLabels, kKwsInputScale, kKwsOutputScale);
  Dump(g_kws_stream_model_data, g_kws_stream_model_data_len, kKwsStreamLabels, kKwsStreamNumLabels,
       kKwsStepInputScale, kKwsStepOutputScale);
  return 0;
}
"""

# The definitions themselves (included, so the compiler sees the declared alignment of the arrays:
# on x86-64 the ABI aligns any 16-byte array anyway, so the address alone would prove nothing).
ALIGNMENT_CHECK = f"""
#include "model_int8.cc"
#include "stream_int8.cc"
static_assert(__alignof__(g_kws_model_data) >= {carray.ARRAY_ALIGNMENT}, "window model array alignment");
static_assert(__alignof__(g_kws_stream_model_data) >= {carray.ARRAY_ALIGNMENT}, "step model array alignment");
static_assert(sizeof g_kws_model_data == {len(MODEL)}, "window model array length");
static_assert(sizeof g_kws_stream_model_data == {len(STEP_MODEL)}, "step model array length");
"""


# A <cstdint> that declares the fixed-width types in namespace std only, as the C++ standard requires
# of it (glibc's also puts them in the global namespace, where a firmware toolchain's need not).
STD_ONLY_CSTDINT = """
#ifndef KWS_TEST_STD_ONLY_CSTDINT
#define KWS_TEST_STD_ONLY_CSTDINT
namespace std {
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
}
#endif
"""
HEADERS_ONLY = """
#include "model_int8.h"
#include "stream_int8.h"
int main() { return kKwsStateZeroPoint[0] + kKwsStateTotalBytes > 0 ? 0 : 1; }
"""


def _write_sources(folder: Path) -> Path:
    files = {
        "model_int8.h": carray.render_header(USES, ARENA, INPUT, OUTPUT, LABELS, "model_int8.tflite", len(MODEL)),
        "model_int8.cc": carray.render_source(MODEL, LABELS, "model_int8.h", "model_int8.tflite"),
        "stream_int8.h": carray.render_stream_header(USES, ARENA, STEP_INPUTS, STEP_OUTPUTS, LABELS,
                                                     "stream_int8.tflite", len(STEP_MODEL)),
        "stream_int8.cc": carray.render_source(STEP_MODEL, LABELS, "stream_int8.h", "stream_int8.tflite",
                                               array_name=carray.STREAM_ARRAY_NAME,
                                               length_name=carray.STREAM_LENGTH_NAME,
                                               labels_name=carray.STREAM_LABELS_NAME),
    }
    for name, text in files.items():
        (folder / name).write_bytes(text.encode("utf-8"))
    return folder


def _compiler() -> str:
    gxx = shutil.which("g++")
    if gxx is None:
        pytest.skip("g++ not found: the generated C++ cannot be compiled here (apt-get install g++)")
    return gxx


def _build(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stderr}"


def _expected_dump(data: bytes, scales: tuple[float, float]) -> bytes:
    labels = b"".join(label.encode("utf-8") + b"\0" for label in LABELS)
    return data + labels + np.array(scales, dtype=np.float32).tobytes()


def test_labels_are_ascii_literals_without_trigraphs():
    source = carray.render_source(MODEL, LABELS, "model_int8.h", "model_int8.tflite")
    assert source.isascii()
    assert "??" not in source
    assert ('{"_silence_", "what\\?\\?=", "\\?\\?/", "say \\"hi\\"", "back\\\\slash", "tab\\011here", '
            '"caf\\303\\251", "\\303\\2517", "7up"};') in source


@pytest.mark.parametrize("standard", STANDARDS, ids=lambda flags: flags[0][5:])
def test_strictly_compiled_program_reads_back_the_models_and_labels(tmp_path, standard):
    gxx = _compiler()
    folder = _write_sources(tmp_path)
    (folder / "main.cc").write_text(MAIN)
    (folder / "alignment_check.cc").write_text(ALIGNMENT_CHECK)
    flags = [*standard, *STRICT_FLAGS]
    _build([gxx, *flags, "-fsyntax-only", "alignment_check.cc"], folder)
    _build([gxx, *flags, "-o", "dump", "main.cc", "model_int8.cc", "stream_int8.cc"], folder)
    proc = subprocess.run([str(folder / "dump")], capture_output=True)
    assert proc.returncode == 0, f"the ops X-macros do not list their NUM_OPS ops (exit {proc.returncode})"
    window = _expected_dump(MODEL, (INPUT.scale, OUTPUT.scale))
    step = _expected_dump(STEP_MODEL, (STEP_INPUTS[0].scale, STEP_OUTPUTS[0].scale))
    assert proc.stdout[:len(window)] == window
    assert proc.stdout[len(window):] == step


def test_model_arrays_and_labels_are_read_only_data(tmp_path):
    """Without position-independent code, as on a microcontroller, every definition of the .cc lands
    in read-only data (flash), none in RAM."""
    gxx, nm = _compiler(), shutil.which("nm")
    if nm is None:
        pytest.skip("nm not found: cannot list the sections of the compiled model (apt-get install binutils)")
    folder = _write_sources(tmp_path)
    _build([gxx, "-std=c++11", *STRICT_FLAGS, "-fno-pic", "-c", "model_int8.cc", "-o", "model_int8.o"], folder)
    listing = subprocess.run([nm, str(folder / "model_int8.o")], capture_output=True, text=True, check=True).stdout
    kinds = {parts[2]: parts[1] for parts in (line.split() for line in listing.splitlines()) if len(parts) == 3}
    assert {name: kinds.get(name) for name in (carray.ARRAY_NAME, carray.LENGTH_NAME, carray.LABELS_NAME)} == {
        carray.ARRAY_NAME: "R", carray.LENGTH_NAME: "R", carray.LABELS_NAME: "R"}


def test_headers_use_only_the_std_fixed_width_types_their_include_declares(tmp_path):
    """The step header includes <cstdint>, which promises std::int8_t, not ::int8_t: compiled against
    a <cstdint> declaring only the std:: names, both headers still build."""
    gxx = _compiler()
    folder = _write_sources(tmp_path)
    include = tmp_path / "std_only"
    include.mkdir()
    (include / "cstdint").write_text(STD_ONLY_CSTDINT)
    (folder / "headers.cc").write_text(HEADERS_ONLY)
    _build([gxx, "-std=c++11", *STRICT_FLAGS, "-I", str(include), "-fsyntax-only", "headers.cc"], folder)


@pytest.mark.parametrize("op_name", ["MyCustomOp", "evil\n#define KWS_MODEL_NUM_OPS 0 */ X"])
def test_a_custom_op_is_refused_naming_the_model_and_the_op(op_name):
    """A custom op has no resolver method to register: the headers are refused with one line naming
    the .tflite and the op, never written with an invented AddMyCustomOp() or the raw name."""
    uses = [*USES, OpUse(op_name, 1, 1, True, None)]
    with pytest.raises(ConvertError) as window:
        carray.render_header(uses, ARENA, INPUT, OUTPUT, LABELS, "model_int8.tflite", len(MODEL))
    with pytest.raises(ConvertError) as step:
        carray.render_stream_header(uses, ARENA, STEP_INPUTS, STEP_OUTPUTS, LABELS, "stream_int8.tflite",
                                    len(STEP_MODEL))
    for error, model in ((window, "model_int8.tflite"), (step, "stream_int8.tflite")):
        message = str(error.value)
        assert message.startswith(f"{model}: uses the custom op {op_name!r}, ")
        assert message.endswith("its C source is not written") and "\n" not in message


@pytest.mark.parametrize("op_name, guess", [("BUILTIN_150", "AddBuiltin150"), ("BATCH_MATMUL", "AddBatchMatmul")],
                         ids=["newer-than-the-schema", "irregular-name"])
def test_a_builtin_op_without_a_known_resolver_method_is_refused(op_name, guess):
    """An op missing from the resolver-method table got a made-up Add<Name>() (TFLM's is
    AddBatchMatMul; a code newer than the schema has none): the firmware's build then failed on a
    method that does not exist, with no word of why. Now one line names the .tflite and the op."""
    uses = [*USES, OpUse(op_name, 1, 1, False, 1)]
    for render, model in ((lambda: carray.render_header(uses, ARENA, INPUT, OUTPUT, LABELS, "model_int8.tflite",
                                                        len(MODEL)), "model_int8.tflite"),
                          (lambda: carray.render_stream_header(uses, ARENA, STEP_INPUTS, STEP_OUTPUTS, LABELS,
                                                               "stream_int8.tflite", len(STEP_MODEL)),
                           "stream_int8.tflite")):
        with pytest.raises(ConvertError) as error:
            render()
        message = str(error.value)
        assert message.startswith(f"{model}: uses the builtin op {op_name!r}, ") and guess not in message
        assert message.endswith("not written (convert without c in --formats)") and "\n" not in message


def test_every_op_of_kws_trains_models_has_its_resolver_method():
    """The refusal above never meets kws's own models: the ops firmware_notes lists for each window
    architecture, and the state plumbing a step model adds, all have their method in the table."""
    from kws.converters.opcheck import MICRO_RESOLVER_METHODS
    from kws.converters.streaming import STATE_OPS

    notes = (Path(__file__).resolve().parents[1] / "firmware_notes" / "microcontroller.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `\w+`(?: \([^)]*\))? \| ([A-Z_0-9, ]+) \|", notes, flags=re.M)
    listed = {op.strip() for ops in rows for op in ops.split(",")}
    assert len(rows) == 5 and {"CONV_2D", "STRIDED_SLICE", "MAX_POOL_2D"} <= listed
    assert not (listed | set(STATE_OPS)) - set(MICRO_RESOLVER_METHODS)


def _default_tcn_activations() -> ModelInfo:
    """The activation graph of kws-train's default tcn (width 128, 4 residual blocks, 5 labels) as
    its int8 .tflite holds it: input, reshape, a 3-frame conv, then per block a dilated depthwise +
    pointwise conv twice (8 frames fewer each) beside a strided slice of the block's input, and an
    add; average pool, dense, softmax. Tensors are numbered in the order the ops write them."""
    names = ("RESHAPE", "CONV_2D", "DEPTHWISE_CONV_2D", "STRIDED_SLICE", "ADD", "AVERAGE_POOL_2D",
             "FULLY_CONNECTED", "SOFTMAX")
    opcodes = tuple(OpCode(0, name, 1) for name in names)
    tensors = [TensorInfo("input", (1, 98, 40), "int8", 1, 0, False)]
    operators = []

    def op(name: str, shape: tuple[int, ...], *inputs: int) -> int:
        tensors.append(TensorInfo(f"t{len(tensors)}", shape, "int8", 1, 0, False))
        operators.append(OperatorInfo(names.index(name), inputs, (len(tensors) - 1,)))
        return len(tensors) - 1

    x = op("CONV_2D", (1, 96, 1, 128), op("RESHAPE", (1, 98, 1, 40), 0))
    for _block in range(4):
        frames = tensors[x].shape[1]
        y = op("CONV_2D", (1, frames - 8, 1, 128), op("DEPTHWISE_CONV_2D", (1, frames - 8, 1, 128), x))
        y = op("CONV_2D", (1, frames - 16, 1, 128), op("DEPTHWISE_CONV_2D", (1, frames - 16, 1, 128), y))
        x = op("ADD", (1, frames - 16, 1, 128), y, op("STRIDED_SLICE", (1, frames - 16, 1, 128), x))
    scores = op("SOFTMAX", (1, 5), op("FULLY_CONNECTED", (1, 5), op("AVERAGE_POOL_2D", (1, 1, 1, 128), x)))
    return ModelInfo("tcn", opcodes, tuple(tensors), tuple(operators), (0,), (scores,), 1)


def test_the_arena_estimate_counts_the_gaps_tflite_micros_planner_leaves():
    """kKwsTensorArenaSize was below what TFLite Micro needs for the default tcn (66,560 B estimated,
    67,643 B needed), so firmware sized by it failed AllocateTensors(): the estimate counted the most
    activation bytes alive at once (34,816 B), but TFLM's greedy planner leaves gaps between the
    residual blocks' tensors and lays them out in 43,008 B (its "Arena allocation head" for that
    model, tflite-micro 0.dev20261023)."""
    info = _default_tcn_activations()
    assert carray.planned_activations(info) == 43_008
    estimate = carray.estimate_arena(info)
    assert estimate.peak_activations == 43_008
    assert estimate.total >= 43_008 * carray.ACTIVATION_HEADROOM + estimate.bookkeeping
