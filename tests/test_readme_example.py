"""The seed's example runs unchanged with lstmkit.LSTM in place of nn.LSTM."""

import torch

from lstmkit import LSTM


def test_seed_example_runs_unchanged():
    lstm = LSTM(10, 20, batch_first=True)
    input_seq = torch.randn(1, 5, 10)
    h0 = torch.zeros(1, 1, 20)
    c0 = torch.zeros(1, 1, 20)
    output, (hn, cn) = lstm(input_seq, (h0, c0))
    assert output.shape == (1, 5, 20)
    assert hn.shape == (1, 1, 20) and cn.shape == (1, 1, 20)
    torch.testing.assert_close(output[:, -1], hn[0])
