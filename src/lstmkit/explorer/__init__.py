"""The gate explorer: a model's gates and cell state on real inputs, in the browser.

    explorer = lstmkit.explore(model, inputs)        # a local server (127.0.0.1, a free port); opens the page
    explorer.url, explorer.stop()
    lstmkit.explore_export(model, inputs, "page.html")  # one self-contained HTML file, no server

The page shows the input as a track and every record (LSTM ``i f g o c h``, GRU ``r z n h``, RNN ``a h``) as a
units × steps heatmap for a chosen layer, direction and sequence; select-and-match (:mod:`.match`); interventions
(:mod:`.intervene`, on the :mod:`lstmkit.interventions` API); two models side by side. ``lstmkit explore --run DIR``
does the same for a run folder. The server needs the ``explore`` extra (Starlette and uvicorn, see
:mod:`.server` for why); the exported file and :meth:`lstmkit.Trace._repr_html_` need nothing beyond the core.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from .subject import Subject, check_comparable, from_model, from_run

EXTRA = {"starlette": "starlette", "uvicorn": "uvicorn"}


def require_extra(what: str) -> None:
    """Raise ImportError (one line naming what is missing) unless the explore extra is installed."""
    import importlib.util

    missing = [package for module, package in EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        raise ImportError(f"{what} needs the explore extra; {', '.join(missing)} "
                          f"{'is' if len(missing) == 1 else 'are'} not installed: pip install \"lstmkit[explore]\"")


def subjects_for(model: nn.Module, inputs: Tensor, *, compare: nn.Module | None = None, ranking: list | None = None,
                 **track) -> list[Subject]:
    subjects = [from_model(model, inputs, ranking=ranking, **track)]
    if compare is not None:
        subjects.append(from_model(compare, inputs, **track))
        if subjects[0].name == subjects[1].name:
            subjects[0].name, subjects[1].name = f"A: {subjects[0].name}", f"B: {subjects[1].name}"
        check_comparable(*subjects)
    return subjects


def explore(model: nn.Module, inputs: Tensor, *, targets: Tensor | None = None, compare: nn.Module | None = None,
            symbols: str | None = None, tokens: list | None = None, pixels: bool = False, ranking: list | None = None,
            port: int | None = None, open_browser: bool = True):
    """Serve the explorer for ``model`` on ``inputs`` (N, T, I) at http://127.0.0.1:<port>/ and return the running
    :class:`~lstmkit.explorer.server.Explorer` (``.url``, ``.stop()``).

    ``model``: an lstmkit LSTM/GRU/RNN, or a module whose ``rnn`` attribute is one and which feeds its input straight
    to it (the lab's ``SequenceModel``; then its output per step is shown too, as the probability of ``targets``'
    class or a loss per step). ``compare``: a second such model, shown side by side on the same inputs. How the
    input is drawn: ``symbols`` (one letter per one-hot channel), ``tokens`` (one string per step and sequence),
    ``pixels`` (I = 1 intensities), else a line per channel. ``ranking``: an order of ``model``'s units (a list of
    unit indices, or one per layer; e.g. explain's), offered as the "explain ranking" order and shown first.
    ``port`` None picks a free one."""
    require_extra("lstmkit.explore")
    from .server import Explorer

    explorer = Explorer(subjects_for(model, inputs, compare=compare, ranking=ranking, targets=targets,
                                     symbols=symbols, tokens=tokens, pixels=pixels), port=port)
    if open_browser:
        import webbrowser

        webbrowser.open(explorer.url)
    return explorer


def explore_export(model: nn.Module, inputs: Tensor, path: str | Path, *, sequences: int = 32,
                   targets: Tensor | None = None, compare: nn.Module | None = None, symbols: str | None = None,
                   tokens: list | None = None, pixels: bool = False, ranking: list | None = None) -> Path:
    """Write the explorer for ``model`` on the first ``sequences`` of ``inputs`` as one self-contained HTML file."""
    from .export import export

    return export(subjects_for(model, inputs, compare=compare, ranking=ranking, targets=targets, symbols=symbols,
                               tokens=tokens, pixels=pixels), path, sequences=sequences)


__all__ = ["Subject", "explore", "explore_export", "from_model", "from_run", "require_extra"]
