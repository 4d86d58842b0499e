"""``lstmkit sweep``: the final held-out metric against sequence length, per model (for recall: the
accuracy-versus-lag curve). One training run per (model, length, seed), trained side by side."""

from __future__ import annotations

import statistics
from pathlib import Path

from .config import TrainConfig
from .files import write_json
from .memory import check_fits
from .parallel import train_many
from .tasks import make_task


def sweep(configs: list[TrainConfig], out: str | Path, workers: int = 2) -> dict:
    """Train every config (same task) into ``out/runs/<model>-T<len>-seed<s>``; write sweep.json and sweep.png."""
    out = Path(out)
    tasks = {c.task for c in configs}
    if len(tasks) != 1:
        raise ValueError(f"a sweep covers one task, got {sorted(tasks)}")
    for c in configs:  # before any work: a run that cannot fit is refused now, not in a worker
        check_fits(c, make_task(c.task, c.seq_len))
    jobs = []
    for c in sorted(configs, key=lambda c: -(c.seq_len or 0)):  # longest first: they take longest
        run_dir = out / "runs" / f"{c.model.model}-T{c.seq_len}-seed{c.seed}"
        for name in ("checkpoint.safetensors", "summary.json"):  # a sweep always trains afresh
            (run_dir / name).unlink(missing_ok=True)
        jobs.append(((c.model.model, c.seq_len, c.seed), c, run_dir))
    results = train_many(jobs, workers)
    rows = []
    for model in dict.fromkeys(c.model.model for c in configs):
        for length in sorted({c.seq_len for c in configs if c.model.model == model}, key=lambda n: n or 0):
            runs = [r["summary"] for (m, n, _), r in results.items() if m == model and n == length]
            rows.append({"model": model, "seq_len": length, "metric": statistics.mean(r["metric"] for r in runs),
                         "per_seed": [r["metric"] for r in runs], "solved": sum(r["solved"] for r in runs),
                         "seeds": len(runs), "steps": [r["steps"] for r in runs]})
    task = make_task(configs[0].task, configs[0].seq_len)
    result = {"task": task.name, "metric_name": task.metric_name, "baseline": task.baseline,
              "steps_budget": configs[0].steps, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "sweep.json", result)
    from .plots import plot_sweep

    plot_sweep(rows, out / "sweep.png", task=task.name, metric_name=task.metric_name, baseline=task.baseline,
               steps=configs[0].steps)
    return result
