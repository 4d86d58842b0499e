"""What this CPU and this torch build can do, found once per process, and the engine's choices that follow.

Two choices change only speed (and results by rounding), never whether a call runs:

- **GEMM library** for float32: MKL's packed GEMM or oneDNN's reordered one (``csrc/gemm.h``). Which is faster
  depends on the CPU and on the size of the per-step product (MKL took a slow path on the AMD EPYCs of
  BENCHMARKS.md; on an Intel Xeon they were within 10%; and a oneDNN call costs ~13 us however small its
  product, an MKL call ~3 us, which decides the lab's small models). So it is measured here, once, on a small
  and a large per-step product, and each call takes the choice of its size class (:data:`SMALL_PRODUCT`);
  oneDNN is taken only when it wins by a clear margin: a near tie keeps MKL. ``LSTMKIT_GEMM=mkl|onednn``
  overrides both.
- **bf16 strategy** under ``torch.autocast("cpu", dtype=torch.bfloat16)``: ``"bf16"`` stores the GEMM operands
  and results in bf16 and multiplies with oneDNN's bf16 kernels; ``"fp32"`` runs the whole call in float32
  and rounds its outputs to bf16. ``"bf16"`` needs a CPU with bf16 instructions whose oneDNN can create a bf16
  primitive (a tiny try), and is taken only where it is measured faster than fp32 by a margin. Everywhere
  else, AVX2-only CPUs among them (where oneDNN cannot create bf16 primitives at all), ``"fp32"`` serves:
  never fail where float32 can serve. ``LSTMKIT_BF16=bf16|fp32`` overrides it (``bf16`` raises where it cannot run).

Measured choices are saved next to the engine's build (``cpu-choice-*.json``, keyed by torch's version, the
thread count and the ISA limits in the environment), so every later process on the machine makes the same choice
and gives bitwise the same results (a resumed training run among them); measurements on a busy machine would
otherwise differ from process to process.

:func:`torch_kernel_runs_bf16` says whether torch's own fused kernel for a cell runs under bf16 autocast here
(oneDNN's LSTM primitive does not exist in bf16 on AVX2-only CPUs), so ``auto`` can send those calls elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...errors import InputError
from .build import build_directory, cpu_fingerprint
from .constant import constant_under_compile

__all__ = ["Capabilities", "Choice", "capabilities", "choice", "gemm_id", "torch_kernel_runs_bf16"]

# The instruction-set flags that decide a path: vector width, bf16 arithmetic, AMX tiles.
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "amx_bf16", "amx_tile")
# oneDNN must beat MKL by this factor to be chosen (a near tie keeps MKL).
ONEDNN_MARGIN = 1.25
# Per-step products (B x R x G*H multiply-adds) below this are "small": fixed call costs decide them, not FLOPs.
# Measured on the AMD EPYC: oneDNN's call cost ~13-16 us whatever the size, MKL's ~3 us, so MKL won every
# product under ~1M multiply-adds (0.2-0.5x oneDNN's time) and oneDNN from ~4M (16 x 256 x 1024: 0.44x MKL's).
SMALL_PRODUCT = 1 << 20
# Per-step products (fp32, fp64) up to this many multiply-adds run on resident weights (csrc/small_gemm.h: packed
# once per call, a register-blocked loop per step, no library call). Measured: BENCHMARKS.md, "Small shapes".
# ``LSTMKIT_RESIDENT_MACS`` replaces it (0: never).
RESIDENT_PRODUCT = 1 << 22
SMALL_SHAPE = (8, 64, 256)          # (M, K, N) the small class is measured on
LARGE_SHAPE = (64, 512, 2048)       # and the large one
BF16_MARGIN = 1.10


@dataclass(frozen=True)
class Capabilities:
    model: str                      # CPU model name ('' if unknown)
    flags: tuple[str, ...]          # the ones of FLAGS this CPU has
    torch_capability: str           # ATen's vector ISA: torch.backends.cpu.get_cpu_capability()
    onednn_bf16: str                # '' when oneDNN creates a bf16 inner-product primitive here, else why not
    threads: int


@dataclass(frozen=True)
class Choice:
    gemm: str                       # "mkl" or "onednn": the float32 GEMM library for large per-step products
    gemm_why: str
    bf16: str                       # "bf16" or "fp32": how a bf16-autocast call runs
    bf16_why: str
    gemm_small: str = "mkl"         # the library for per-step products under SMALL_PRODUCT
    gemm_small_why: str = ""


def _try(fn: Callable[[], object]) -> str:
    """'' if fn runs, else the first line of its error."""
    try:
        fn()
    except RuntimeError as e:
        text = str(e).strip()
        return text.splitlines()[0].split(". Run workload")[0] if text else type(e).__name__
    return ""


@functools.cache
def capabilities() -> Capabilities:
    text = cpu_fingerprint()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 "")
    have = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
    bf = torch.bfloat16
    onednn_bf16 = "oneDNN is not in this torch build" if not torch.backends.mkldnn.is_available() else _try(
        lambda: torch.ops.mkldnn._linear_pointwise(torch.ones(2, 16, dtype=bf), torch.ones(16, 16, dtype=bf),
                                                   None, "none", [], ""))
    return Capabilities(model, tuple(f for f in FLAGS if f in have), torch.backends.cpu.get_cpu_capability(),
                        onednn_bf16, torch.get_num_threads())


@functools.cache
def torch_kernel_runs_bf16(kernel: str) -> str:
    """'' when torch's fused kernel ``kernel`` ("lstm", "gru", "rnn_tanh", "rnn_relu") runs under bf16 autocast on
    this CPU, else its error (a tiny try, once per process)."""
    make = {"lstm": lambda: torch.nn.LSTM(4, 4), "gru": lambda: torch.nn.GRU(4, 4),
            "rnn_tanh": lambda: torch.nn.RNN(4, 4), "rnn_relu": lambda: torch.nn.RNN(4, 4, nonlinearity="relu")}

    def run():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            make[kernel]()(torch.ones(2, 1, 4))
    return _try(run)


def _best_seconds(fn: Callable[[], object], repeats: int = 7, calls: int = 8) -> float:
    """The fastest of `repeats` timings (the least disturbed by other work on the machine), per call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return min(times)


