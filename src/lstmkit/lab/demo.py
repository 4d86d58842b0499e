"""``lstmkit demo``: the textbook's "Standard RNN vs LSTM" table, measured.

Temporal order at T = 100 (Hochreiter & Schmidhuber 1997, exp. 6a), 3 seeds each, for a tanh RNN, a GRU, an
LSTM with forget-gate bias 3 and an LSTM with torch.nn's initialisation (the forget gate starts near 0.5): same
hidden size (32), batch (32), optimiser (Adam 3e-3), clipping (1) and step budget, early stop when solved. Then
the gradient norm against lag for each model (seed 0) at initialisation and trained, one sequence's LSTM gates,
forget-gate histograms, ``summary.json`` and a ``README.md`` with the table and the plots.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from .config import TrainConfig
from .gradflow import gate_statistics, gradient_norms
from .model import GATE_LAYERS, ModelSpec
from .parallel import train_many
from .runs import build_model, load_run

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


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_demo(out: str | Path, *, seq_len: int = 100, seeds: int = 3, steps: int | None = None,
             workers: int = 2) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = DEFAULT_STEPS if steps is None else steps
    t_start = time.perf_counter()
    jobs = []
    for key in ORDER:
        for seed in range(seeds):
            config = TrainConfig(task=TASK, seq_len=seq_len, model=VARIANTS[key], seed=seed, steps=steps,
                                 checkpoint_every=steps)
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
    (out / "gradflow.json").write_text(json.dumps({"measurements": measurements, "gates": gates}) + "\n")

    summary = _summarise(results, measurements, seq_len, seeds, steps, workers)
    _plots(out, results, measurements, gates, seq_len)
    summary["wall_time_s"] = round(time.perf_counter() - t_start, 1)
    summary["train_wall_time_s"] = round(train_wall, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    table = format_table(summary)
    (out / "README.md").write_text(_readme(summary, table))
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


def _fmt_half_life(value) -> str:
    return "no decay" if value is None else f"{value:.1f}"


def format_table(summary: dict) -> str:
    """The textbook table with measured rows, as Markdown."""
    m = summary["models"]
    keys = list(m)
    rows = [
        ("", [m[k]["label"] for k in keys]),
        ("Textbook: memory", [{"rnn": "short-term only", "gru": "(not in the table)"}.get(k, "long and short term")
                              for k in keys]),
        ("Gate layers reading [x_t, h_{t-1}]", [f"{m[k]['gate_layers']}" for k in keys]),
        ("Parameters (incl. read-out)", [f"{m[k]['params']:,}" for k in keys]),
        (f"Solved over seeds ({summary['criterion']})", [m[k]["solved"] for k in keys]),
        (f"Final held-out accuracy, mean (chance {m[keys[0]]['baseline']:.2f})",
         [f"{m[k]['metric']:.3f}" for k in keys]),
        ("Steps to solve, per seed", [", ".join("-" if s is None else str(s) for s in m[k]["steps_to_solve"])
                                      for k in keys]),
        ("Gradient half-life at init, steps (‖dL/dh_t‖)", [_fmt_half_life(m[k]["grad_half_life"]) for k in keys]),
        ("Gradient half-life trained, steps (‖dL/dh_t‖)",
         [_fmt_half_life(m[k]["grad_half_life_trained"]) for k in keys]),
        ("Training time, s (sum over seeds, 1 thread)", [f"{sum(m[k]['train_seconds']):.0f}" for k in keys]),
    ]
    lines = [f"| {rows[0][0]} | " + " | ".join(rows[0][1]) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows[1:]]
    return "\n".join(lines)


def _plots(out: Path, results, measurements, gates, seq_len) -> None:
    from . import plots
    from .tasks.temporal_order import SYMBOLS

    curves = {key: [] for key in SHOWN}
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
    order = "XY"[one.y.item() // 2] + "XY"[one.y.item() % 2]
    plots.plot_gate_heatmap(arrays, symbols, marks, out / "lstm_gates.png",
                            title=f"Trained LSTM (forget bias 3, seed 0) reading one test sequence (class {order}): "
                                  "gates and cell state of every unit")
    panels = [("LSTM (forget bias 3), at init", gates["lstm"]["init"]),
              ("LSTM (forget bias 3), trained", gates["lstm"]["trained"]),
              ("LSTM (torch init), at init", gates["lstm_torch_init"]["init"]),
              ("LSTM (torch init), trained", gates["lstm_torch_init"]["trained"]),
              ("GRU update gate z, trained", gates["gru"]["trained"])]
    plots.plot_gate_histograms(panels, out / "forget_gates.png")


def _readme(summary: dict, table: str) -> str:
    m, T = summary["models"], summary["seq_len"]
    t1, t2 = f"{round(0.1 * T)}-{round(0.2 * T)}", f"{round(0.5 * T)}-{round(0.6 * T)}"
    return f"""# lstmkit demo: Standard RNN vs LSTM, measured

Command: `lstmkit demo` (what `make demo` runs). Task: temporal order (Hochreiter & Schmidhuber 1997, exp. 6a) at
T = {T}: the class is the order of two symbols X/Y placed at steps {t1} and {t2}, read at the last step, so the model
must carry them for {T - round(0.6 * T)}-{T - round(0.1 * T)} steps through random distractors. Chance is 0.25.

