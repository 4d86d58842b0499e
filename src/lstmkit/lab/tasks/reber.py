"""Embedded Reber grammar (Cleeremans et al. 1989; the benchmark of Hochreiter & Schmidhuber 1997, exp. 1).

Seven symbols ``B T P S X V E``, one-hot. A Reber string is a walk through the graph below from ``B`` to ``E``;
an embedded string wraps one as ``B T <reber> T E`` or ``B P <reber> P E``. Example:

    B P B T S X S E P E

At every step the model predicts the *set* of legal next symbols (one sigmoid per symbol, as in the 1997
paper); the hard step is the second-to-last, whose only legal symbol repeats the second one, many steps back.
A string counts as correct when every step's thresholded prediction (> 0.5) equals the legal set; the metric
is the fraction of held-out strings that are correct. Memoryless baseline: 0 (without the second symbol the
best guess at the hard step is {T, P}, never the single legal symbol: Elman nets scored 0% in 1997). Solved: at
least 99% of held-out strings correct. ``seq_len`` is the longest string allowed (longer walks are redrawn);
shorter strings are padded and masked.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Task

SYMBOLS = "BTPSXVE"
_ID = {s: k for k, s in enumerate(SYMBOLS)}
# node -> [(symbol, next node)]; node 5's E ends the inner string
_GRAPH = [
    [("T", 1), ("P", 2)],
    [("S", 1), ("X", 3)],
    [("T", 2), ("V", 4)],
    [("X", 2), ("S", 5)],
    [("P", 3), ("V", 5)],
    [("E", -1)],
]


def _legal(symbols: str) -> list[int]:
    return [_ID[s] for s in symbols]


def embedded_reber_string(generator: torch.Generator, max_len: int) -> tuple[str, list[list[int]]]:
    """One embedded Reber string no longer than ``max_len`` and, for each of its steps but the last, the ids of
    the symbols that may legally follow."""
    while True:
        side = "TP"[int(torch.randint(0, 2, (1,), generator=generator))]
        symbols, legal = ["B", side, "B"], [_legal("TP"), _legal("B"), _legal("TP")]
        node = 0
        while node != -1:
            choices = _GRAPH[node]
            symbol, node = choices[int(torch.randint(0, len(choices), (1,), generator=generator))]
            symbols.append(symbol)
            legal.append(_legal("E") if node == -1 else _legal("".join(s for s, _ in _GRAPH[node])))
        # after the inner E only the wrapper's repeat of `side` is legal, then the final E
        legal[-1] = _legal(side)
        symbols += [side, "E"]
        legal.append(_legal("E"))
        if len(symbols) <= max_len:
            return "".join(symbols), legal


class Reber(Task):
    name = "reber"
    input_size = len(SYMBOLS)
    output_size = len(SYMBOLS)
    metric_name = "fraction of strings correct"
    higher_is_better = True
    default_seq_len = 40  # the longest string allowed
    min_seq_len = 9  # the shortest embedded string has 9 symbols
    baseline = 0.0
    criterion = "at least 99% of held-out strings predicted correctly at every step"
    solved_when = ("metric", ">=", 0.99)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        T = self._T
        symbols = torch.zeros(n, T, dtype=torch.long)
        target = torch.zeros(n, T, len(SYMBOLS))  # (B, T, 7) legal-next-symbol sets
        mask = torch.zeros(n, T, dtype=torch.bool)  # (B, T) steps that have a next symbol
        for b in range(n):
            string, legal = embedded_reber_string(generator, T)
            symbols[b, : len(string)] = torch.tensor([_ID[s] for s in string])
            for t, ids in enumerate(legal):
                target[b, t, ids] = 1.0
            mask[b, : len(legal)] = True
        # steps past a string's end are zeros in x (no symbol) and masked out of loss and metric
        length = mask.sum(1) + 1  # (B,) symbols per string
        present = torch.arange(T) < length.unsqueeze(1)  # (B, T)
        x = F.one_hot(symbols, len(SYMBOLS)).float() * present.unsqueeze(-1)  # (B, T, 7)
        return Batch(x, target, mask)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        per_step = F.binary_cross_entropy_with_logits(out, batch.y, reduction="none").sum(-1)  # (B, T)
        return per_step[batch.mask].mean()

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        mask = batch.mask                                              # (B, T): sample() always sets it here
        assert mask is not None
        step_ok = ((out > 0) == (batch.y > 0.5)).all(-1) | ~mask  # (B, T)
        last = mask.sum(1) - 1  # index of the hard step (predicting the final wrapper symbol's repeat)
        rows = torch.arange(len(batch))
        hard_ok = step_ok[rows, last - 1]
        return {"metric": step_ok.all(1).float().mean().item(), "loss": self.loss(out, batch).item(),
                "hard_step_accuracy": hard_ok.float().mean().item()}
