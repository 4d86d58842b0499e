"""A Trace in Jupyter: one compact units × steps heatmap per record (what :meth:`lstmkit.Trace._repr_html_` shows).

Each heatmap is a PNG (written here with zlib, so nothing beyond the core is needed) inlined as a data URI, one
pixel per (step, unit), scaled up without smoothing. Colours are the explorer's: a record that is never negative
(the sigmoid gates) runs white → blue over 0 … max(1, max); any other runs blue - white - red over ±max|v|. The
first sequence of a batch is shown; the full page is ``lstmkit.explore``.
"""

from __future__ import annotations

import base64
import html
import struct
import zlib

import torch
from torch import Tensor

from ..trace import Trace

_MAX_STEPS = 2000  # wider traces are shown in part; the explorer shows them whole


def colours(values: Tensor) -> tuple[Tensor, str]:
    """RGB uint8 (..., 3) for ``values`` and the scale's description (the page's ``scaleOf``/``colour``)."""
    v = values.float()
    lo, hi = float(v.min()), float(v.max())
    if lo >= 0:
        top = max(1.0, hi)
        x = (v / top).clamp(0, 1)
        rgb = torch.stack([255 - 225 * x, 255 - 180 * x, 255 - 90 * x], -1)
        return rgb.round().to(torch.uint8), f"0 … {top:.3g}"
    m = max(abs(lo), abs(hi))
    x = (v / m).clamp(-1, 1)
    pos, neg = x.clamp(min=0), (-x).clamp(min=0)
    rgb = torch.stack([255 - 210 * neg, 255 - 200 * pos - 160 * neg, 255 - 210 * pos], -1)
    return rgb.round().to(torch.uint8), f"±{m:.3g}"


def png(rgb: Tensor) -> bytes:
    """A PNG file of ``rgb`` (H, W, 3) uint8."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + bytes(row) for row in rgb.reshape(h, w * 3).tolist())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _first_sequence(t: Tensor, batch_first_like: bool) -> Tensor:
    """(T, S) of the first sequence of a record laid out (T, B, S), (B, T, S) or (T, S)."""
    if t.dim() == 2:
        return t
    return t[0] if batch_first_like else t[:, 0]


def trace_html(trace: Trace) -> str:
    batch_first = getattr(trace, "batch_first", False)  # how batched records are laid out
    parts = ['<div style="font:12px sans-serif">']
    for layer, direction, record in trace:
        parts.append(f"<div><b>layer {layer}, direction {direction}</b>")
        for name, values in zip(record._fields, record, strict=True):
            v = _first_sequence(values.detach(), batch_first).cpu()  # (T, S)
            T = v.shape[0]
            shown = v[:_MAX_STEPS]
            rgb, scale = colours(shown.t())  # (S, T, 3): units down, steps across
            uri = "data:image/png;base64," + base64.b64encode(png(rgb)).decode("ascii")
            px = max(1, min(6, 600 // max(1, shown.shape[0])))
            note = "" if T <= _MAX_STEPS else f", first {_MAX_STEPS} of {T} steps"
            parts.append(
                f'<div style="display:flex;align-items:center;gap:6px;margin:2px 0">'
                f'<span style="width:70px;text-align:right"><b>{html.escape(name)}</b> '
                f'<small>{scale}</small></span>'
                f'<img src="{uri}" alt="{html.escape(name)}: {v.shape[1]} units x {T} steps" '
                f'title="{html.escape(name)}: {v.shape[1]} units × {T} steps{note}" '
                f'style="image-rendering:pixelated;width:{shown.shape[0] * px}px;height:{v.shape[1] * 3}px"></div>')
        parts.append("</div>")
    parts.append('<div style="color:#666">first sequence of the batch; lstmkit.explore(model, inputs) for the '
                 "full explorer</div></div>")
    return "".join(parts)

