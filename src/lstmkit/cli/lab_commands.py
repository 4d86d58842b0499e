"""The memory lab's subcommands: ``train``, ``gradflow``, ``explain``, ``sweep`` and ``demo``.

Each subcommand is one function that adds its parser and returns the function that runs it. The lab's modules
(and matplotlib, tqdm, safetensors, scikit-learn) are imported only when a subcommand runs, after a check that the
``lab`` extra is installed (:mod:`lstmkit.cli.extras`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .._rules import check_output_folder
from .extras import require_lab_extra
from .types import (
    MODEL_NAMES,
    TASK_NAMES,
    finite_float,
    int_list,
    learning_rate,
    model_list,
    positive_float,
    positive_int,
    probability,
    seed_int,
)
from .usage import UsageError


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hidden", type=positive_int, default=32, help="hidden units H (default 32)")
    p.add_argument("--layers", type=positive_int, default=1, help="stacked layers (default 1)")
    lstm = p.add_argument_group("LSTM options")
    lstm.add_argument("--init", choices=("forget-bias", "chrono", "torch"), default="forget-bias",
                      help="LSTM initialisation: forget-gate bias (default), chrono (Tallec & Ollivier 2018, t_max "
                           "= sequence length) or torch.nn's (forget gate starts near 0.5)")
    lstm.add_argument("--forget-bias", type=finite_float, default=None,
                      help="the forget gate's starting bias with --init forget-bias (default 3)")
    lstm.add_argument("--peephole", action="store_true", help="peephole connections (Gers 2000)")
    lstm.add_argument("--layer-norm", action="store_true", help="layer-normalised LSTM (Ba 2016)")
    lstm.add_argument("--coupled", action="store_true", help="coupled input-forget gate (Greff 2017)")
    p.add_argument("--recurrent-dropout", type=probability, default=0.0, help="variational dropout on h_{t-1}")
    p.add_argument("--zoneout", type=probability, default=0.0, help="zoneout probability")


def _model_spec(args, model: str):
    from ..lab.model import ModelSpec

    if model != "lstm":
        used = [flag for flag, on in (("--forget-bias", args.forget_bias is not None), ("--peephole", args.peephole),
                                      ("--layer-norm", args.layer_norm), ("--coupled", args.coupled),
                                      ("--init", args.init != "forget-bias")) if on]
        if used:
            raise UsageError(f"{used[0]} applies to --model lstm only, got --model {model}")
    if args.forget_bias is not None and args.init != "forget-bias":
        raise UsageError(f"--forget-bias sets the bias of --init forget-bias, got --init {args.init}")
    return ModelSpec(model=model, hidden=args.hidden, layers=args.layers, init=args.init,
                     forget_bias=3.0 if args.forget_bias is None else args.forget_bias, peephole=args.peephole,
                     layer_norm=args.layer_norm, coupled=args.coupled, recurrent_dropout=args.recurrent_dropout,
                     zoneout=args.zoneout)


def _add_training_options(p: argparse.ArgumentParser, *, steps: int) -> None:
    p.add_argument("--seq-len", type=positive_int, default=None,
                   help="task length T (the lag for recall, the delay for copy; default: the task's)")
    p.add_argument("--steps", type=positive_int, default=steps, help=f"training steps budget (default {steps})")
    p.add_argument("--batch", type=positive_int, default=32, help="global batch size (default 32)")
    p.add_argument("--lr", type=learning_rate, default=3e-3, help="Adam learning rate, at most 10 (default 3e-3)")
    p.add_argument("--clip", type=positive_float, default=1.0, help="gradient-norm clipping (default 1)")
    p.add_argument("--eval-every", type=positive_int, default=100, help="steps between evaluations (default 100)")
    p.add_argument("--no-early-stop", dest="early_stop", action="store_false",
                   help="train the whole budget even once solved")


def _train_config(args, model: str, seed: int, seq_len=None):
    from ..lab.config import TrainConfig

    return TrainConfig(task=args.task, seq_len=args.seq_len if seq_len is None else seq_len,
                       model=_model_spec(args, model), seed=seed, steps=args.steps, batch=args.batch, lr=args.lr,
                       clip=args.clip, eval_every=args.eval_every,
                       checkpoint_every=getattr(args, "checkpoint_every", 500), early_stop=args.early_stop)


def _option(field: str) -> str:
    """The command-line option that sets a config field: ``seq_len`` -> ``--seq-len``."""
    return "--" + field.replace("_", "-")


def _check_fits(configs) -> None:
    """Refuse, naming the options, runs that cannot fit in this machine's memory (before any work starts)."""
    from ..lab.memory import check_fits
    from ..lab.tasks import make_task

    for config in configs:
        check_fits(config, make_task(config.task, config.seq_len), name=_option)


