"""How far back the gradient reaches: ||dL/dh_t|| (and ||dL/dc_t|| for an LSTM) against the lag T - 1 - t.

The model is run one step at a time through its own lstmkit module (``SequenceModel.step_states``), in float64
so a fast-vanishing gradient is measured rather than flushed to zero, and every step's state is a graph node
whose ``.grad`` after one backward is the *total* derivative of the loss with respect to it (through the
read-out and through every later step). L is each sequence's own loss (the batch loss times B), so the figure
is the batch mean of per-sequence gradient norms.

On a log scale an exponentially vanishing gradient is a straight line: the fitted slope s over lags >= 1 gives
the per-step decay factor exp(s) and the half-life ln 2 / -s in steps (None when the norm does not decay).

Forget-gate statistics come from the module's ``trace``: the LSTM's ``f`` and the GRU's update gate ``z`` (in
torch's GRU, h_t = (1 - z) n + z h_{t-1}, so ``z`` is the share kept), over the same sequences.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch

from .files import write_json
from .model import SequenceModel
from .tasks import Batch, Task


def fit_decay(norms: list[float]) -> dict:
    """The straight-line fit of log ``norms[lag]`` for lags >= 1 (zeros and non-finite values left out)."""
    lags = np.arange(len(norms))
    values = np.asarray(norms, dtype=np.float64)
    keep = (lags >= 1) & np.isfinite(values) & (values > 0)
    if keep.sum() < 2:
        return {"decay_per_step": float("nan"), "half_life": None, "fitted_lags": int(keep.sum())}
    slope, _ = np.polyfit(lags[keep], np.log(values[keep]), 1)
    return {"decay_per_step": float(math.exp(slope)),
            "half_life": float(math.log(2) / -slope) if slope < 0 else None,
            "fitted_lags": int(keep.sum())}


def gradient_norms(model: SequenceModel, task: Task, batch: Batch) -> dict:
    """``h`` and (LSTM) ``c``: each ``{"norms": [batch-mean ||dL/ds_t|| by lag 0..T-1], **fit_decay}``."""
    net = copy.deepcopy(model).double().eval()
    x = batch.x.double()
    y = batch.y.double() if batch.y.is_floating_point() else batch.y
    out, hs, cs = net.step_states(x)  # hs[t] (L, B, H)
    for state in hs + cs:
        state.retain_grad()
    loss = task.loss(out, Batch(x, y, batch.mask)) * len(batch)
    loss.backward()
    result = {}
    for name, states in (("h", hs), ("c", cs)):
        if not states:
            continue
        # top layer, (B, H) -> scalar; no grad means no path to the loss (c_T when only h_T is read out)
        by_step = [0.0 if s.grad is None else s.grad[-1].norm(dim=-1).mean().item() for s in states]
        norms = by_step[::-1]  # index = lag T - 1 - t
        result[name] = {"norms": norms, **fit_decay(norms)}
    return result


def gate_statistics(model: SequenceModel, batch: Batch, bins: int = 20) -> dict | None:
    """Statistics of the top layer's retention gate (LSTM ``f``, GRU ``z``) over ``batch``; None for an RNN."""
    gate = {"lstm": "f", "gru": "z"}.get(model.spec.model)
    if gate is None:
        return None
    with torch.no_grad():
        trace = model.rnn.trace(batch.x)
    values = getattr(trace[-1, 0], gate)  # (B, T, H)
    if batch.mask is not None:
        values = values[batch.mask]
    v = values.reshape(-1).double()
    q = torch.quantile(v[:: max(1, v.numel() // 100_000)], torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    counts = torch.histc(v, bins=bins, min=0.0, max=1.0)
    return {"gate": gate, "mean": v.mean().item(), "p10": q[0].item(), "median": q[1].item(), "p90": q[2].item(),
            "share_above_0.9": (v > 0.9).double().mean().item(), "share_below_0.5": (v < 0.5).double().mean().item(),
            "histogram": {"edges": np.linspace(0, 1, bins + 1).tolist(), "counts": counts.long().tolist()}}


def measure(model: SequenceModel, task: Task, batch: Batch) -> dict:
    return {**gradient_norms(model, task, batch), "gate": gate_statistics(model, batch)}


def gradflow_run(run_dir: str | Path, out_dir: str | Path, batch: int = 256) -> dict:
    """Measure a finished run at initialisation (rebuilt from its seed) and trained; write gradflow.json/png."""
    from .runs import build_model, load_run

    config, task, trained = load_run(run_dir)
    initial = build_model(config, task)
    test = task.test_set()
    sample = test.slice(0, min(batch, len(test)))
    result = {"task": config.task, "model": config.model.model, "model_description": config.model.describe(),
              "seq_len": task.seq_len, "sequences": len(sample),
              "init": measure(initial, task, sample), "trained": measure(trained, task, sample)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "gradflow.json", result)
    from .plots import plot_gradflow_run

    plot_gradflow_run(result, out_dir / "gradflow.png")
    return result
