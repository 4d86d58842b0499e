"""``lstmkit demo``: the textbook's "Standard RNN vs LSTM" table, measured.

Temporal order at T = 100 (Hochreiter & Schmidhuber 1997, exp. 6a), 3 seeds each, for a tanh RNN, a GRU, an
LSTM with forget-gate bias 3 and an LSTM with torch.nn's initialisation (the forget gate starts near 0.5): same
hidden size (32), batch (32), optimiser (Adam 3e-3), clipping (1) and step budget, early stop when solved. Then
the gradient norm against lag for each model (seed 0) at initialisation and trained, one sequence's LSTM gates,
forget-gate histograms, where the LSTM's memory lives (seed 0; :mod:`lstmkit.lab.explain` on its cell state
only, over 128 held-out sequences, to keep it to seconds), ``summary.json`` and a ``README.md`` with the table
and the plots.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

from .config import TrainConfig
from .demo_readme import format_table, readme
from .explain import explain
from .files import atomic_write_bytes, to_json, write_json
from .gradflow import gate_statistics, gradient_norms
from .memory import check_fits
from .model import GATE_LAYERS, ModelSpec
from .parallel import train_many
from .runs import build_model, load_run
from .tasks import make_task

TASK = "temporal-order"
VARIANTS = {
    "rnn": ModelSpec(model="rnn"),
    "gru": ModelSpec(model="gru"),
    "lstm": ModelSpec(model="lstm", init="forget-bias", forget_bias=3.0),
    "lstm_torch_init": ModelSpec(model="lstm", init="torch"),
}
LABELS = {"rnn": "tanh RNN", "gru": "GRU", "lstm": "LSTM (forget bias 3)", "lstm_torch_init": "LSTM (torch init)"}
# Slowest first so the two workers finish together (per step on this machine: GRU ~13 ms, RNN ~6, LSTM ~3).
ORDER = ("gru", "rnn", "lstm_torch_init", "lstm")
SHOWN = ("rnn", "gru", "lstm", "lstm_torch_init")  # the table's column order
DEFAULT_STEPS = 2000
GRADFLOW_SEQUENCES = 64
EXPLAIN_SEQUENCES = 128  # 96 intervened runs of the subset on the reference engine: 2.2 s measured


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def demo_configs(seq_len: int = 100, seeds: int = 3, steps: int | None = None) -> dict[tuple[str, int], TrainConfig]:
    """``{(variant, seed): config}`` of the demo's runs, slowest variant first."""
    steps = DEFAULT_STEPS if steps is None else steps
    return {(key, seed): TrainConfig(task=TASK, seq_len=seq_len, model=VARIANTS[key], seed=seed, steps=steps,
                                     checkpoint_every=steps) for key in ORDER for seed in range(seeds)}


def run_demo(out: str | Path, *, seq_len: int = 100, seeds: int = 3, steps: int | None = None,
             workers: int = 2) -> dict:
    out = Path(out)
    configs = demo_configs(seq_len, seeds, steps)
    task = make_task(TASK, seq_len)
    for config in configs.values():  # before any work: a run that cannot fit is refused now, not in a worker
        check_fits(config, task)
    out.mkdir(parents=True, exist_ok=True)
    steps = DEFAULT_STEPS if steps is None else steps
    t_start = time.perf_counter()
    jobs = []
    for (key, seed), config in configs.items():
        run_dir = out / "runs" / f"{key}-seed{seed}"
        for name in ("checkpoint.safetensors", "summary.json"):  # the demo always trains afresh
            (run_dir / name).unlink(missing_ok=True)
        jobs.append(((key, seed), config, run_dir))
    _log(f"lstmkit demo: {len(jobs)} runs of {TASK} (T = {seq_len}, budget {steps} steps each) on {workers} "
         f"worker(s)")

    def done(job, result):
        s = result["summary"]
        _log(f"  {LABELS[job[0]]:22s} seed {job[1]}: {s['metric_name']} {s['metric']:.3f} after {s['steps']} steps "
             f"({'solved' if s['solved'] else 'not solved'}, {s['train_seconds']:.0f} s)")

    results = train_many(jobs, workers, on_done=done)
    train_wall = time.perf_counter() - t_start

    _log("measuring gradient flow and gates ...")
    measurements, gates = {}, {}
    for key in ORDER:
        config, task, trained = load_run(out / "runs" / f"{key}-seed0")
        initial = build_model(config, task)
        sample = task.test_set().slice(0, GRADFLOW_SEQUENCES)
        measurements[key] = {"init": gradient_norms(initial, task, sample),
                             "trained": gradient_norms(trained, task, sample)}
        gates[key] = {"init": gate_statistics(initial, sample), "trained": gate_statistics(trained, sample)}
    atomic_write_bytes(out / "gradflow.json", (to_json({"measurements": measurements, "gates": gates}) + "\n").encode())

    _log("finding where the LSTM's memory lives ...")
    _, task, trained = load_run(out / "runs" / "lstm-seed0")
    memory = explain(trained, task, sequences=EXPLAIN_SEQUENCES, records=["c"])
    write_json(out / "explain.json", memory)

    summary = _summarise(results, measurements, seq_len, seeds, steps, workers)
    summary["memory"] = _memory_summary(memory)
    _plots(out, results, measurements, gates, seq_len)
    from .explain_plots import plot_top_k

    plot_top_k(memory, out / "where_memory_lives.png")
    summary["wall_time_s"] = round(time.perf_counter() - t_start, 1)
    summary["train_wall_time_s"] = round(train_wall, 1)
    write_json(out / "summary.json", summary)
    table = format_table(summary)
    atomic_write_bytes(out / "README.md", readme(summary, table, GRADFLOW_SEQUENCES).encode())
    print(table)
    print(f"\nwall time {summary['wall_time_s']:.0f} s; wrote {out / 'README.md'}, {out / 'summary.json'} and plots")
    return summary


