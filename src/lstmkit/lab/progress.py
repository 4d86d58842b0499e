"""What a training run shows while it runs: a tqdm bar on a terminal, one line per evaluation otherwise."""

from __future__ import annotations

import sys


class Progress:
    """A tqdm bar on a terminal; one line per evaluation on stderr otherwise (logs, CI); nothing when disabled."""

    def __init__(self, enabled: bool, total: int, start: int, label: str):
        self.bar, self.enabled, self.label, self.metric = None, enabled, label, ""
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=label, unit="step", dynamic_ncols=True)

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss:.4f}{self.metric}", refresh=False)

    def evaluation(self, row: dict, metric_name: str) -> None:
        if self.bar is not None:
            self.metric = f"  held-out {metric_name} {row['metric']:.4f} (step {row['step']})"
            self.bar.set_postfix_str(f"loss {row['train_loss']:.4f}{self.metric}")
        elif self.enabled:
            print(f"{self.label} step {row['step']}: loss {row['train_loss']:.4f}  {metric_name} "
                  f"{row['metric']:.4f}{'  solved' if row['solved'] else ''}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
