"""The explorer in a real browser: Playwright driving the system's Chromium (Debian's ``chromium`` package;
``make test`` installs it where it can). One server, one page, small random models; the page's numbers are
checked against lstmkit's own: a hovered heatmap cell against ``trace``, select-and-match against
:func:`lstmkit.explorer.match.match`, an intervention against the interventions API, the exported file's
in-page matching against the same function."""

import os
import shutil

import pytest
import torch

import lstmkit
from lstmkit.explorer.export import export
from lstmkit.explorer.match import match
from lstmkit.lab.model import ModelSpec, SequenceModel
from lstmkit.lab.tasks import make_task

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytest.importorskip("starlette", reason="the explore extra (starlette, uvicorn) is not installed")
CHROMIUM = os.environ.get("LSTMKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (make test does, as root), or set "
                "LSTMKIT_CHROMIUM", allow_module_level=True)

SEQS = 24
RANKING = [3, 0, 5, 1, 4, 2]  # an explain ranking of the LSTM's 6 units, as lstmkit.explore(ranking=) takes it


def models():
    task = make_task("temporal-order", 16)
    torch.manual_seed(1)
    lstm = SequenceModel(ModelSpec(model="lstm", hidden=6), task.input_size, task.output_size, t_max=16)
    gru = SequenceModel(ModelSpec(model="gru", hidden=6), task.input_size, task.output_size, t_max=16)
    batch = task.test_set().slice(0, SEQS)
    return lstm, gru, batch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lstmkit.explorer import subjects_for
    from lstmkit.explorer.server import Explorer

    lstm, gru, batch = models()
    subjects = subjects_for(lstm, batch.x, compare=gru, targets=batch.y, symbols="abcdBEXY",
                            ranking=RANKING)
    server = Explorer(subjects)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(8000)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.wait_for_function("window.explorer && window.explorer.state.ready", timeout=15000)
        yield {"page": page, "browser": browser, "subjects": subjects, "lstm": lstm, "gru": gru, "x": batch.x,
               "errors": errors, "tmp": tmp_path_factory.mktemp("page")}
        browser.close()
    server.stop()
    assert not errors, errors


def show_sequence(page, seq):
    page.fill("#seq", str(seq))
    page.dispatch_event("#seq", "change")
    page.wait_for_function(f"window.explorer.state.views.main.payload.seq === {seq}")


def hover(page, view, record, unit, step):
    """Move the mouse over the drawn cell (unit, step) of `record` and return what the tooltip says it holds."""
    xy = page.evaluate(f"window.explorer.state.views.{view}.cellCentre('{record}', {unit}, {step})")
    page.mouse.move(xy["x"], xy["y"])
    tip = page.locator("#tooltip")
    return {k: tip.get_attribute(f"data-{k}") for k in ("record", "unit", "step", "value")}


def traced(model, x, seq, interventions=None):
    with torch.no_grad():
        kw = {"interventions": interventions} if interventions else {}
        return model.rnn.trace(x[seq : seq + 1], **kw)[0, 0]


def test_a_hovered_heatmap_cell_shows_the_value_trace_gives(setup):
    page, lstm, x = setup["page"], setup["lstm"], setup["x"]
    show_sequence(page, 3)
    record = traced(lstm, x, 3)
    for order in ("index", "activity"):
        page.select_option("#order", order)
        for name, unit, step in (("f", 0, 0), ("c", 5, 15), ("g", 2, 7)):
            cell = hover(page, "main", name, unit, step)
            assert cell == {"record": name, "unit": str(unit), "step": str(step), "value": cell["value"]}
            assert float(cell["value"]) == getattr(record, name)[0, step, unit].item()
    page.click("#zoom-in")  # half the steps, centred: the cells move, the values stay
    assert float(hover(page, "main", "o", 1, 8)["value"]) == record.o[0, 8, 1].item()
    page.click("#zoom-fit")


def first_row_unit(page, record, step=5):
    """The unit the tooltip names over the top row of `record`'s heatmap."""
    box = page.locator(f"#main-view canvas[data-record={record}]").bounding_box()
    row_px = page.evaluate(f"window.explorer.state.views.main.rows.{record}.rowPx")
    page.mouse.move(box["x"] + box["width"] * (step + 0.5) / 16, box["y"] + row_px / 2)
    return int(page.locator("#tooltip").get_attribute("data-unit"))


def test_the_explain_order_puts_the_top_ranked_unit_in_the_first_row(setup):
    page = setup["page"]
    show_sequence(page, 1)
    page.select_option("#order", "index")
    assert first_row_unit(page, "c") == 0
    page.select_option("#order", "explain")
    assert [first_row_unit(page, r) for r in ("i", "c", "h")] == [RANKING[0]] * 3


