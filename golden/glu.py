"""GLU: ``a * sigmoid(b)``, ``a`` the first half of ``x`` along ``dim`` (PyTorch ``F.glu``).

Fixed point, exactly::

    s   = sigmoid(R(b -> preactivation))          (the activation table of the formats)
    out = R(a * s -> data)

with ``R`` the one narrowing rule of :func:`.fixed.rescale` (round half up, saturate).
"""

import numpy as np

from .fixed import rescale
from .formats import DEFAULT_FORMATS


__all__ = ["glu_float", "glu_fixed"]


def _halves(x, dim):
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("glu needs an array of at least one dimension, not a scalar")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim {dim} is out of range for an array of {x.ndim} dimensions")
    size = x.shape[dim]
    if size % 2:
        raise ValueError(f"glu halves dimension {dim}, so its size must be even; it is {size}")
    return np.split(x, 2, axis=dim)


def glu_float(x, dim=-1):
    """Float64 GLU."""
    a, b = _halves(np.asarray(x, dtype=np.float64), dim)
    return a * (0.5 * (1.0 + np.tanh(0.5 * b)))


def glu_fixed(x, dim=-1, formats=DEFAULT_FORMATS, counter=None):
    """Bit-exact fixed-point GLU on data-format codes."""
    a, b = _halves(np.asarray(x, dtype=np.int64), dim)
    data, preact, act = formats.data, formats.preactivation, formats.activation
    s = formats.table.sigmoid(rescale(b, data.fraction_bits, preact, counter,
                                      "GLU gate inputs"))
    return rescale(a * s, data.fraction_bits + act.fraction_bits, data, counter, "GLU outputs")
