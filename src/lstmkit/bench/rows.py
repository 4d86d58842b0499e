"""What the benchmark measures: the shapes, the rows (a module and its options), each row's baseline, and the GEMM
flops of a call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lstmkit

# name: (T, B, I, H)
SHAPES = {
    "fastrnns": (100, 64, 512, 512),
    "deepbench-h256-b16": (150, 16, 256, 256),
    "deepbench-h256-b64": (150, 64, 256, 256),
    "deepbench-h1024-b16": (25, 16, 1024, 1024),
    "deepbench-h1024-b64": (25, 64, 1024, 1024),
    "device-inference": (150, 1, 256, 256),
    "long": (1000, 32, 128, 128),
    # Where a fused call's fixed cost or per-step call overhead decides (issue: speed cliffs outside the shapes
    # above): one step of a small model, and a very long sequence of a tiny one.
    "call-t1": (1, 1, 32, 32),
    "long-tiny": (5000, 1, 2, 2),
}
QUICK_SHAPES = ("fastrnns", "long")
# The memory lab's small models (`lstmkit bench --lab`): per-step products of 16k-2M multiply-adds, where fixed
# call costs, not GEMM rates, decide; run with one thread and with two, fp32, against the FMA peak.
LAB_SHAPES = {
    "lab-h32": (100, 32, 6, 32),
    "lab-h128": (100, 32, 32, 128),
    "lab-t1000": (1000, 16, 8, 64),
    "lab-b1": (50, 1, 16, 64),
}
LAB_THREADS = (1, 2)
INFERENCE_ONLY = ("device-inference",)

# name: (module, keyword arguments). "naive" is the Python cell in naive.py; rows named "... trace ..." run
# module.trace(x) (inference only); proj_size -1 means H/2. Each row's ratio is to its baseline(row).
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "torch.nn": ("torch.nn.LSTM", {}),
    "naive": ("naive", {}),
    "lstmkit": ("LSTM", {}),
    "trace": ("LSTM", {}),
    "peephole": ("LSTM", {"peephole": True}),
    "coupled": ("LSTM", {"coupled": True}),
    "layer_norm": ("LSTM", {"layer_norm": True}),
    "recurrent_dropout": ("LSTM", {"recurrent_dropout": 0.25}),
    "zoneout": ("LSTM", {"zoneout": 0.1}),
    "torch.nn proj": ("torch.nn.LSTM", {"proj_size": -1}),
    "proj": ("LSTM", {"proj_size": -1}),
    "torch.nn GRU": ("torch.nn.GRU", {}),
    "GRU": ("GRU", {}),
    "GRU trace": ("GRU", {}),
    "GRU trace on torch": ("GRU", {"backend": "torch"}),        # torch's kernel + replay, for comparison
    "GRU recurrent_dropout": ("GRU", {"recurrent_dropout": 0.25}),
    "GRU zoneout": ("GRU", {"zoneout": 0.1}),
    "torch.nn RNN": ("torch.nn.RNN", {}),
    "RNN": ("RNN", {}),
    "RNN trace": ("RNN", {}),
    "RNN trace on torch": ("RNN", {"backend": "torch"}),
    "RNN recurrent_dropout": ("RNN", {"recurrent_dropout": 0.25}),
    "RNN zoneout": ("RNN", {"zoneout": 0.1}),
    # Interventions (lstmkit.interventions): a call with one against the same call without, on the fused engine.
    "fused": ("LSTM", {"backend": "fused"}),
    "intervened": ("LSTM", {"backend": "fused"}),
    "GRU fused": ("GRU", {"backend": "fused"}),
    "GRU intervened": ("GRU", {"backend": "fused"}),
}


def _lstm_interventions(T: int, H: int) -> list:
    """Half the cell state ablated over the second half of the steps, and every forget gate scaled."""
    return [lstmkit.ablate("c", units=slice(0, H // 2), steps=slice(T // 2, None)), lstmkit.scale("f", 0.9)]


def _gru_interventions(T: int, H: int) -> list:
    return [lstmkit.ablate("h", units=slice(0, H // 2), steps=slice(T // 2, None)), lstmkit.scale("z", 0.9)]


# row: (the row it is measured against, the interventions of its call given T and H)
INTERVENED: dict[str, tuple[str, Callable[[int, int], list]]] = {
    "intervened": ("fused", _lstm_interventions),
    "GRU intervened": ("GRU fused", _gru_interventions),
}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
LAB_ROWS = ("torch.nn", "lstmkit", "peephole", "coupled", "layer_norm", "recurrent_dropout", "zoneout",
            "torch.nn GRU", "GRU", "GRU recurrent_dropout", "GRU zoneout",
            "torch.nn RNN", "RNN", "RNN recurrent_dropout", "RNN zoneout")
QUICK_ROWS = ("torch.nn", "naive", "lstmkit", "trace", "peephole", "layer_norm", "torch.nn proj", "proj",
              "torch.nn GRU", "GRU", "GRU trace", "fused", "intervened")


def family(row: str) -> str:
    """LSTM, GRU or RNN: the recurrence a row runs."""
    module = ROWS[row][0]
    return "LSTM" if module == "naive" else module.rsplit(".", 1)[-1]


def baseline(row: str) -> str:
    """The row a row's ratio is taken to: the same cell in torch.nn, with the same proj_size; for a row with
    interventions, the same call without them."""
    if row in INTERVENED:
        return INTERVENED[row][0]
    if ROWS[row][1].get("proj_size") and not ROWS[row][0].startswith("torch.nn"):
        return "torch.nn proj"
    return "torch.nn" if family(row) == "LSTM" else f"torch.nn {family(row)}"


def rnn_flops(T: int, B: int, I: int, H: int, P: int = 0, train: bool = False, gates: int = 4) -> float:
    """GEMM flops of one layer with `gates` H-row blocks (LSTM 4, GRU 3, RNN 1): the input and recurrent products
    (and projection); backward is ~2x forward."""
    R = P or H
    fwd = 2 * T * B * gates * H * (I + R) + (2 * T * B * H * P if P else 0)
    return fwd * (3 if train else 1)


@dataclass
class Row:
    """One row of one shape, mode and dtype: median ``ms`` over the rounds, ``ratio`` to its baseline's ms, GFLOP/s
    and its fraction of the fp32 GEMM peak (fp32 rows only; in the lab group, of the FMA peak on ``threads``
    threads, with ``floor``). A row this machine cannot run has ``na``, the reason, and no figures; a row whose
    baseline cannot run has no ratio."""

    shape: str
    T: int
    B: int
    I: int
    H: int
    dtype: str
    mode: str
    row: str
    engine: str
    ms: float | None
    ratio: float | None = None
    gflops: float | None = None
    of_peak: float | None = None
    na: str | None = None
    threads: int | None = None      # the lab group's thread count (None: torch's default)
    # The lab group: the ratio this row would have if it ran at the whole FMA peak (its FLOPs at the peak, over
    # the baseline's time): a ratio target below it cannot be reached on this machine by any engine.
    floor: float | None = None