# --- train -----------------------------------------------------------------------------------------------------

def train_parser(sub) -> Callable:
    p = sub.add_parser("train", help="train one model on one task", description="Train a model on a memory task; "
                       "under torchrun the same command runs data parallel.")
    p.add_argument("--task", required=True, choices=TASK_NAMES, metavar="TASK",
                   help=f"one of {', '.join(TASK_NAMES)}")
    p.add_argument("--model", required=True, choices=MODEL_NAMES, help="rnn (tanh), gru or lstm")
    p.add_argument("--seed", type=seed_int, default=0, help="seed of initialisation and data (default 0)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--checkpoint-every", type=positive_int, default=500, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_training_options(p, steps=5000)
    _add_model_options(p)
    return _run_train


def _run_train(args) -> int:
    require_lab_extra(args.command)  # before anything of the lab is imported
    import json
    import os

    from ..lab.trainer import train

    config = _train_config(args, args.model, args.seed)
    _check_fits([config])
    check_output_folder("--out", args.out)
    summary = train(config, args.out, resume=args.resume, progress=not args.quiet)
    if summary["world_size"] == 1 or int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


# --- gradflow --------------------------------------------------------------------------------------------------

def gradflow_parser(sub) -> Callable:
    p = sub.add_parser("gradflow", help="gradient norm against lag, at initialisation and after training",
                       description="Measure the batch-mean |dL/dh_t| (and |dL/dc_t| for an LSTM) against the lag "
                                   "T - t for a finished train run, at initialisation and with its trained weights.")
    p.add_argument("--run", required=True, help="a run folder written by lstmkit train")
    p.add_argument("--out", default=None, help="where to write gradflow.json/png (default: the run folder)")
    p.add_argument("--batch", type=positive_int, default=256, help="test sequences averaged over (default 256)")
    return _run_gradflow


def _run_gradflow(args) -> int:
    require_lab_extra(args.command)  # before anything of the lab is imported
    from pathlib import Path

    from ..lab.gradflow import gradflow_run

    out = Path(args.out or args.run)
    if args.out:  # (without it the output goes to the run folder, which load_run checks)
        check_output_folder("--out", out)
    result = gradflow_run(args.run, out, batch=args.batch)
    for stage in ("init", "trained"):
        r = result[stage]
        line = f"{stage:8s} dL/dh: decay/step {r['h']['decay_per_step']:.3f}, half-life {_steps(r['h'])}"
        if r.get("c"):
            line += f"; dL/dc: decay/step {r['c']['decay_per_step']:.3f}, half-life {_steps(r['c'])}"
        print(line)
    print(f"wrote {out / 'gradflow.json'} and {out / 'gradflow.png'}")
    return 0


def _steps(fit: dict) -> str:
    return "no decay" if fit["half_life"] is None else f"{fit['half_life']:.1f} steps"


# --- explain ---------------------------------------------------------------------------------------------------

def explain_parser(sub) -> Callable:
    p = sub.add_parser("explain", help="which units carry the memory: ablation, top-k curve, patching flip rate",
                       description="On a finished train run's held-out sequences, mean-ablate each unit's cell "
                                   "state (h for a GRU or RNN) and each gate over the span between the informative "
                                   "inputs and the read-out, rank the units by the metric's drop, ablate the top k "
                                   "(k = 1..H) and patch their state from sequences with other informative "
                                   "symbols (the flip rate). Writes explain.json and plots.")
    p.add_argument("--run", required=True, help="a run folder written by lstmkit train (temporal-order, adding, "
                                                "adding-1997 or recall)")
    p.add_argument("--out", default=None, help="where to write explain.json and the plots (default: RUN/explain)")
    p.add_argument("--sequences", type=positive_int, default=256, help="held-out sequences used (default 256)")
    p.add_argument("--top", type=positive_int, default=10, help="units shown in the printed table (default 10)")
    return _run_explain


def _run_explain(args) -> int:
    require_lab_extra(args.command)  # before anything of the lab is imported
    from pathlib import Path

    from ..lab.explain import explain_run, format_table

    out = Path(args.out) if args.out else Path(args.run) / "explain"
    check_output_folder("--out", out)
    result = explain_run(args.run, out, sequences=args.sequences)
    print(format_table(result, rows=args.top))
    print(f"wrote {out / 'explain.json'}, {out / 'unit_effects.png'}, {out / 'top_k.png'} and "
          f"{out / 'top_units_state.png'} ({result['seconds']:.0f} s)")
    return 0


# --- sweep -----------------------------------------------------------------------------------------------------

def sweep_parser(sub) -> Callable:
    p = sub.add_parser("sweep", help="final metric against sequence length (the recall accuracy-vs-lag curve)",
                       description="Train each model at each length and plot the held-out metric against length.")
    p.add_argument("--task", default="recall", choices=TASK_NAMES, metavar="TASK", help="default recall")
    p.add_argument("--models", type=model_list, default=list(MODEL_NAMES), help="default rnn,gru,lstm")
    p.add_argument("--lengths", type=int_list, default=[5, 10, 20, 40, 80], help="default 5,10,20,40,80")
    p.add_argument("--seeds", type=positive_int, default=1, help="seeds per point (default 1)")
    p.add_argument("--out", required=True, help="sweep folder")
    p.add_argument("--workers", type=positive_int, default=2, help="runs trained at once (default 2)")
    _add_training_options(p, steps=1500)
    _add_model_options(p)
    return _run_sweep


def _run_sweep(args) -> int:
    require_lab_extra(args.command)  # before anything of the lab is imported
    from ..lab.sweep import sweep

    if args.seq_len is not None:
        raise UsageError("lstmkit sweep: use --lengths, not --seq-len")
    configs = [_train_config(args, model, seed, seq_len=length) for model in args.models
               for length in args.lengths for seed in range(args.seeds)]
    _check_fits(configs)
    check_output_folder("--out", args.out)
    result = sweep(configs, args.out, workers=args.workers)
    for row in result["rows"]:
        print(f"{row['model']:5s} length {row['seq_len']:5d}: {result['metric_name']} {row['metric']:.3f} "
              f"(solved {row['solved']}/{row['seeds']})")
    print(f"wrote {args.out}/sweep.json and {args.out}/sweep.png")
    return 0


# --- demo ------------------------------------------------------------------------------------------------------

def demo_parser(sub) -> Callable:
    p = sub.add_parser("demo", help="the 'Standard RNN vs LSTM' table, measured (what make demo runs)",
                       description="Train a tanh RNN, a GRU and an LSTM (and an LSTM with torch's init) on "
                                   "temporal order at T=100, 3 seeds each, and write the table, plots and README.")
    p.add_argument("--out", default="runs/demo", help="demo folder (default runs/demo)")
    p.add_argument("--seq-len", type=positive_int, default=100, help="temporal-order length (default 100)")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per model (default 3)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="steps budget per run, the same for every model (default 2000)")
    p.add_argument("--workers", type=positive_int, default=2, help="runs trained at once (default 2)")
    return _run_demo


def _run_demo(args) -> int:
    require_lab_extra(args.command)  # before anything of the lab is imported
    from ..lab.demo import demo_configs, run_demo

    _check_fits(demo_configs(args.seq_len, args.seeds, args.steps).values())
    check_output_folder("--out", args.out)
    run_demo(args.out, seq_len=args.seq_len, seeds=args.seeds, steps=args.steps, workers=args.workers)
    return 0


LAB_SUBCOMMANDS: list[Callable] = [train_parser, gradflow_parser, explain_parser, sweep_parser, demo_parser]
