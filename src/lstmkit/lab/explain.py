"""Where the memory lives: which units of a trained model carry what the informative inputs said, found by
ablating and patching them inside the recurrence (:mod:`lstmkit.interventions`).

For each held-out sequence the task names the steps of its informative inputs and its read-out step
(:meth:`Task.informative`). The *span* is every step from the first informative input to the step before the
read-out: where the model must hold what it read. It differs per sequence, so every intervention below acts on
the span through ``where=``, a (rows, steps) mask. Over the span:

- **Ablation.** One unit's record (the cell state ``c`` or a gate ``i, f, g, o``; a GRU or an RNN has no ``c``,
  so there its state ``h`` and its gates, ``r, z, n`` or ``a``) is set to its mean over the held-out spans, one
  forward over the whole subset per (record, unit). The *effect* is how much worse the task's metric gets
  (accuracy lost; MSE gained). Units are ranked by the effect of ablating their state (``c``, or ``h``), the
  increase of the loss breaking ties.
- **Top k.** The states of the k top-ranked units are ablated together, k = 1..N (N units in all layers);
  ``k90`` is the smallest k whose effect reaches 90% of ablating every unit's state.
- **Patching.** The states of the top k units are set, over the span, to their values in a run on the
  counterfactual sequences (the same sequences with other informative symbols at the same steps,
  :meth:`Task.counterfactual`). A sequence *flips* when its answer becomes the counterfactual's
  (:meth:`Task.correct` against the counterfactual targets). The flip rate counts the sequences the model answers
  right in both runs and whose own answer is not already right for the counterfactual (for a regression task:
  targets further apart than its tolerance, so "becomes the counterfactual's answer" means "lands within the
  tolerance of the other target"); for a regression task it also gives the share whose prediction moved toward
  the counterfactual target.

Mean- rather than zero-ablation: zero is a value a unit may never take on the span (a cell state that holds
+-3, a forget gate that stays at 0.98, where f = 0 erases the unit's memory at every step of the span), so
zeroing measures the shock of an out-of-distribution value as well as the loss of information. Setting the unit
to its held-out mean keeps its typical level and removes only what it says about this sequence (the practice
of Wang et al. 2022, "Interpretability in the wild"; Heimersheim & Nanda 2024, "How to use and interpret
activation patching"). The mean is taken over the same (row, step) pairs that are ablated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

import lstmkit

from .model import SequenceModel
from .tasks import Batch, Task

SEQUENCES = 256        # held-out sequences explain uses by default (an H = 32 LSTM: 224 intervened runs)
GOAL = 0.9             # k90: the smallest k whose effect reaches this share of every unit's
EXAMPLES = 3           # sequences and
EXAMPLE_UNITS = 4      # top units whose state the example plot shows
STACK = 8              # intervention sets run in one forward (copies of the subset stacked along the batch)


Make = Callable[[slice, Tensor], list]   # (rows of one copy, the stacked where mask) -> its interventions


class _Stack:
    """Runs many sets of interventions in few forwards: ``copies`` copies of the batch stacked along the rows,
    each copy with its own set (``rows=``), so the reference engine's per-step cost is paid once per stack."""

    def __init__(self, model: SequenceModel, x: Tensor, span: Tensor, copies: int = STACK):
        self.model, self.x, self.span, self.copies = model, x, span, copies

    def run(self, sets: list[Make]) -> Iterator[Tensor]:
        """The outputs (B, T, O) of the model under each set, in order."""
        B = self.x.shape[0]
        for start in range(0, len(sets), self.copies):
            chunk = sets[start : start + self.copies]
            where = self.span.repeat(len(chunk), 1)  # (copies B, T)
            ivs = [iv for g, make in enumerate(chunk) for iv in make(slice(g * B, (g + 1) * B), where)]
            with self.model.rnn.intervene(*ivs):
                out = self.model(self.x.repeat(len(chunk), 1, 1))  # (copies B, T, O)
            yield from out.split(B)


