"""One self-contained HTML file: the page, its script and style inlined, and the data of the first ``sequences``
sequences (every layer and direction) embedded as JSON. It opens from disk in any browser, with no server: the
views, zoom, hover and select-and-match (searched over the embedded sequences, by ``explorer.js``'s port of
:mod:`lstmkit.explorer.match`) work; intervening needs a running model and is left out.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import InputError
from . import data
from .subject import Subject


def page_html(subjects: list[Subject], *, sequences: int = 32) -> str:
    if isinstance(sequences, bool) or not isinstance(sequences, int) or sequences < 1:
        raise InputError(f"`sequences` (how many to embed) must be a positive int, got {sequences!r}")
    n = min(sequences, len(subjects[0].x))
    payloads = {}
    for k, subject in enumerate(subjects):
        trace, out = subject.run(subject.x[:n])
        for seq in range(n):
            for layer in range(subject.rnn.num_layers):
                for direction in range(subject.num_directions):
                    payloads[f"{k}/{seq}/{layer}/{direction}"] = data.payload(subject, seq, layer, direction,
                                                                                trace, out, row=seq)
    embedded = {"meta": data.meta(subjects, mode="file", match_sequences=n), "sequences": payloads}
    static = resources.files("lstmkit.explorer").joinpath("static")
    html = static.joinpath("index.html").read_text()
    css = static.joinpath("explorer.css").read_text()
    js = static.joinpath("explorer.js").read_text()
    # "</" inside a script element would end it early: JSON allows "<\/" for "</"
    blob = json.dumps(embedded, separators=(",", ":")).replace("</", "<\\/")
    html = html.replace('<link rel="stylesheet" href="static/explorer.css">', f"<style>\n{css}</style>")
    js = js.replace("</", "<\\/")
    html = html.replace('<script src="static/explorer.js"></script>',
                        f"<script>window.EXPLORER_DATA = {blob};</script>\n<script>\n{js}</script>")
    return html


def export(subjects: list[Subject], path: str | Path, *, sequences: int = 32) -> Path:
    """Write the page to ``path`` and return it."""
    path = Path(path)
    html = page_html(subjects, sequences=sequences)
    path.write_text(html, encoding="utf-8")
    return path
