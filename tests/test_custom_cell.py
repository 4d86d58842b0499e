"""A new cell is one file: the README's minimal gated unit gets layers, directions, packing, batch_first and the
trace from the reference engine."""

import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit


class MGU(lstmkit.Cell):
    """Minimal gated unit (Zhou et al. 2016): one forget gate f and a candidate n."""

    gates = 2
    records = ("f", "n", "h")

    def step(self, xw, state, w):
        (h,) = state
        x_f, x_n = xw.chunk(2, dim=-1)
        h_f, h_n = w.hh(h).chunk(2, dim=-1)
        f = torch.sigmoid(x_f + h_f)
        n = torch.tanh(x_n + f * h_n)
        h = (1 - f) * h + f * n
        return (h,), (f, n, h)


def manual(x, h, p):
    ys = []
    for t in range(x.shape[0]):
        x_f, x_n = (x[t] @ p["weight_ih"].T + p["bias_ih"]).chunk(2, -1)
        h_f, h_n = (h @ p["weight_hh"].T + p["bias_hh"]).chunk(2, -1)
        f = torch.sigmoid(x_f + h_f)
        h = (1 - f) * h + f * torch.tanh(x_n + f * h_n)
        ys.append(h)
    return torch.stack(ys)


def test_custom_cell_runs_with_layers_directions_and_batch_first():
    layer = lstmkit.Recurrent(MGU, input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=True)
    assert layer.weight_ih_l0.shape == (8, 3) and layer.weight_hh_l1_reverse.shape == (8, 4)
    x = torch.randn(2, 5, 3)
    out, h_n = layer(x)
    assert out.shape == (2, 5, 8) and h_n.shape == (4, 2, 4)
    p = {n[:-3]: v for n, v in layer.named_parameters() if n.endswith("_l0")}
    torch.testing.assert_close(layer.trace(x)[0, 0].h,
                               manual(x.transpose(0, 1), torch.zeros(2, 4), p).transpose(0, 1))


def test_custom_cell_traces_and_packs():
    layer = lstmkit.Recurrent(MGU, input_size=3, hidden_size=4)
    x = torch.randn(6, 3, 3)
    packed = pack_padded_sequence(x, torch.tensor([6, 2, 4]), enforce_sorted=False)
    out, h_n = layer(packed)
    tr = layer.trace(packed)
    assert tr[0, 0]._fields == ("f", "n", "h")
    assert tr.lengths.tolist() == [6, 2, 4]
    for b, n in enumerate([6, 2, 4]):
        single, h_single = layer(x[:n, b:b + 1])
        torch.testing.assert_close(h_n[:, b], h_single[:, 0])
        torch.testing.assert_close(tr[0].h[:n, b], single[:, 0])