def _by_layer(chosen: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    by_layer: dict[int, list[int]] = {}
    for layer, j in chosen:
        by_layer.setdefault(layer, []).append(j)
    return by_layer


class NoInformativeSteps(ValueError):
    """The task does not say where its informative inputs are, so there is no span to intervene on."""


def state_record(model: SequenceModel) -> str:
    """The record that carries memory: the LSTM's cell state ``c``, else the state ``h`` (GRU, RNN)."""
    return "c" if "c" in model.rnn.cell.records else "h"


def default_records(model: SequenceModel) -> list[str]:
    """The state first, then the gates (every record but the states)."""
    return [state_record(model), *[r for r in model.rnn.cell.records if r not in ("c", "h")]]


@torch.no_grad()
def explain(model: SequenceModel, task: Task, *, sequences: int = SEQUENCES, records: Sequence[str] | None = None,
            seed: int = 0) -> dict:
    """Ablate and patch ``model``'s units over the memory span of ``sequences`` held-out sequences of ``task``;
    the result (JSON-ready) holds every figure, ranked (see the module docstring)."""
    t_start = time.perf_counter()
    test = task.test_set()
    batch = test.slice(0, min(sequences, len(test)))
    informative = task.informative(batch)
    if informative is None:
        raise NoInformativeSteps(f"lstmkit explain needs a task whose answer depends on a few inputs at known "
                                 f"steps (temporal-order, adding, adding-1997, recall); task {task.name!r} does "
                                 "not say where its informative inputs are")
    state = state_record(model)
    records = default_records(model) if records is None else list(records)
    unknown = [r for r in records if r not in model.rnn.cell.records]
    if unknown or state not in records:
        raise ValueError(f"records must include the state {state!r} and be among {', '.join(model.rnn.cell.records)},"
                         f" got {', '.join(records)}")
    model.eval()
    B, T = batch.x.shape[:2]
    span = informative.span(T)  # (B, T) bool, laid out like the batch_first records without their units
    L = model.rnn.num_layers
    clean_trace = model.rnn.trace(batch.x)
    clean = model(batch.x)  # (B, T, O)
    base = task.evaluate(clean, batch)
    means = {(layer, r): getattr(clean_trace[layer, 0], r)[span].mean(0) for layer in range(L) for r in records}
    units = [(layer, j) for layer in range(L) for j in range(means[0, state].shape[0])]

    stack = _Stack(model, batch.x, span)

    def worse(out: Tensor) -> tuple[float, float]:
        """(metric effect, loss effect) of a run: positive is worse than the clean run."""
        figures = task.evaluate(out, batch)
        metric = figures["metric"] - base["metric"]
        return (-metric if task.higher_is_better else metric) + 0.0, figures["loss"] - base["loss"]  # (no -0.0)

    def ablation(record: str, chosen: Sequence[tuple[int, int]]) -> Make:
        def make(rows: slice, where: Tensor) -> list:
            return [lstmkit.clamp(record, means[layer, record][js], layer=layer, units=js, rows=rows, where=where)
                    for layer, js in _by_layer(chosen).items()]
        return make

    sets = [ablation(r, [u]) for r in records for u in units]
    outs = iter(stack.run(sets))
    effects = {r: [worse(next(outs)) for _ in units] for r in records}
    order = sorted(range(len(units)), key=lambda n: effects[state][n], reverse=True)
    ranked = [units[n] for n in order]

    top_k = [worse(out) for out in stack.run([ablation(state, ranked[:k]) for k in range(1, len(units) + 1)])]
    everything = top_k[-1][0]
    k90 = next((k + 1 for k, (e, _) in enumerate(top_k) if e >= GOAL * everything), None) if everything > 0 else None

    patching = _patching(model, task, batch, stack, state, ranked, clean, seed)
    examples = _examples(clean_trace, state, ranked[:EXAMPLE_UNITS], informative, min(EXAMPLES, B))
    return {
        "task": task.name, "seq_len": task.seq_len, "model": model.spec.model,
        "model_description": model.spec.describe(), "sequences": B, "state": state, "records": records,
        "ablation": "mean over the held-out spans", "span": "first informative step to the step before the read-out",
        "span_steps_mean": span.sum(1).float().mean().item(), "metric_name": task.metric_name,
        "higher_is_better": task.higher_is_better, "clean": {"metric": base["metric"], "loss": base["loss"]},
        "units": [{"label": _label(u, L), "layer": u[0], "unit": u[1], "rank": rank + 1,
                   "effect": {r: effects[r][units.index(u)][0] for r in records},
                   "loss_effect": {r: effects[r][units.index(u)][1] for r in records}}
                  for rank, u in enumerate(ranked)],
        "top_k": [{"k": k + 1, "effect": e, "loss_effect": le, "metric": _metric_after(base["metric"], e, task)}
                  for k, (e, le) in enumerate(top_k)],
        "all_units_effect": everything, "k90": k90, "k90_patching": _first_k(patching["flip_rate"], GOAL),
        "patching": patching, "examples": examples,
        "seconds": round(time.perf_counter() - t_start, 2),
    }


def _metric_after(clean: float, effect: float, task: Task) -> float:
    return clean - effect if task.higher_is_better else clean + effect


def _label(unit: tuple[int, int], layers: int) -> str:
    return str(unit[1]) if layers == 1 else f"{unit[0]}.{unit[1]}"


def _patching(model: SequenceModel, task: Task, batch: Batch, stack: _Stack, state: str,
              ranked: list[tuple[int, int]], clean: Tensor, seed: int) -> dict:
    """Patch the top k units' state from the counterfactual run over the span, k = 1..N: the flip rates."""
    other = task.counterfactual(batch, torch.Generator().manual_seed(seed))
    other_trace = model.rnn.trace(other.x)
    other_out = model(other.x)
    rows = task.correct(clean, batch) & task.correct(other_out, other) & ~task.correct(clean, other)  # (B,)
    regression = batch.y.is_floating_point()

    def patching(chosen: Sequence[tuple[int, int]]) -> Make:
        def make(rows: slice, where: Tensor) -> list:
            copies = where.shape[0] // len(batch)
            return [lstmkit.patch(state, getattr(other_trace[layer, 0], state).repeat(copies, 1, 1), layer=layer,
                                  units=js, rows=rows, where=where) for layer, js in _by_layer(chosen).items()]
        return make

    flips, toward = [], []
    for out in stack.run([patching(ranked[:k]) for k in range(1, len(ranked) + 1)]):
        flips.append(_share(task.correct(out, other), rows))
        if regression:
            moved = (out[:, -1, 0] - other.y).abs() < (clean[:, -1, 0] - other.y).abs()
            toward.append(_share(moved, rows))
    return {"rows": int(rows.sum()), "flip_rate": flips, "moved_toward_rate": toward if regression else None,
            "source": "the same sequences with other informative symbols at the same steps"}


def _first_k(rates: list[float | None], goal: float) -> int | None:
    return next((k + 1 for k, r in enumerate(rates) if r is not None and r >= goal), None)


def _share(hit: Tensor, rows: Tensor) -> float | None:
    n = int(rows.sum())
    return None if n == 0 else int((hit & rows).sum()) / n


def _examples(trace: lstmkit.Trace, state: str, top: list[tuple[int, int]], informative, n: int) -> list[dict]:
    """The top units' state over time on the first ``n`` sequences, with their informative and read-out steps."""
    return [{"row": b, "informative_steps": informative.steps[b].tolist(), "readout": int(informative.readout[b]),
             "units": {_label(u, trace.num_layers): getattr(trace[u[0], 0], state)[b, :, u[1]].tolist() for u in top}}
            for b in range(n)]


def explain_run(run_dir: str | Path, out_dir: str | Path | None = None, *, sequences: int = SEQUENCES,
                records: Sequence[str] | None = None) -> dict:
    """:func:`explain` on a finished ``lstmkit train`` run; writes ``explain.json`` and the plots to ``out_dir``
    (default ``run_dir/explain``)."""
    from .files import write_json
    from .runs import load_run

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"--run {run_dir} is not a run folder: it has no config.json (lstmkit train writes one)")
    if not (run_dir / "model.safetensors").is_file():
        raise ValueError(f"--run {run_dir} is not a finished run: it has no model.safetensors yet (let lstmkit train "
                         "finish, or continue it with --resume)")
    config, task, model = load_run(run_dir)
    result = {"run": str(run_dir), **explain(model, task, sequences=sequences, records=records)}
    out = run_dir / "explain" if out_dir is None else Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "explain.json", result)
    from .explain_plots import plot_effects, plot_examples, plot_top_k

    plot_effects(result, out / "unit_effects.png")
    plot_top_k(result, out / "top_k.png")
    plot_examples(result, out / "top_units_state.png")
    return result


