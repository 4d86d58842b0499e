"""The explorer's screenshots in docs/explorer/, taken by Playwright on the system's Chromium.

    .venv/bin/python -m lstmkit train --task temporal-order --model lstm --seq-len 30 --steps 300 --hidden 16 \
        --out runs/explore-lstm
    .venv/bin/python -m lstmkit train --task temporal-order --model gru --seq-len 30 --steps 300 --hidden 16 \
        --out runs/explore-gru
    .venv/bin/python docs/explorer/screenshots.py --run runs/explore-lstm --compare runs/explore-gru

Writes explore.png (the heatmaps), match.png (a selection and its matches), intervene.png (before and after),
compare.png (two runs side by side), export.png (the one-file page) and notebook.png (a Trace in Jupyter) and
prints the page's redraw time for a long sequence (T = 2,000).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from playwright.sync_api import sync_playwright

import lstmkit
from lstmkit.explorer import from_run
from lstmkit.explorer.export import export
from lstmkit.explorer.server import Explorer
from lstmkit.explorer.subject import check_comparable

OUT = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--compare", required=True)
    p.add_argument("--seq", type=int, default=0)
    args = p.parse_args()
    subjects = [from_run(args.run, max_sequences=256), from_run(args.compare, max_sequences=256)]
    check_comparable(*subjects)
    x = subjects[0].x[args.seq]
    marks = [t for t in range(x.shape[0]) if int(x[t].argmax()) >= 6]  # the X/Y steps of temporal order
    start = marks[0] + 1
    server = Explorer(subjects)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(server.url)
        page.wait_for_function("window.explorer && window.explorer.state.ready")
        page.fill("#seq", str(args.seq))
        page.dispatch_event("#seq", "change")
        page.wait_for_function(f"window.explorer.state.views.main.payload.seq === {args.seq}")
        cell = page.evaluate(f"window.explorer.state.views.main.cellCentre('c', 3, {start + 2})")
        page.mouse.move(cell["x"], cell["y"])
        page.screenshot(path=OUT / "explore.png")

        page.evaluate(f"window.explorer.setSelection({{record: 'c', start: {start}, stop: {start + 4}}})")
        page.fill("#threshold", "0.3")
        page.click("#match-run")
        page.wait_for_function("window.explorer.state.lastMatch")
        page.wait_for_timeout(1500)
        page.select_option("#order", "selection")
        page.mouse.move(5, 5)
        page.screenshot(path=OUT / "match.png")

        page.click("#tab-intervene")  # the forget gate shut between the two markers: the first one is lost
        page.select_option("#iv-record", "f")
        page.fill("#iv-units", "all")
        page.select_option("#iv-kind", "clamp")
        page.fill("#iv-value", "0")
        page.fill("#iv-start", str(marks[0] + 1))
        page.fill("#iv-stop", str(marks[1] - 1))
        page.click("#iv-run")
        page.wait_for_function("window.explorer.state.intervention")
        page.screenshot(path=OUT / "intervene.png")

        page.click("#tab-compare")
        page.screenshot(path=OUT / "compare.png")

        with tempfile.TemporaryDirectory() as tmp:
            path = export(subjects[:1], Path(tmp) / "page.html", sequences=16)
            page.goto(path.as_uri())
            page.wait_for_function("window.explorer && window.explorer.state.ready")
            page.click("#zoom-in")
            page.screenshot(path=OUT / "export.png")

            torch.manual_seed(0)
            trace = lstmkit.LSTM(3, 12, batch_first=True).trace(torch.randn(1, 60, 3))
            (Path(tmp) / "trace.html").write_text(f"<body style='margin:12px'>{trace._repr_html_()}</body>")
            small = browser.new_page(viewport={"width": 520, "height": 330})
            small.goto((Path(tmp) / "trace.html").as_uri())
            small.screenshot(path=OUT / "notebook.png")

        long_t = Explorer([lstmkit.explorer.from_model(lstmkit.LSTM(4, 64, batch_first=True),
                                                       torch.randn(2, 2000, 4))])
        page.goto(long_t.url)
        page.wait_for_function("window.explorer && window.explorer.state.ready")
        ms = page.evaluate("""() => { const v = window.explorer.state.views.main, t = [];
            for (let k = 0; k < 7; k++) { const a = performance.now(); v.draw(); t.push(performance.now() - a); }
            t.sort((a, b) => a - b); return t; }""")
        print(f"full redraw of six 64-unit records at T=2000: median {ms[3]:.1f} ms, range {ms[0]:.1f}-{ms[-1]:.1f} ms "
              "(7 redraws)")
        long_t.stop()
        browser.close()
    server.stop()
    print(f"wrote the screenshots in {OUT}")


if __name__ == "__main__":
    main()
