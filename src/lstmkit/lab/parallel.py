"""Train many small runs at once (the demo's and the sweep's): one process per run slot, one thread each.

Small recurrent models use one core poorly (per-step overhead dominates), so two single-threaded runs side by
side on two cores finish sooner than two two-threaded runs in a row. Each run is still a pure function of its
config; its numbers can differ in the last bits from the same run with another thread count.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _train_job(config: dict, out_dir: str) -> dict:
    from .config import TrainConfig
    from .trainer import train

    summary = train(TrainConfig.from_dict(config), out_dir)
    history = [json.loads(line) for line in (Path(out_dir) / "metrics.jsonl").read_text().splitlines()]
    return {"summary": summary, "history": history}


def train_many(jobs: list[tuple], workers: int, on_done=None) -> dict:
    """``jobs = [(key, TrainConfig, out_dir)]`` -> ``{key: {"summary": ..., "history": [...]}}``. Runs go in the
    given order (put the slowest first); ``on_done(key, result)`` is called as each finishes."""
    results = {}
    if workers == 1:
        for key, config, out_dir in jobs:
            results[key] = _train_job(config.to_dict(), str(out_dir))
            if on_done is not None:
                on_done(key, results[key])
        return results
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_single_thread) as pool:
        futures = {pool.submit(_train_job, config.to_dict(), str(out_dir)): key for key, config, out_dir in jobs}
        try:
            for future in as_completed(futures):
                key = futures[future]
                results[key] = future.result()
                if on_done is not None:
                    on_done(key, results[key])
        except BaseException:  # a failed run, Ctrl-C or SIGTERM: start no more runs (leaving waits for running ones)
            for future in futures:
                future.cancel()
            raise
    return {key: results[key] for key, _, _ in jobs}