def format_table(result: dict, rows: int = 10) -> str:
    """The ranked units as a text table (the top ``rows``), then k90 and the flip rate."""
    records = result["records"]
    name = "accuracy lost" if result["higher_is_better"] else f"{result['metric_name']} gained"
    lines = [f"{result['task']} (T = {result['seq_len']}), {result['model_description']}: {result['metric_name']} "
             f"{result['clean']['metric']:.4g} on {result['sequences']} held-out sequences; effect = {name} when the "
             "unit's record is mean-ablated over the span",
             "rank  unit  " + "  ".join(f"{r:>8s}" for r in records)]
    for u in result["units"][:rows]:
        lines.append(f"{u['rank']:4d}  {u['label']:>4s}  " + "  ".join(f"{u['effect'][r]:8.4f}" for r in records))
    k90, state, p = result["k90"], result["state"], result["patching"]
    lines.append(f"all {len(result['units'])} units' {state} ablated: effect {result['all_units_effect']:.4f}; "
                 + ("no effect to reach" if k90 is None else f"k90 = {k90} (the top {k90} reach 90% of it)"))
    kp = result["k90_patching"]
    lines.append(f"patching the top k units' {state} from counterfactual sequences ({p['rows']} sequences): "
                 + ("no k flips 90% of them" if kp is None else f"k = {kp} flips {p['flip_rate'][kp - 1]:.3f}")
                 + "; flip rate at k = 1, 2, 4, 8: "
                 + ", ".join("n/a" if p["flip_rate"][k - 1] is None else f"{p['flip_rate'][k - 1]:.3f}"
                             for k in (1, 2, 4, 8) if k <= len(p["flip_rate"]))
                 + ("" if p["moved_toward_rate"] is None else
                    "; moved toward the other target at k = 1, 2, 4, 8: "
                    + ", ".join(f"{p['moved_toward_rate'][k - 1]:.3f}" for k in (1, 2, 4, 8)
                                if k <= len(p["flip_rate"]) and p["moved_toward_rate"][k - 1] is not None)))
    return "\n".join(lines)
