"""``lstmkit explain``'s figures, drawn from its result (``explain.json``): the effect of ablating each unit, the
top-k curve with the patching flip rate, and the top units' state over time on a few sequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plots import _plt

RECORD_COLORS = {"c": "tab:blue", "h": "tab:blue", "i": "tab:green", "f": "tab:orange", "g": "tab:purple",
                 "o": "tab:red", "r": "tab:green", "z": "tab:orange", "n": "tab:purple", "a": "tab:green"}


def _what(result: dict) -> str:
    return f"{result['model_description']} on {result['task']} (T = {result['seq_len']}, {result['sequences']} " \
           "held-out sequences)"


def _effect_label(result: dict) -> str:
    return "accuracy lost" if result["higher_is_better"] else f"{result['metric_name']} gained"


def plot_effects(result: dict, path: Path) -> None:
    """Per unit (in rank order), the effect of mean-ablating each record over the span: one panel per record."""
    plt = _plt()
    units, records = result["units"], result["records"]
    x = np.arange(len(units))
    fig, axes = plt.subplots(len(records), 1, figsize=(max(7.0, 0.22 * len(units)), 1.5 * len(records) + 1.2),
                             sharex=True, sharey=True, squeeze=False)
    for ax, r in zip(axes[:, 0], records, strict=True):
        ax.bar(x, [u["effect"][r] for u in units], color=RECORD_COLORS.get(r, "grey"))
        ax.axhline(0, color="black", lw=0.6)
        ax.set_ylabel(f"{r} ablated", fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(x, [u["label"] for u in units], fontsize=7)
    axes[-1, 0].set_xlabel(f"unit, ranked by the effect of ablating its {result['state']}")
    fig.supylabel(f"{_effect_label(result)}", fontsize=9)
    fig.suptitle(f"Effect of mean-ablating one unit's record over the span\n{_what(result)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_top_k(result: dict, path: Path, ax=None) -> None:
    """The metric with the top k units' state ablated, k = 1..N, the clean metric and k90; on the right, the
    share of sequences whose answer flips when the top k units' state is patched from the counterfactual."""
    plt = _plt()
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ks = [row["k"] for row in result["top_k"]]
    state = result["state"]
    ax.plot(ks, [row["metric"] for row in result["top_k"]], "o-", ms=3, color="tab:blue",
            label=f"{result['metric_name']}, top k units' {state} ablated")
    ax.axhline(result["clean"]["metric"], color="grey", ls="--", lw=1, label="clean")
    if result["k90"] is not None:
        ax.axvline(result["k90"], color="green", ls=":", lw=1.2,
                   label=f"k90 = {result['k90']} (90% of all units' effect)")
    ax.set_xlabel(f"k (units ablated or patched, in rank order of their {state} effect)")
    ax.set_ylabel(f"held-out {result['metric_name']}")
    flips = result["patching"]["flip_rate"]
    if any(f is not None for f in flips):
        right = ax.twinx()
        right.plot(ks, [np.nan if f is None else f for f in flips], "s-", ms=3, color="tab:red",
                   label=f"flip rate, top k units' {state} patched ({result['patching']['rows']} sequences)")
        right.set_ylabel("flip rate (answer becomes the counterfactual's)")
        right.set_ylim(-0.02, 1.02)
        lines = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="center right")
    else:
        ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"Where the memory lives: {_what(result)}", fontsize=9)
    if own:
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)


def plot_examples(result: dict, path: Path) -> None:
    """The top units' state at every step of a few held-out sequences; dotted lines at the informative inputs,
    dashed at the read-out."""
    plt = _plt()
    examples = result["examples"]
    fig, axes = plt.subplots(len(examples), 1, figsize=(10, 2.4 * len(examples)), sharex=True, squeeze=False)
    for ax, ex in zip(axes[:, 0], examples, strict=True):
        for label, values in ex["units"].items():
            ax.plot(values, lw=1.2, label=f"unit {label}")
        for t in ex["informative_steps"]:
            ax.axvline(t, color="black", ls=":", lw=1)
        ax.axvline(ex["readout"], color="black", ls="--", lw=1)
        ax.set_ylabel(f"{result['state']}_t, sequence {ex['row']}", fontsize=8)
        ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=len(examples[0]["units"]), loc="upper left")
    axes[-1, 0].set_xlabel("step t (dotted: informative inputs; dashed: read-out)")
    fig.suptitle(f"The top-ranked units' {result['state']} over time\n{_what(result)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
