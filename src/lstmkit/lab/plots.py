"""The lab's figures. Every function takes the JSON-like results the lab writes and a path, and saves one PNG
with a title, labelled axes (with units) and a legend. matplotlib is imported here only, with the Agg backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLORS = {"rnn": "tab:red", "gru": "tab:orange", "lstm": "tab:blue", "lstm_torch_init": "tab:purple"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _positive(values) -> np.ndarray:
    """Zeros (no path to the loss, e.g. c_T when only h_T is read out) cannot sit on a log axis: left out."""
    v = np.asarray(values, dtype=float)
    return np.where(v > 0, v, np.nan)


def _half_life(fit: dict) -> str:
    return "no decay" if fit["half_life"] is None else f"half-life {fit['half_life']:.1f} steps"


def plot_gradflow_run(result: dict, path: Path) -> None:
    """One run: ||dL/dh_t|| (and ||dL/dc_t||) against lag, at initialisation (dashed) and trained (solid)."""
    plt = _plt()
    states = [s for s in ("h", "c") if s in result["init"]]
    fig, axes = plt.subplots(1, len(states), figsize=(6 * len(states), 4.2), squeeze=False)
    for ax, s in zip(axes[0], states, strict=True):
        for stage, style in (("init", "--"), ("trained", "-")):
            fit = result[stage][s]
            ax.semilogy(np.arange(len(fit["norms"])), _positive(fit["norms"]), style, color="tab:blue",
                        label=f"{'at initialisation' if stage == 'init' else 'after training'} ({_half_life(fit)})")
        ax.set_xlabel("lag T - 1 - t (steps before the loss)")
        ax.set_ylabel(f"batch-mean ||dL/d{s}_t|| (log scale)")
        ax.set_title(f"Gradient reaching back through {s}_t")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['model_description']} on {result['task']} (T = {result['seq_len']}, "
                 f"{result['sequences']} test sequences)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(curves: dict, path: Path, *, task: str, metric_name: str, baseline: float,
                         threshold: float | None, labels: dict) -> None:
    """``curves[key] = [(seed, steps, metrics)]``: one panel per model, one line per seed, held-out metric
    against training step, with the memoryless baseline and the "solved" threshold."""
    plt = _plt()
    keys = list(curves)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), sharey=True, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for seed, steps, metrics in curves[key]:
            ax.plot(steps, metrics, color=COLORS.get(key, "black"), alpha=0.4 + 0.2 * (seed % 3), lw=1.5,
                    label=f"seed {seed}")
        ax.axhline(baseline, color="grey", ls="--", lw=1, label=f"memoryless baseline ({baseline:.2f})")
        if threshold is not None:
            ax.axhline(threshold, color="green", ls=":", lw=1, label=f"solved ({threshold:g})")
        ax.set_title(labels.get(key, key))
        ax.set_xlabel("training step (batch of 32 sequences)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[0][0].set_ylabel(f"held-out {metric_name}")
    fig.suptitle(f"Learning curves on {task}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gradflow_models(measurements: dict, path: Path, *, labels: dict, seq_len: int) -> None:
    """Per model: ||dL/dh_t|| against lag at initialisation (dashed) and trained (solid); a second panel has
    the LSTMs' ||dL/dc_t||."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for key, m in measurements.items():
        for stage, style in (("init", "--"), ("trained", "-")):
            for ax, s in ((axes[0], "h"), (axes[1], "c")):
                if s not in m[stage]:
                    continue
                fit = m[stage][s]
                color = COLORS.get(key, "black")
                ax.semilogy(np.arange(len(fit["norms"])), _positive(fit["norms"]), style, color=color,
                            label=f"{labels.get(key, key)}, {'init' if stage == 'init' else 'trained'} "
                                  f"({_half_life(fit)})")
    for ax, s in ((axes[0], "h"), (axes[1], "c")):
        ax.set_xlabel("lag T - 1 - t (steps before the loss)")
        ax.set_ylabel(f"batch-mean ||dL/d{s}_t|| (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("Through the hidden state h_t (all models)")
    axes[1].set_title("Through the LSTM cell state c_t")
    fig.suptitle(f"How far back the gradient reaches (temporal order, T = {seq_len}; dashed: at initialisation, "
                 "solid: after training)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gate_heatmap(record: dict, symbols: str, marks: list[int], path: Path, *, title: str) -> None:
    """One sequence through a trained LSTM: ``record[name]`` is (T, H) for i, f, g, o, c; units on the y axis,
    time on the x axis; ``marks`` are the steps that matter (arrows); ``symbols`` the input, one per step."""
    plt = _plt()
    names = ["i", "f", "g", "o", "c"]
    long = {"i": "input gate i", "f": "forget gate f", "g": "candidate g", "o": "output gate o", "c": "cell state c"}
    T = len(symbols)
    fig, axes = plt.subplots(len(names), 1, figsize=(12, 10), sharex=True)
    for ax, name in zip(axes, names, strict=True):
        data = np.asarray(record[name]).T  # (H, T)
        if name in ("i", "f", "o"):
            vmin, vmax, cmap = 0.0, 1.0, "viridis"
        else:
            lim = float(np.abs(data).max()) or 1.0
            vmin, vmax, cmap = -lim, lim, "RdBu_r"
        im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_ylabel(f"{long[name]}\nunit")
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03)
    for t in marks:  # name the steps that matter above the first panel, leaving their columns visible
        axes[0].annotate(f"{symbols[t]} (t={t})", xy=(t, -0.5), xytext=(t, -4), ha="center", fontsize=8,
                         arrowprops={"arrowstyle": "->", "lw": 0.8}, annotation_clip=False)
    axes[-1].set_xlabel("step t (arrows: the X/Y symbols whose order is the class; the rest are distractors)")
    step = max(1, T // 20)
    axes[-1].set_xticks(range(0, T, step))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_gate_histograms(panels: list[tuple[str, dict]], path: Path) -> None:
    """``panels = [(title, gate_statistics)]``: the share of gate activations per bin over [0, 1]."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), sharey=True, squeeze=False)
    for ax, (title, stats) in zip(axes[0], panels, strict=True):
        edges = np.asarray(stats["histogram"]["edges"])
        counts = np.asarray(stats["histogram"]["counts"], dtype=float)
        ax.bar(edges[:-1], counts / counts.sum(), width=np.diff(edges), align="edge", color="tab:blue",
               edgecolor="white")
        ax.axvline(stats["mean"], color="black", ls="--", lw=1, label=f"mean {stats['mean']:.2f}")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"gate value {stats['gate']} (1 = keep the old state)")
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("share of (sequence, step, unit) values")
    fig.suptitle("Retention gates over the held-out sequences (LSTM forget gate f, GRU update gate z)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(rows: list[dict], path: Path, *, task: str, metric_name: str, baseline: float, steps: int) -> None:
    """Final held-out metric against sequence length, one line per model (mean over seeds, points per seed)."""
    plt = _plt()
    styles = {"rnn": ("s", "--", "tanh RNN"), "gru": ("^", "-.", "GRU"), "lstm": ("o", "-", "LSTM")}
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        marker, line, label = styles.get(model, ("o", "-", model))
        color = COLORS.get(model, "black")
        ax.plot([r["seq_len"] for r in mine], [r["metric"] for r in mine], marker=marker, ls=line, color=color,
                label=label, markersize=7, alpha=0.85)
        for r in mine:
            ax.scatter([r["seq_len"]] * len(r["per_seed"]), r["per_seed"], color=color, s=10, alpha=0.4)
    ax.axhline(baseline, color="grey", ls=":", lw=1, label=f"memoryless baseline ({baseline:.3g})")
    lengths = sorted({r["seq_len"] for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(lengths, [str(n) for n in lengths])
    ax.minorticks_off()
    ax.set_xlabel("sequence length / lag (steps, log scale)")
    ax.set_ylabel(f"held-out {metric_name}")
    ax.set_title(f"{task}: what each model still remembers as the lag grows\n(at most {steps:,} training steps each)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
