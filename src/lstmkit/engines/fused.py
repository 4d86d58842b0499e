"""The compiled CPU engine for one LSTM layer in one direction, with hand-written BPTT.

:func:`lstm_layer` runs the recurrence below over a padded, time-major batch in C++ (``lstmkit/csrc``), compiled
on first use with :func:`torch.utils.cpp_extension.load` and cached. For step t, with h = h_{t-1}, c = c_{t-1}::

    h_in = h * recurrent_mask                                      (if a mask is given)
    a    = x_t W_ih^T + h_in W_hh^T + b_ih + b_hh                  (missing biases are 0)
    a    = LN(x_t W_ih^T; γ_ih) + LN(h_in W_hh^T; γ_hh) + b_ih + b_hh      with ln
           LN(v; γ) = γ ⊙ (v - mean(v)) / sqrt(var(v) + eps) over the 4H features, biased var, eps = 1e-5
    a_i, a_f, a_g, a_o = split(a, 4);   with peephole: a_i += p_i ⊙ c,  a_f += p_f ⊙ c
    i = σ(a_i);   f = 1 - i if coupled else σ(a_f);   g = tanh(a_g)
    c' = f ⊙ c + i ⊙ g;                 with peephole: a_o += p_o ⊙ c'
    o = σ(a_o)
    m = γ_c ⊙ (c' - mean(c')) / sqrt(var(c') + eps) + β_c  with ln (over H),  else m = c'
    h' = o ⊙ tanh(m);                   with w_hr: h' = h' W_hr^T
    zoneout (training, 0/1 masks z_c, z_h; 1 keeps the old value): c' = z_c ⊙ c + (1 - z_c) ⊙ c',  same for h'
    zoneout (eval, float p):                                      c' = p c + (1 - p) c',             same for h'
    y_t = h';  state = (h', c');  gates_t = (i, f, g, o);  c_seq_t = c'

Steps t >= lengths[b] leave row b's state unchanged and give y = gates = c_seq = 0.

The algorithm is the one oneDNN and haste use: one GEMM X W_ih^T over all T*B rows; per step one GEMM
h_in W_hh^T and one fused pointwise pass (rows in parallel); backward per step one pointwise pass and one GEMM
dA W_hh, and dW_ih, dW_hh, dX (and dW_hr) as GEMMs over many rows at once. Results are bitwise reproducible.

Backward runs in chunks of about 1024 rows (K steps of B rows), from the last: per chunk it runs the chunk's
steps, then adds the chunk's share of dW_ih, dW_hh, dX and the parameter grads, so the grads of a (and with ln
of a_x, a_h and m) exist for one chunk at a time instead of (T, B, 4H) each. With ln, forward saves only the mean
and rstd of a_x = x W_ih^T, a_h = h_in W_hh^T and c', not their normalised values: backward recomputes the
chunk's a_x and a_h (one GEMM each) and rebuilds them: two GEMMs more (forward+backward ~20% slower at T=100,
B=64, H=512) for 40% of the peak memory (csrc/lstm_layer.cpp).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
from pathlib import Path

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError

__all__ = ["is_available", "unavailable_reason", "lstm_layer"]

_CSRC = Path(__file__).resolve().parent.parent / "csrc"
_SOURCES = ["module.cpp", "lstm_layer.cpp", "gru_rnn_layer.cpp"]
_HEADERS = ["layers.h", "aten_util.h", "lstm_cell.h", "gru_rnn_cell.h", "gemm.h", "buffers.h"]
_EPS = 1e-5

_module = None
_reason: str | None = None


@functools.cache
def _cpu_fingerprint() -> str:
    """Model name and feature flags of this CPU ('' where /proc/cpuinfo is unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    keep = [line for line in text.splitlines()[:64] if line.startswith(("vendor_id", "model name", "flags"))]
    return "\n".join(dict.fromkeys(keep))


def _flags(fingerprint: str) -> list[str]:
    # -O3 -march=native: the pointwise pass is compiled for this CPU's widest vectors (AVX-512 here, where the
    # vectorised exp of lstm_cell.h runs 16 lanes). That is safe only because the binary never leaves the CPU it
    # was built for: it is built on first use, on the machine that runs it, and the extension's name (hence its
    # cache directory) includes a hash of the CPU model and flags, so a cache shared between machines (a network
    # home, a CI cache) holds one build per CPU instead of handing one CPU's build to another. Without a CPU
    # fingerprint (no /proc/cpuinfo), or off x86-64, we fall back to plain -O3.
    # -fopenmp: at::parallel_for is header-inlined OpenMP; without it the pointwise pass would run on one thread.
    # It links the libgomp.so.1 torch has already loaded (same soname), so there is still one OpenMP runtime.
    # No -ffast-math: it would let the compiler reorder the reductions of layer norm (and break NaN handling).
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    if fingerprint and platform.machine() in ("x86_64", "AMD64"):
        flags.append("-march=native")
    return flags


def _load():
    global _module, _reason
    if _module is not None or _reason is not None:
        return _module
    try:
        from torch.utils import cpp_extension

        if shutil.which(os.environ.get("CXX", "c++")) is None:
            raise RuntimeError(f"no C++ compiler ({os.environ.get('CXX', 'c++')!r}) on PATH")
        if not cpp_extension.is_ninja_available():
            raise RuntimeError("ninja is not installed (pip install ninja, or lstmkit[fused])")
        fingerprint = _cpu_fingerprint()
        flags = _flags(fingerprint)
        # The name also changes with the code, so a build directory never serves an older engine (torch's own
        # version check hashes the .cpp files, not the headers).
        code = b"".join((_CSRC / f).read_bytes() for f in _SOURCES + _HEADERS)
        digest = hashlib.sha1((fingerprint + " ".join(flags)).encode() + code).hexdigest()[:10]
        name = f"lstmkit_fused_{digest}"
        build_dir = os.environ.get("LSTMKIT_BUILD_DIR")
        if build_dir:
            build_dir = os.path.join(build_dir, name)
            os.makedirs(build_dir, exist_ok=True)
        _module = cpp_extension.load(
            name=name,
            sources=[str(_CSRC / s) for s in _SOURCES],
            extra_include_paths=[str(_CSRC)],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            build_directory=build_dir,
            verbose=False,
        )
    except Exception as e:  # a missing compiler, a failed build, a read-only cache: report, never raise
        _reason = f"the fused engine could not be built: {type(e).__name__}: {e}"
        _module = None
    return _module


def is_available() -> bool:
    """Whether the compiled engine can run here (compiles it on the first call; never raises)."""
    return _load() is not None


def unavailable_reason() -> str:
    """Why :func:`is_available` is False ('' when it is True)."""
    _load()
    return _reason or ""


def release_memory() -> None:
    """Free the working buffers the engine keeps between calls (see ``csrc/buffers.h``: up to ``LSTMKIT_CACHE_MB``,
    default 1024 MB, so that a call does not page-fault and zero its few hundred MB afresh every time)."""
    if _load() is not None:
        _module.release_buffers()


def cached_bytes() -> int:
    """Bytes of working buffers the engine holds for reuse right now (0 when it is not built)."""
    return int(_module.cached_bytes()) if _load() is not None else 0


def _gemm() -> int:
    """Which library runs the GEMMs: 0 = MKL (W_hh, W_hr packed once per call), 1 = oneDNN (reordered once).

    Measured per step ((64 x 512) @ (512 x 2048), fp32, one thread): MKL packed 156 GFLOP/s, oneDNN reordered
    144, plain mm_out 119 on the Intel dev box; on AMD EPYC MKL takes a slow path (torch.mm ~210 GFLOP/s with two
    threads against oneDNN's ~430-450), hence oneDNN there. See csrc/gemm.h. The choice changes speed, and
    results only by rounding; LSTMKIT_GEMM=mkl|onednn overrides it.
    """
    choice = os.environ.get("LSTMKIT_GEMM", "auto").lower()
    if choice == "auto":
        choice = "onednn" if "AuthenticAMD" in _cpu_fingerprint() else "mkl"
    if choice not in ("mkl", "onednn"):
        raise InputError(f"LSTMKIT_GEMM (={choice!r}) must be 'mkl', 'onednn' or 'auto'")
    return 0 if choice == "mkl" else 1


def backward_follows(*tensors: Tensor | None) -> bool:
    """Whether autograd will want a backward of a call on these tensors (None entries are ignored)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def bf16_runs_as_fp32() -> bool:
    """Whether bf16 GEMMs are widened to fp32 here (the MKL choice, csrc/gemm.h: on the Intel dev box without AMX
    every bf16 GEMM ATen offers was 1.4-1.8x slower than fp32 on the same values)."""
    return _gemm() == 0


def _expect(name: str, t, shape: tuple[int, ...], dtype: torch.dtype | None, fix: str = "") -> None:
    if not isinstance(t, Tensor):
        raise InputTypeError(f"`{name}` must be a Tensor of shape {shape}, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise InputError(f"`{name}` must have shape {shape}, got {tuple(t.shape)}{fix}")
    if dtype is not None and t.dtype != dtype:
        raise InputError(f"`{name}` must have dtype {dtype} like `x`, got {t.dtype}")
    if t.device.type != "cpu":
        raise InputError(f"`{name}` is on {t.device}; the fused engine runs on CPU only")


def _check_x(x) -> tuple[int, int, int]:
    """(T, B, I) of a layer's input, after checking it is a 3-d tensor of a dtype the engine runs."""
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise InputError(f"`x` must be a (T, B, I) Tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype not in (torch.float32, torch.float64, torch.bfloat16):
        raise InputError(f"`x` must be float32, float64 or bfloat16, got {x.dtype}")
    return tuple(x.shape)


def _check_lengths(lengths: Tensor | None, T: int, B: int) -> Tensor | None:
    """None, or int64 (B,) lengths in [0, T], made contiguous for the C++ side."""
    if lengths is None:
        return None
    _expect("lengths", lengths, (B,), torch.int64)
    if B and (int(lengths.min()) < 0 or int(lengths.max()) > T):
        raise InputError(f"`lengths` must lie in [0, T={T}], got min {int(lengths.min())}, "
                         f"max {int(lengths.max())}")
    return lengths.contiguous()


def _is_probability(zoneout) -> bool:
    """Whether `zoneout` is an eval-mode probability (a number, not a mask); raises if it is out of [0, 1)."""
    if not isinstance(zoneout, (float, int)) or isinstance(zoneout, bool):
        return False
    if not 0.0 <= zoneout < 1.0:
        raise InputError(f"`zoneout` (={zoneout}) as a probability must lie in [0, 1)")
    return True


def lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
               b_hh: Tensor | None, w_hr: Tensor | None = None, lengths: Tensor | None = None,
               peephole: Tensor | None = None, ln: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
               coupled: bool = False, recurrent_mask: Tensor | None = None,
               zoneout: tuple[Tensor, Tensor] | float | None = None, records: bool = True):
    """One LSTM layer in one direction over a padded time-major batch; the equations are in the module docstring.

    Args (T steps, B batch, I input, H hidden, P projection, R = P with ``w_hr`` else H):
        x (T, B, I); h0 (B, R); c0 (B, H); w_ih (4H, I), w_hh (4H, R), b_ih, b_hh (4H,) or None (rows i, f, g, o);
        w_hr (P, H) or None; lengths None or int64 (B,) with values in [0, T]; peephole None or (3, H) rows
        p_i, p_f, p_o; ln None or (gamma_ih (4H,), gamma_hh (4H,), gamma_c (H,), beta_c (H,)); coupled: f = 1 - i
        (row block f of the weights is then unused); recurrent_mask None or (B, R), already scaled by 1/(1-p);
        zoneout None, (z_c (T, B, H), z_h (T, B, R)) 0/1 keep-masks (training), or a float p in [0, 1) (eval).
        records: return gates and c_seq; when False and no backward will follow, the call streams (the a_x GEMM
        and the gate buffers cover a chunk of steps at a time, so its memory besides y does not grow with T)
        and gates, c_seq come back empty, (0, B, 4H) and (0, B, H).
        Every floating tensor but the masks must have x's dtype: float32, float64 or bfloat16.

    Returns ``(y (T, B, R), h_n (B, R), c_n (B, H), gates (T, B, 4H), c_seq (T, B, H))``. y, h_n and c_n carry
    gradients to x, h0, c0 and every weight, bias, peephole and ln parameter; gates (activated i, f, g, o) and
    c_seq (the cell state after each step) are records without gradient. For bfloat16 the GEMMs run in bfloat16
    while the cell state and the pointwise math stay in float32, so gates and c_seq are float32 (y, h_n, c_n are
    bfloat16). Double backward is not supported.
    """
    T, B, I = _check_x(x)
    dt = x.dtype
    if not isinstance(w_ih, Tensor) or w_ih.dim() != 2 or w_ih.shape[0] % 4:
        raise InputError(f"`w_ih` must be (4H, I), got {getattr(w_ih, 'shape', type(w_ih).__name__)}")
    H = w_ih.shape[0] // 4
    _expect("w_ih", w_ih, (4 * H, I), dt, " (its second dimension must equal x's input size I)")
    if w_hr is not None:
        if not isinstance(w_hr, Tensor) or w_hr.dim() != 2:
            raise InputError(f"`w_hr` must be (P, H={H}), got {getattr(w_hr, 'shape', type(w_hr).__name__)}")
        _expect("w_hr", w_hr, (w_hr.shape[0], H), dt)
    R = w_hr.shape[0] if w_hr is not None else H
    _expect("w_hh", w_hh, (4 * H, R), dt, f" (R = {'P' if w_hr is not None else 'H'} = {R})")
    _expect("h0", h0, (B, R), dt)
    _expect("c0", c0, (B, H), dt)
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            _expect(name, b, (4 * H,), dt)
    if peephole is not None:
        _expect("peephole", peephole, (3, H), dt)
    if ln is not None:
        if not isinstance(ln, (tuple, list)) or len(ln) != 4:
            raise InputTypeError("`ln` must be None or a tuple (gamma_ih, gamma_hh, gamma_c, beta_c)")
        for name, p, n in zip(("gamma_ih", "gamma_hh", "gamma_c", "beta_c"), ln, (4 * H, 4 * H, H, H),
                              strict=True):
            _expect(f"ln {name}", p, (n,), dt)
    acc = torch.float32 if dt == torch.bfloat16 else dt
    lengths = _check_lengths(lengths, T, B)
    if recurrent_mask is not None:
        _expect("recurrent_mask", recurrent_mask, (B, R), None)
        recurrent_mask = recurrent_mask.to(acc).contiguous()
    z_c = z_h = None
    zoneout_p = 0.0
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise InputTypeError("`zoneout` must be None, a float p (eval) or a tuple of masks (z_c, z_h)")
        _expect("zoneout z_c", zoneout[0], (T, B, H), None)
        _expect("zoneout z_h", zoneout[1], (T, B, R), None)
        z_c, z_h = (z.to(acc).contiguous() for z in zoneout)
    elif _is_probability(zoneout):
        zoneout_p = float(zoneout)
    elif zoneout is not None:
        raise InputTypeError(f"`zoneout` must be None, a float or a tuple of masks, got {type(zoneout).__name__}")
    if not is_available():
        raise RuntimeError(unavailable_reason())
    gammas = tuple(ln) if ln is not None else (None,) * 4
    differentiable = (x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, peephole, *gammas)
    # Without a backward to come, the engine keeps one step of what only backward reads (less memory, faster).
    save = backward_follows(*differentiable)
    config = _Config(lengths, bool(coupled), recurrent_mask, z_c, z_h, zoneout_p, _gemm(), b_ih is not None,
                     b_hh is not None, peephole is not None, acc, save, bool(records))
    return _LSTMLayer.apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, peephole, *gammas, config)


