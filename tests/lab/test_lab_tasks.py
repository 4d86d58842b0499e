import math

import numpy as np
import pytest
import torch

from lstmkit.lab.tasks import TASKS, make_task
from lstmkit.lab.tasks.reber import _GRAPH, SYMBOLS, embedded_reber_string
from lstmkit.lab.tasks.sunspots import CYCLE, HORIZON, load_sunspots
from lstmkit.lab.tasks.temporal_order import SYMBOLS as TO_SYMBOLS

SMALL = {"temporal-order": 30, "adding": 20, "adding-1997": 30, "copy": 5, "recall": 7, "reber": 30,
         "digits": 64, "permuted-digits": 64, "sunspots": 48}


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_a_pure_function_of_its_generator(name):
    task = make_task(name, SMALL[name])
    a, b, c = (task.train_batch(8, gen(s)) for s in (1, 1, 2))
    assert a.x.shape == (8, task.seq_len, task.input_size)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not (torch.equal(a.x, c.x) and torch.equal(a.y, c.y))
    test = task.test_set()
    assert len(test) == task.test_size and torch.equal(test.x, task.test_set().x)


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_scores_a_model_output_and_states_its_criterion(name):
    task = make_task(name, SMALL[name])
    test = task.test_set()
    out = torch.zeros(len(test), task.seq_len, task.output_size)
    evals = task.evaluate(out, test)
    assert math.isfinite(evals["metric"]) and math.isfinite(evals["loss"])
    assert isinstance(task.solved(evals), bool) and not task.solved(evals)
    assert task.criterion and math.isfinite(task.baseline)


@pytest.mark.parametrize("name", list(TASKS))
def test_solved_is_the_declared_bar_on_the_declared_figure(name):
    task = make_task(name, SMALL[name])
    test = task.test_set()
    evals = task.evaluate(torch.zeros(len(test), task.seq_len, task.output_size), test)
    figure, op, bar = task.solved_when
    assert figure in evals and op in (">=", "<")
    above, below = {**evals, figure: bar * 1.01 + 1e-6}, {**evals, figure: bar * 0.99 - 1e-6}
    assert task.solved(above) == (op == ">=") and task.solved(below) == (op == "<")
    assert task.solved({**evals, figure: bar}) == (op == ">=")


def test_unknown_task_and_too_short_lengths_are_named():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_task("nope")
    with pytest.raises(ValueError, match="at least 10, got 5"):
        make_task("temporal-order", 5)
    with pytest.raises(ValueError, match="fixed by the 8x8 images at 64, got 10"):
        make_task("digits", 10)


def test_temporal_order_class_is_the_order_of_x_and_y():
    task = make_task("temporal-order", 100)
    batch = task.sample(256, gen(0))
    symbols = batch.x.argmax(-1)  # (B, T)
    for row, label in zip(symbols, batch.y, strict=True):
        text = "".join(TO_SYMBOLS[k] for k in row)
        assert text[0] == "B" and text[-1] == "E"
        where = [t for t, s in enumerate(text) if s in "XY"]
        assert len(where) == 2 and 10 <= where[0] <= 20 and 50 <= where[1] <= 60  # the paper's positions
        assert ["XX", "XY", "YX", "YY"][label] == text[where[0]] + text[where[1]]


def test_adding_target_is_the_sum_of_marked_values_and_baseline_is_one_sixth():
    task = make_task("adding", 100)
    batch = task.test_set()
    values, markers = batch.x[..., 0], batch.x[..., 1]
    assert torch.equal(markers.sum(1), torch.full((len(batch),), 2.0))
    assert torch.allclose((values * markers).sum(1), batch.y)
    constant = torch.ones(len(batch), task.seq_len, 1)  # the memoryless best guess E[U1 + U2] = 1
    assert task.evaluate(constant, batch)["metric"] == pytest.approx(1 / 6, rel=0.1)


def test_adding_1997_marks_and_baseline():
    task = make_task("adding-1997", 100)
    batch = task.sample(4096, gen(3))
    markers = batch.x[..., 1]
    assert torch.all((markers == 1).sum(1) == 2)
    first_marked = (markers[:, :10] == 1).any(1)
    assert first_marked.all()
    assert torch.all((markers[:, 50:] == 1).sum(1) == 0)  # the second mark is in the first T/2 - 1 pairs
    x1_x2 = (batch.x[..., 0] * (markers == 1)).sum(1)
    assert torch.allclose(batch.y, 0.5 + x1_x2 / 4, atol=1e-6)
    half = torch.full((len(batch), task.seq_len, 1), 0.5)
    assert task.evaluate(half, batch)["metric"] == pytest.approx(task.baseline, abs=0.02)