def _summarise(results, measurements, seq_len, seeds, steps, workers) -> dict:
    models = {}
    for key in SHOWN:
        runs = [results[(key, seed)]["summary"] for seed in range(seeds)]
        h_init, h_trained = measurements[key]["init"]["h"], measurements[key]["trained"]["h"]
        c = measurements[key]["init"].get("c")
        models[key] = {
            "label": LABELS[key],
            "model": VARIANTS[key].model,
            "description": VARIANTS[key].describe(),
            "params": runs[0]["params"],
            "gate_layers": GATE_LAYERS[VARIANTS[key].model],
            "success_rate": sum(r["solved"] for r in runs) / len(runs),
            "solved": f"{sum(r['solved'] for r in runs)}/{len(runs)}",
            "metric": statistics.mean(r["metric"] for r in runs),
            "metric_per_seed": [r["metric"] for r in runs],
            "steps_to_solve": [r["solved_at_step"] for r in runs],
            "baseline": runs[0]["baseline"],
            # the half-life of |dL/dh_t| against lag at initialisation (seed 0): how far back a freshly
            # initialised model's gradient reaches, which decides whether a long lag can be learned at all
            "grad_half_life": h_init["half_life"],
            "grad_decay_per_step": h_init["decay_per_step"],
            "grad_half_life_trained": h_trained["half_life"],
            "cell_grad_half_life": None if c is None else c["half_life"],
            "train_seconds": [r["train_seconds"] for r in runs],
        }
    return {"task": TASK, "seq_len": seq_len, "seeds": seeds, "steps_budget": steps, "workers": workers,
            "torch": torch.__version__, "cpu_count": os.cpu_count(), "metric_name": "accuracy",
            "criterion": "held-out accuracy >= 0.99 on 1,024 sequences", "models": models}


def _memory_summary(memory: dict) -> dict:
    """The numbers of the README's "where the memory lives" section."""
    k90, kp, flips = memory["k90"], memory["k90_patching"], memory["patching"]["flip_rate"]
    return {"sequences": memory["sequences"], "accuracy": memory["clean"]["metric"],
            "top_units": [u["label"] for u in memory["units"][:5]],
            "top_effects": [u["effect"]["c"] for u in memory["units"][:5]],
            "units_hurting": sum(u["effect"]["c"] >= 0.1 for u in memory["units"]),
            "all_units_effect": memory["all_units_effect"], "k90": k90, "k90_patching": kp,
            "flip_rate_k90": None if k90 is None else flips[k90 - 1],
            "flip_rate_k90_patching": None if kp is None else flips[kp - 1],
            "flip_rows": memory["patching"]["rows"], "units": len(memory["units"]), "seconds": memory["seconds"]}


def _plots(out: Path, results, measurements, gates, seq_len) -> None:
    from . import plots
    from .tasks.temporal_order import SYMBOLS

    curves: dict[str, list] = {key: [] for key in SHOWN}
    for (key, seed), result in results.items():
        history = result["history"]
        curves.setdefault(key, []).append((seed, [r["step"] for r in history], [r["metric"] for r in history]))
    plots.plot_learning_curves(curves, out / "learning_curves.png", task=f"temporal order (T = {seq_len})",
                               metric_name="accuracy", baseline=0.25, threshold=0.99, labels=LABELS)
    plots.plot_gradflow_models({key: measurements[key] for key in SHOWN}, out / "gradient_vs_lag.png",
                               labels=LABELS, seq_len=seq_len)

    config, task, trained = load_run(out / "runs" / "lstm-seed0")
    one = task.test_set().slice(0, 1)
    with torch.no_grad():
        record = trained.rnn.trace(one.x)[0, 0]
    arrays = {name: getattr(record, name)[0].numpy() for name in ("i", "f", "g", "o", "c")}  # (T, H) each
    symbols = "".join(SYMBOLS[k] for k in one.x[0].argmax(-1).tolist())
    marks = [t for t, s in enumerate(symbols) if s in "XY"]
    label = int(one.y.item())                                                    # 0..3: XX, XY, YX, YY
    order = "XY"[label // 2] + "XY"[label % 2]
    plots.plot_gate_heatmap(arrays, symbols, marks, out / "lstm_gates.png",
                            title=f"Trained LSTM (forget bias 3, seed 0) reading one test sequence (class {order}): "
                                  "gates and cell state of every unit")
    panels = [("LSTM (forget bias 3), at init", gates["lstm"]["init"]),
              ("LSTM (forget bias 3), trained", gates["lstm"]["trained"]),
              ("LSTM (torch init), at init", gates["lstm_torch_init"]["init"]),
              ("LSTM (torch init), trained", gates["lstm_torch_init"]["trained"]),
              ("GRU update gate z, trained", gates["gru"]["trained"])]
    plots.plot_gate_histograms(panels, out / "forget_gates.png")
