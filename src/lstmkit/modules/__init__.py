"""The modules users build: drop-ins for torch.nn's recurrent layers and cells, and the generic ``Recurrent``."""

from .cell import RecurrentCell
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell
from .recurrent import Recurrent
from .rnn import RNN, RNNCell

__all__ = ["Recurrent", "RecurrentCell", "LSTM", "LSTMCell", "GRU", "GRUCell", "RNN", "RNNCell"]