def test_copy_baseline_is_what_a_memoryless_predictor_scores():
    task = make_task("copy", 100)
    batch = task.test_set()
    assert task.baseline == pytest.approx(10 * math.log(8) / 120)
    logits = torch.full((len(batch), 120, 10), -1e9)
    logits[:, :110, 0] = 0  # certain blanks, then a uniform guess over the 8 data symbols
    logits[:, 110:, 1:9] = 0
    assert task.evaluate(logits, batch)["metric"] == pytest.approx(task.baseline, rel=1e-5)
    perfect = torch.nn.functional.one_hot(batch.y, 10).float() * 100
    assert task.solved(task.evaluate(perfect, batch))


def test_recall_answer_is_the_first_symbol_after_the_lag():
    task = make_task("recall", 12)
    batch = task.sample(64, gen(0))
    symbols = batch.x.argmax(-1)
    assert batch.x.shape[1] == 13
    assert torch.equal(symbols[:, 0], batch.y) and torch.all(symbols[:, -1] == 16)
    assert torch.all((symbols[:, 1:-1] >= 8) & (symbols[:, 1:-1] < 16))


def _walks(string):
    """True when the inner string follows the Reber graph."""
    node = 0
    for s in string[1:]:
        moves = dict(_GRAPH[node])
        if s not in moves:
            return False
        node = moves[s]
        if node == -1:
            return True
    return False


def test_reber_strings_follow_the_grammar_and_the_hard_step_repeats_the_second_symbol():
    g = gen(0)
    for _ in range(200):
        string, legal = embedded_reber_string(g, 40)
        assert string[0] == "B" and string[-1] == "E" and string[1] == string[-2] and string[1] in "TP"
        assert _walks(string[2:-2])
        assert len(legal) == len(string) - 1
        assert all(SYMBOLS.index(nxt) in ids for nxt, ids in zip(string[1:], legal, strict=True))
        assert legal[-2] == [SYMBOLS.index(string[1])]  # only the repeat is legal at the hard step
    task = make_task("reber", 30)
    batch = task.test_set()
    truth = torch.where(batch.y > 0.5, 10.0, -10.0)
    evals = task.evaluate(truth, batch)
    assert evals["metric"] == 1.0 and evals["hard_step_accuracy"] == 1.0
    both = truth.clone()
    rows = torch.arange(len(batch))
    hard = batch.mask.sum(1) - 2
    both[rows, hard, SYMBOLS.index("T")] = 10.0  # a memoryless guess at the hard step: T or P
    both[rows, hard, SYMBOLS.index("P")] = 10.0
    assert task.evaluate(both, batch)["metric"] == task.baseline == 0.0


def test_digits_split_and_permutation():
    plain, permuted = make_task("digits"), make_task("permuted-digits")
    a, b = plain.test_set(), permuted.test_set()
    assert a.x.shape == (497, 64, 1) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, b.x)
    assert torch.equal(a.x.sort(1).values, b.x.sort(1).values)  # same pixels, another order
    assert 0.05 < plain.baseline < 0.15
    assert plain.train_batch(1000, gen(0)).x.max() <= 1.0


def test_sunspots_windows_and_seasonal_naive_baseline():
    series, months = load_sunspots()
    assert len(series) == 3120 and months[0] == (1749, 1) and months[-1] == (2008, 12)
    task = make_task("sunspots", 132)
    test = task.test_set()
    assert test.x.shape == (len(test), 132, 1) and test.y.shape == (len(test), HORIZON)
    split = months.index((1950, 1))
    s = series.numpy()
    ends = range(split, len(s) - HORIZON + 1)
    assert len(test) == len(ends)
    seasonal = np.mean([np.abs(s[e - CYCLE : e - CYCLE + HORIZON] - s[e : e + HORIZON]).mean() for e in ends])
    assert task.baseline == pytest.approx(seasonal, rel=1e-5)
    perfect = torch.zeros(len(test), 132, HORIZON)
    perfect[:, -1] = test.y
    assert task.solved(task.evaluate(perfect, test))