def test_select_and_match_in_the_page_equals_the_python_rule(setup):
    page, subject = setup["page"], setup["subjects"][0]
    show_sequence(page, 5)
    c = subject.record(subject.full_trace(), 0, 0, "c")  # (N, T, H): what the server searches
    start, stop = 6, 9
    threshold = round(float(c[5, start : stop + 1].min(0).values.median()), 3)  # about half the units on
    a = page.evaluate(f"window.explorer.state.views.main.cellCentre('c', 0, {start})")
    b = page.evaluate(f"window.explorer.state.views.main.cellCentre('c', 0, {stop})")
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move(b["x"], b["y"], steps=4)
    page.mouse.up()
    assert page.inner_text("#selection-label") == f"selected: c, steps {start}..{stop} of sequence 5"
    page.fill("#threshold", str(threshold))
    page.click("#match-run")
    page.wait_for_function("window.explorer.state.lastMatch || document.getElementById('error').textContent")
    assert page.inner_text("#error") == ""
    page.wait_for_selector("#match-hits .hit")
    expected = match(c, 5, start, stop, threshold, top=20)
    assert page.evaluate("window.explorer.state.lastMatch.result") == expected
    page.wait_for_function(f"document.querySelectorAll('#match-hits .hit').length === {len(expected['hits'])}")
    shown = page.eval_on_selector_all("#match-hits .hit", "els => els.map(e => [+e.dataset.seq, +e.dataset.start])")
    assert shown == [[h["seq"], h["start"]] for h in expected["hits"]]
    assert shown[0] == [5, start]


def test_an_intervention_in_the_page_equals_the_interventions_api(setup):
    page, lstm, x, subject = setup["page"], setup["lstm"], setup["x"], setup["subjects"][0]
    show_sequence(page, 2)
    page.click("#tab-intervene")
    page.select_option("#iv-record", "c")
    page.fill("#iv-units", "1,4")
    page.fill("#iv-start", "3")
    page.fill("#iv-stop", "10")
    page.select_option("#iv-kind", "clamp")
    page.fill("#iv-value", "2.5")
    page.click("#iv-run")
    page.wait_for_function("window.explorer.state.intervention && window.explorer.state.intervention.req.seq === 2")
    after = traced(lstm, x, 2, [lstmkit.clamp("c", 2.5, units=[1, 4], steps=slice(3, 11))])
    before = traced(lstm, x, 2)
    for name in ("f", "c", "h"):
        shown = page.evaluate(f"Array.from(window.explorer.state.intervention.after.records.{name}.values)")
        assert torch.equal(torch.tensor(shown, dtype=torch.float32).reshape(16, 6), getattr(after, name)[0])
    assert not torch.equal(after.h, before.h)
    assert float(hover(page, "after", "c", 4, 5)["value"]) == 2.5
    with torch.no_grad(), lstm.rnn.intervene(lstmkit.clamp("c", 2.5, units=[1, 4], steps=slice(3, 11))):
        out = lstm(x[2:3])
    assert page.inner_text("#iv-after-summary") == subject.readout(out[0], 2)["summary"]
    page.check("#iv-diff")  # after − before, in float32 as the page holds both
    assert float(hover(page, "after", "h", 4, 12)["value"]) == (after.h[0, 12, 4] - before.h[0, 12, 4]).item()
    page.uncheck("#iv-diff")
    page.click("#tabs button[data-tab=explore]")


def test_two_models_are_shown_side_by_side_on_the_same_sequence(setup):
    page, gru, x = setup["page"], setup["gru"], setup["x"]
    show_sequence(page, 4)
    page.click("#tab-compare")
    assert page.eval_on_selector_all("#compare-b .heatmap", "els => els.map(e => e.dataset.record)") == list("rznh")
    assert float(hover(page, "compareB", "z", 3, 11)["value"]) == traced(gru, x, 4).z[0, 11, 3].item()
    page.click("#tabs button[data-tab=explore]")


def test_the_exported_page_matches_in_the_browser_as_python_does(setup):
    page, subjects = setup["page"], setup["subjects"]
    path = export(subjects[:1], setup["tmp"] / "page.html", sequences=10)
    page.goto(path.as_uri())
    page.wait_for_function("window.explorer && window.explorer.state.ready")
    assert page.is_hidden("#tab-intervene")
    trace, _ = subjects[0].run(subjects[0].x[:10])  # what the file embeds
    o = subjects[0].record(trace, 0, 0, "o")
    threshold = round(float(o[0, 2:5].min(0).values.median()), 3)
    page.evaluate("window.explorer.setSelection({record: 'o', start: 2, stop: 4})")
    page.fill("#threshold", str(threshold))
    page.click("#match-run")
    page.wait_for_selector("#match-hits .hit")
    assert page.evaluate("window.explorer.state.lastMatch.result") == match(o, 0, 2, 4, threshold, top=20)