class _Config:
    """The non-differentiable arguments of one call, as the C++ side takes them."""

    def __init__(self, lengths, coupled, mask, z_c, z_h, zoneout_p, gemm, has_b_ih, has_b_hh, has_peephole, acc,
                 save, records):
        self.lengths, self.coupled, self.mask, self.z_c, self.z_h = lengths, coupled, mask, z_c, z_h
        self.zoneout_p, self.gemm, self.acc, self.save, self.records = zoneout_p, gemm, acc, save, records
        self.has_b_ih, self.has_b_hh, self.has_peephole = has_b_ih, has_b_hh, has_peephole


def _c(t: Tensor | None, dtype: torch.dtype | None = None) -> Tensor | None:
    if t is None:
        return None
    return (t if dtype is None else t.to(dtype)).contiguous()


class _LSTMLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, peephole, g_ih, g_hh, g_c, b_c, cfg):
        acc, H = cfg.acc, w_ih.shape[0] // 4
        bias = torch.zeros(4 * H, dtype=acc)                                    # (4H) b_ih + b_hh
        for b in (b_ih, b_hh):
            if b is not None:
                bias = bias + b.to(acc)
        peep = _c(peephole, acc) if peephole is not None else torch.zeros(3, H, dtype=acc)  # (3, H)
        gammas = tuple(_c(g, acc) for g in (g_ih, g_hh, g_c, b_c))
        x, h0, w_ih, w_hh, w_hr = (_c(t) for t in (x, h0, w_ih, w_hh, w_hr))
        c0a = _c(c0, acc)
        with torch.autocast("cpu", enabled=False):  # the engine picks its own dtypes; see lstm_layer's docstring
            out = _module.forward(x, h0, c0a, w_ih, w_hh, bias, peep, w_hr, cfg.lengths, *gammas, cfg.coupled,
                                  cfg.mask, cfg.z_c, cfg.z_h, cfg.zoneout_p, _EPS, cfg.gemm, cfg.save,
                                  cfg.records)
        y, h_n, c_n, gates, c_seq = out[:5]
        saved = out[5:] if len(out) > 5 else [None] * 6  # hin, hraw, cnew, tanhm, mean, rstd (see csrc)
        ctx.cfg = cfg
        if cfg.save:
            ctx.save_for_backward(x, c0a, w_ih, w_hh, w_hr, bias, peep, *gammas, gates, c_seq, *saved)
        ctx.mark_non_differentiable(gates, c_seq)
        ctx.set_materialize_grads(False)
        return y, h_n, c_n, gates, c_seq

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_n, dc_n, _dgates, _dc_seq):
        cfg = ctx.cfg
        (x, c0a, w_ih, w_hh, w_hr, bias, peep, g_ih, g_hh, g_c, b_c, gates, c_seq,
         hin, hraw, cnew, tanhm, mean, rstd) = ctx.saved_tensors
        if x.shape[0] == 0:  # no steps: the state passed straight through, nothing else was used
            return (torch.zeros_like(x), dh_n, dc_n) + (None,) * 11
        dy, dh_n, dc_n = (_c(d, x.dtype) for d in (dy, dh_n, dc_n))
        with torch.autocast("cpu", enabled=False):
            grads = _module.backward(dy, dh_n, dc_n, x, c0a, w_ih, w_hh, bias, peep, w_hr, cfg.lengths, g_ih,
                                     g_hh, g_c, b_c, cfg.coupled, cfg.mask, cfg.z_c, cfg.z_h, cfg.zoneout_p,
                                     cfg.gemm, hin, hraw, gates, c_seq, cnew, tanhm, mean, rstd,
                                     cfg.has_b_ih or cfg.has_b_hh, cfg.has_peephole, ctx.needs_input_grad[0])
        dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr, dpeep, dg_ih, dg_hh, dg_c, db_c = grads
        dt = x.dtype

        def cast(g, present=True):
            return g.to(dt) if present and g is not None else None

        return (dx, dh0, dc0, dw_ih, dw_hh, cast(db, cfg.has_b_ih), cast(db, cfg.has_b_hh), dw_hr, cast(dpeep),
                cast(dg_ih), cast(dg_hh), cast(dg_c), cast(db_c), None)