@functools.cache
def _measure_gemm(shape: tuple[int, int, int]) -> tuple[float, float]:
    """Seconds per step-sized product (M x K) @ (K x N), float32: (MKL packed, oneDNN reordered)."""
    M, K, N = shape
    a, w = torch.randn(M, K), torch.randn(N, K)
    packed = torch.ops.mkl._mkl_reorder_linear_weight(w, M)
    reordered = torch.ops.mkldnn._reorder_linear_weight(w, M)
    mkl = _best_seconds(lambda: torch.ops.mkl._mkl_linear(a, packed, w, None, M))
    onednn = _best_seconds(lambda: torch.ops.mkldnn._linear_pointwise(a, reordered, None, "none", [], ""))
    return mkl, onednn


def _measure_bf16(gemm: str) -> tuple[float, float]:
    """Seconds per large step-sized product in bf16 (oneDNN) and in fp32 with the chosen library (the fp32
    strategy; the same measurement the GEMM choice made)."""
    M, K, N = LARGE_SHAPE
    a16, w16 = torch.randn(M, K).bfloat16(), torch.randn(N, K).bfloat16()
    reordered16 = torch.ops.mkldnn._reorder_linear_weight(w16, M)
    bf16 = _best_seconds(lambda: torch.ops.mkldnn._linear_pointwise(a16, reordered16, None, "none", [], ""))
    mkl, onednn = _measure_gemm(LARGE_SHAPE)
    return bf16, mkl if gemm == "mkl" else onednn


def _override(name: str, allowed: tuple[str, ...]) -> str | None:
    value = os.environ.get(name, "auto").strip().lower()
    if value == "auto":
        return None
    if value not in allowed:
        raise InputError(f"{name} (={value!r}) must be {', '.join(map(repr, allowed))} or 'auto'")
    return value


def _gemm_choice(caps: Capabilities, shape: tuple[int, int, int]) -> tuple[str, str]:
    forced = _override("LSTMKIT_GEMM", ("mkl", "onednn"))
    if forced:
        return forced, "set by LSTMKIT_GEMM"
    if not torch.backends.mkldnn.is_available():
        return "mkl", "oneDNN is not in this torch build"
    if not torch.backends.mkl.is_available():
        return "onednn", "MKL is not in this torch build"
    mkl, onednn = _measure_gemm(shape)
    figures = f"{'x'.join(map(str, shape))} fp32 GEMM: MKL {mkl * 1e6:.1f} us, oneDNN {onednn * 1e6:.1f} us"
    if mkl > ONEDNN_MARGIN * onednn:
        return "onednn", f"measured faster ({figures})"
    return "mkl", f"oneDNN not {ONEDNN_MARGIN}x faster ({figures})"


def _bf16_choice(caps: Capabilities, gemm: str) -> tuple[str, str]:
    forced = _override("LSTMKIT_BF16", ("bf16", "fp32"))
    if forced == "bf16" and caps.onednn_bf16:
        raise InputError(f"LSTMKIT_BF16='bf16' cannot run on this CPU: oneDNN has no bf16 kernels here "
                         f"({caps.onednn_bf16}); unset it or use 'fp32'")
    if forced:
        return forced, "set by LSTMKIT_BF16"
    if caps.onednn_bf16:
        return "fp32", f"oneDNN cannot run bf16 GEMMs here ({caps.onednn_bf16})"
    if not {"avx512_bf16", "amx_bf16"} & set(caps.flags):
        return "fp32", "no bf16 instructions (avx512_bf16, AMX): bf16 GEMMs would be emulated"
    bf16, fp32 = _measure_bf16(gemm)
    figures = f"per-step GEMM: bf16 {bf16 * 1e6:.0f} us, fp32 {fp32 * 1e6:.0f} us"
    if fp32 > BF16_MARGIN * bf16:
        return "bf16", f"bf16 GEMMs measured faster ({figures})"
    return "fp32", f"bf16 GEMMs not faster than fp32 here ({figures})"