Every model: hidden size 32, batch 32, Adam 3e-3, gradient clipping 1, at most {summary['steps_budget']} steps, early \
stop at {summary['criterion']}; {summary['seeds']} seeds each. Wall time {summary['wall_time_s']:.0f} s for everything \
({summary['train_wall_time_s']:.0f} s training on {summary['workers']} worker processes, one thread each; torch \
{summary['torch']}, {summary['cpu_count']} CPU cores).

{table}

Gate layers count the sigmoid/tanh layers that read [x_t, h_(t-1)] (RNN: tanh; GRU: r, z, n; LSTM: i, f, g, o).
The gradient half-life is the fitted number of steps over which the batch-mean norm of dL/dh_t halves going back
in time (seed 0, {GRADFLOW_SEQUENCES} test sequences); "no decay" means the fitted norm does not shrink with the lag.
A claim that a model "fails" here means: plain model, standard init, this budget. Tricks exist that make a tanh
RNN learn long lags (identity init, Le et al. 2015) and they are not used.

## What the numbers say

{_verdict(m)}

## Learning curves

![Held-out accuracy against training step, per model and seed](learning_curves.png)

Each panel is one model, each line one seed; dashed grey is chance (0.25), dotted green the "solved" bar (0.99).

## The vanishing gradient

![Gradient norm against lag, log scale](gradient_vs_lag.png)

Left: batch-mean ||dL/dh_t|| against how many steps before the loss step t is; dashed at initialisation, solid
after training. A straight falling line on this log scale is an exponentially vanishing gradient. Right: the
same through the LSTMs' cell state c_t.

## Inside the trained LSTM

![Gates and cell state of one sequence](lstm_gates.png)

Input gate i, forget gate f, candidate g, output gate o and cell state c of every unit (rows) at every step
(columns) for one held-out sequence; the arrows mark the X/Y symbols.

![Forget-gate histograms](forget_gates.png)

Distribution of the retention gate over all held-out steps and units: the LSTM's forget gate f (1 keeps c) at
initialisation and trained, for forget bias 3 and for torch's initialisation, and the GRU's update gate z.

Per-run folders (config, metrics, checkpoint, weights) are in `runs/`; `summary.json` and `gradflow.json` hold
every number above.
"""


def _reach(half_life, lag: int) -> str:
    if half_life is None:
        return ""
    return f", so a step {lag} back receives about {2 ** (-lag / half_life):.0e} of the last step's gradient"


def _verdict(m: dict) -> str:
    """The textbook's claims, each checked against this run's numbers (the wording follows the numbers)."""
    rnn, gru, lstm, plain = m["rnn"], m["gru"], m["lstm"], m["lstm_torch_init"]
    hl = _fmt_half_life
    lines = []
    if rnn["success_rate"] == 0:
        lines.append(f"- **\"A standard RNN has short-term memory only\"**: held here. The tanh RNN stayed at chance "
                     f"(mean accuracy {rnn['metric']:.3f}, solved {rnn['solved']}); its gradient halves every "
                     f"{hl(rnn['grad_half_life'])} steps at initialisation{_reach(rnn['grad_half_life'], 40)}.")
    else:
        lines.append(f"- **\"A standard RNN has short-term memory only\"**: contradicted on this run. The tanh RNN "
                     f"solved {rnn['solved']} seeds (mean accuracy {rnn['metric']:.3f}) although its gradient "
                     f"halves every {hl(rnn['grad_half_life'])} steps at initialisation.")
    if lstm["success_rate"] == 1:
        lines.append(f"- **\"The LSTM keeps long-term memory\"**: held, with forget-gate bias 3: solved "
                     f"{lstm['solved']} seeds; its gradient half-life at initialisation is "
                     f"{hl(lstm['grad_half_life'])} steps (cell state: {hl(lstm['cell_grad_half_life'])}).")
    else:
        lines.append(f"- **\"The LSTM keeps long-term memory\"**: only partly: with forget-gate bias 3 it solved "
                     f"{lstm['solved']} seeds (mean accuracy {lstm['metric']:.3f}).")
    lines.append(f"- **The architecture alone is not the story**: the same LSTM with torch.nn's initialisation "
                 f"(forget gate near 0.5) solved {plain['solved']} seeds, and its gradient half-life at "
                 f"initialisation is {hl(plain['grad_half_life'])} steps, like the RNN's "
                 f"({hl(rnn['grad_half_life'])}). The cell state only resists the vanishing gradient when the forget "
                 "gate starts near 1.")
    lines.append(f"- **GRU** (not in the textbook table): solved {gru['solved']} seeds within the same budget; its "
                 f"update gate also starts near 0.5 (gradient half-life {hl(gru['grad_half_life'])} steps).")
    cheaper = sum(lstm["train_seconds"]) < sum(rnn["train_seconds"])
    lines.append(f"- **The price**: {lstm['gate_layers']} gate layers and {lstm['params']:,} parameters for the "
                 f"LSTM against {rnn['gate_layers']} and {rnn['params']:,} for the RNN "
                 f"({lstm['params'] / rnn['params']:.1f}x)"
                 + (", yet the LSTM runs took the least time: they stopped early once solved." if cheaper else "."))
    return "\n".join(lines)
