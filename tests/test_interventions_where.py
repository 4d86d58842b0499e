"""`where=`: an intervention on a different span of steps in each row (a (steps, rows) mask), against the per-step
loop of test_interventions.py; the outer-product selection without it stays as it was."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit import ablate, add, clamp, patch, scale
from test_interventions import manual_lstm, params

F64 = torch.float64


def spans(T, starts, stops):
    """(T, B) bool: row b is True on steps starts[b] <= t < stops[b]."""
    t = torch.arange(T).unsqueeze(1)
    return (t >= torch.tensor(starts)) & (t < torch.tensor(stops))


def per_row_edits(name, mask, units, fn):
    """The same edit for the manual loop, one entry per row (its own steps)."""
    return {name: [(set(mask[:, b].nonzero().flatten().tolist()), torch.tensor([b]), torch.as_tensor(units), fn)
                   for b in range(mask.shape[1])]}


@pytest.mark.parametrize("make, fn", [
    (lambda m: clamp("c", 0.3, units=[1, 2], where=m), lambda v: 0 * v + 0.3),
    (lambda m: scale("f", 0.5, units=[1, 2], where=m), lambda v: 0.5 * v),
    (lambda m: add("g", -0.2, units=[1, 2], where=m), lambda v: v - 0.2),
    (lambda m: ablate("h", units=[1, 2], where=m), lambda v: 0 * v),
])
def test_where_acts_on_each_rows_own_span(make, fn):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, dtype=F64, backend="reference")
    x = torch.randn(8, 3, 2, dtype=F64)
    mask = spans(8, [1, 4, 0], [5, 8, 0])                      # row 2: nowhere
    iv = make(mask)
    tr = lstm.trace(x, interventions=[iv])
    want = manual_lstm(x, params(lstm), per_row_edits(iv.name, mask, [1, 2], fn))
    for name, got, w in zip("ifgoch", tr[0, 0], want, strict=True):
        torch.testing.assert_close(got, w, msg=name)


def test_where_narrows_steps_rows_and_units():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, batch_first=True, backend="reference")
    x = torch.randn(3, 6, 2)                                   # (B, T, I)
    mask = spans(6, [0, 2, 3], [6, 5, 4]).T                    # (B, T) with batch_first
    tr = lstm.trace(x, interventions=[clamp("c", 7.0, units=[0], steps=slice(1, 6), rows=[0, 1], where=mask)])
    hit = tr[0, 0].c[..., 0] == 7.0                             # (B, T)
    want = mask.clone()
    want[:, 0] = False                                          # not in `steps`
    want[2] = False                                             # not in `rows`
    assert torch.equal(hit, want)
    assert not (tr[0, 0].c[..., 1:] == 7.0).any()


def test_patch_over_per_row_spans_restores_the_clean_run_after_them():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, backend="reference")
    clean_x = torch.randn(9, 2, 2)
    corrupt_x = clean_x.clone()
    corrupt_x[2, 0] += 2.0                                     # row 0 differs at step 2, row 1 at step 5
    corrupt_x[5, 1] += 2.0
    clean = lstm.trace(clean_x)
    mask = spans(9, [2, 5], [3, 6])
    tr = lstm.trace(corrupt_x, interventions=[patch("c", clean, where=mask), patch("h", clean, where=mask)])
    torch.testing.assert_close(tr.output[3:, 0], clean.output[3:, 0])
    torch.testing.assert_close(tr.output[6:, 1], clean.output[6:, 1])
    assert not torch.allclose(lstm.trace(corrupt_x).output[6:, 1], clean.output[6:, 1])


def test_where_on_packed_and_unbatched_input():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, backend="reference")
    x = torch.randn(6, 2, 2)
    lengths = torch.tensor([3, 6])
    mask = spans(6, [1, 4], [3, 6])
    tr = lstm.trace(pack_padded_sequence(x, lengths, enforce_sorted=False),
                    interventions=[clamp("f", 0.0, where=mask)])
    padding = torch.arange(6).unsqueeze(1) >= lengths            # (T, B): records are zero past each length
    assert torch.equal((tr[0, 0].f == 0).all(-1), mask | padding)  # packed: rows in the caller's order
    one = lstm.trace(x[:, 1], interventions=[clamp("f", 0.0, where=mask[:, 1])])
    assert torch.equal((one[0, 0].f == 0).all(-1), mask[:, 1])


def test_where_errors_name_the_layout():
    lstm = lstmkit.LSTM(2, 4, backend="reference")
    x = torch.randn(5, 2, 2)
    with pytest.raises(ValueError, match=r"`where` must be laid out like the record without its feature "
                                         r"dimension, \(T, B\) = \(5, 2\), got \(2, 5\)"):
        lstm(x, interventions=[clamp("f", 1.0, where=torch.ones(2, 5, dtype=torch.bool))])
    with pytest.raises(TypeError, match=r"`where` of ablate\(\) must be None or a bool tensor .* got a "
                                        r"torch.float32 tensor"):
        ablate("c", where=torch.ones(5, 2))
    with pytest.raises(TypeError, match=r"`where` of clamp\(\) .* got list"):
        clamp("c", 0.0, where=[[True]])
