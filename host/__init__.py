"""The host API of gatework: PyTorch-shaped modules that run on a chosen backend.

>>> from gatework.host import GRU
>>> gru = GRU(8, 16, device="golden", seed=0)
>>> output, h_n = gru(x)                        # x: (T, N, 8) NumPy array or torch tensor

``device`` picks the backend (see :mod:`.backends`): ``golden`` (bit-exact fixed point),
``numpy`` (float64), ``torch`` (float, CUDA when available) or ``auto``.
"""

from .backends import SaturationWarning
from .modules import GRU, GRUCell, GLU, pack, unpack


__all__ = ["GRU", "GRUCell", "GLU", "pack", "unpack", "SaturationWarning"]