def _saved_choice_path() -> str:
    keys = ["choice-v2", torch.__version__, str(torch.get_num_threads())]   # v2: with the small-product class
    keys += [f"{k}={os.environ.get(k, '')}" for k in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
                                                      "ATEN_CPU_CAPABILITY", "LSTMKIT_GEMM", "LSTMKIT_BF16")]
    digest = hashlib.sha1(" ".join(keys).encode()).hexdigest()[:10]
    return os.path.join(build_directory(), f"cpu-choice-{digest}.json")


def _load_saved(path: str) -> Choice | None:
    try:
        with open(path) as f:
            saved = json.load(f)
        c = Choice(**saved)
    except (OSError, ValueError, TypeError):
        return None
    ok = c.gemm in ("mkl", "onednn") and c.bf16 in ("bf16", "fp32")
    if c.bf16 == "bf16" and capabilities().onednn_bf16:            # saved on a CPU (or ISA limit) that had it
        ok = False
    return c if ok else None


def remeasure() -> Choice:
    """Forget the saved choice and measure again (``lstmkit build`` does, so it can be redone on a quiet machine)."""
    with contextlib.suppress(OSError):
        os.remove(_saved_choice_path())
    _measure_gemm.cache_clear()
    choice.cache_clear()
    return choice()


@functools.cache
def choice() -> Choice:
    """The engine's GEMM library and bf16 strategy on this machine: measured once and saved (see above)."""
    path = _saved_choice_path()
    saved = _load_saved(path)
    if saved is not None:
        return saved
    caps = capabilities()
    gemm, gemm_why = _gemm_choice(caps, LARGE_SHAPE)
    small, small_why = _gemm_choice(caps, SMALL_SHAPE)
    bf16, bf16_why = _bf16_choice(caps, gemm)
    made = Choice(gemm, gemm_why, bf16, bf16_why, small, small_why)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(made.__dict__, f)
        os.replace(tmp, path)                                      # atomic: a reader sees all of it or none
    except OSError:
        pass                                                       # a read-only cache: measure in each process
    return made


def gemm_id(dtype: torch.dtype, step_product: int) -> int:
    """The ``gemm`` argument of the C++ layer functions for tensors of ``dtype`` whose per-step product has
    ``step_product`` multiply-adds (B x R x G*H): 0 = MKL, 1 = oneDNN, 2 = resident weights (fp32 and fp64 per-step
    products up to :func:`resident_product`, with MKL for the products over all steps).

    bf16 tensors go to oneDNN only with the bf16 strategy; otherwise 0, for which ``csrc/gemm.h`` widens bf16
    operands to fp32 (exact) and runs fp32 GEMMs, so a bf16 call never needs a bf16 primitive.
    """
    c = choice()
    if dtype == torch.bfloat16:
        return 0 if bf16_runs_as_fp32(step_product) else 1
    if step_product <= resident_product():
        return 2
    library = c.gemm_small if step_product < SMALL_PRODUCT else c.gemm
    return 1 if library == "onednn" else 0


def bf16_runs_as_fp32(step_product: int) -> bool:
    """Whether a call under bf16 autocast whose per-step product has ``step_product`` multiply-adds runs in
    float32: with the ``"fp32"`` strategy, and for small products with either (a oneDNN bf16 call costs its fixed
    ~13 us however small the product: a peephole LSTM at T=5000, B=1, H=2 took 11x torch.nn's bf16 time)."""
    return bf16_strategy() == "fp32" or step_product < SMALL_PRODUCT


@constant_under_compile
def bf16_strategy() -> str:
    """``choice().bf16``. Under torch.compile this runs once while tracing and its value is a constant of the graph
    (the choice, measured or read from disk, cannot be traced and never changes within a process)."""
    return choice().bf16


def resident_product() -> int:
    """The largest per-step product (multiply-adds) run on resident weights: :data:`RESIDENT_PRODUCT`, or
    ``LSTMKIT_RESIDENT_MACS`` (0 turns resident weights off)."""
    value = os.environ.get("LSTMKIT_RESIDENT_MACS")
    if value is None:
        return RESIDENT_PRODUCT
    if not value.strip().isdigit():
        raise InputError(f"LSTMKIT_RESIDENT_MACS (={value!r}) must be a non-negative integer (0: never)")
    return int(value)
