"""Cells: the equations of one step. Each file is one cell; see ``base.Cell`` for the contract."""

from .base import Cell, Weights
from .gru import GRUCellMath
from .lstm import LSTMCellMath, LSTMVariant
from .rnn import RNNCellMath

__all__ = ["Cell", "Weights", "LSTMCellMath", "LSTMVariant", "GRUCellMath", "RNNCellMath"]
