"""GRU: weights, the float reference and the bit-exact fixed-point model.

Shapes follow PyTorch and are time-major here: inputs ``(T, N, D)``, outputs
``(T, N, directions * H)``, states ``(layers * directions, N, H)``. Gate rows are ordered
``r | z | n`` as in PyTorch (converters in :mod:`.importers` own the other orders).

Both published GRU forms:

* ``linear_before_reset=True`` (PyTorch, cuDNN, Keras ``reset_after=True``):
  ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``
* ``linear_before_reset=False`` (original, ONNX default, Keras ``reset_after=False``):
  ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``

and in both ``r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)``, ``z`` likewise, and
``h' = (1 - z) * n + z * h``.

Variable lengths follow PyTorch packed sequences and ONNX ``sequence_lens``: a sequence's
state stops at its last valid step (``h_n`` is that state), its outputs past its length are
zero, and the reverse direction starts at the sequence's own last valid step.

Fixed-point cell, exactly (``R(v, f -> fmt)`` is :func:`.fixed.rescale`; ``Fc`` the
accumulator's fraction bits ``data.F + weight.F``; products are exact; sums are aligned
by left shifts to a common fraction count first)::

    gi = W_i x + b_i                  gh = W_h h + b_h               (accumulators, Fc)
    r  = sigmoid(R(gi_r + gh_r -> preactivation))
    z  = sigmoid(R(gi_z + gh_z -> preactivation))
    linear_before_reset=True:
        hn = R(gh_n -> preactivation)
        n  = tanh(R(gi_n + r * hn -> preactivation))       (one rounding of the exact sum)
    linear_before_reset=False:
        rh = R(r * h -> data)
        n  = tanh(R(gi_n + W_hn rh + b_hn -> preactivation))
    h' = R(n + z * (h - n) -> data)                           (one rounding of the exact value)
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .fixed import align, exact_matmul, rescale
from .formats import DEFAULT_FORMATS, NumberFormats


__all__ = [
    "DIRECTIONS", "GRUDirectionWeights", "GRUWeights", "QuantizedGRUWeights",
    "gru_cell_float", "gru_cell_fixed", "gru_float", "gru_fixed", "quantize_gru",
    "check_lengths", "swap_reset_update",
]


DIRECTIONS = ("forward", "reverse", "bidirectional")


def swap_reset_update(array, axis=0):
    """Convert gate blocks ``z | r | h`` to ``r | z | n`` along ``axis``, or back.

    The two orders differ by swapping the first two blocks, so the conversion is its own
    inverse and serves both directions.
    """
    first, second, third = np.split(np.asarray(array), 3, axis=axis)
    return np.concatenate([second, first, third], axis=axis)


@dataclass(frozen=True)
class GRUDirectionWeights:
    """Weights of one layer in one direction (float or integer codes).

    Parameters
    ----------
    weight_ih : numpy.ndarray
        ``(3H, D)``, rows ``r | z | n``.
    weight_hh : numpy.ndarray
        ``(3H, H)``, rows ``r | z | n``.
    bias_ih, bias_hh : numpy.ndarray or None
        ``(3H,)`` each, or both ``None`` for a GRU without bias.
    """

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: Optional[np.ndarray] = None
    bias_hh: Optional[np.ndarray] = None

    def __post_init__(self):
        three_h, _ = np.shape(self.weight_ih)
        if three_h % 3:
            raise ValueError(f"weight_ih has {three_h} rows; a GRU needs 3 * hidden_size")
        hidden = three_h // 3
        if np.shape(self.weight_hh) != (three_h, hidden):
            raise ValueError(f"weight_hh must be ({three_h}, {hidden}) to match weight_ih "
                             f"{np.shape(self.weight_ih)}, not {np.shape(self.weight_hh)}")
        if (self.bias_ih is None) != (self.bias_hh is None):
            raise ValueError("bias_ih and bias_hh must both be given or both be None")
        for name in ("bias_ih", "bias_hh"):
            bias = getattr(self, name)
            if bias is not None and np.shape(bias) != (three_h,):
                raise ValueError(f"{name} must have shape ({three_h},), not {np.shape(bias)}")

    @property
    def input_size(self):
        return np.shape(self.weight_ih)[1]

    @property
    def hidden_size(self):
        return np.shape(self.weight_hh)[1]

    @property
    def bias(self):
        return self.bias_ih is not None


@dataclass(frozen=True)
class GRUWeights:
    """Float weights of a whole GRU: ``layers[k][d]`` is layer ``k``, direction ``d``.

    Parameters
    ----------
    layers : tuple of tuple of GRUDirectionWeights
    linear_before_reset : bool
        Which GRU form these weights were trained for.
    direction : str
        ``"forward"``, ``"reverse"`` (one direction, run from the last step, as ONNX allows)
        or ``"bidirectional"`` (two directions per layer: forward, then reverse).
    """

    layers: tuple
    linear_before_reset: bool = True
    direction: str = "forward"

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(tuple(layer) for layer in self.layers))
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {self.direction!r}")
        if not self.layers:
            raise ValueError("a GRU needs at least one layer")
        hidden, bias = self.layers[0][0].hidden_size, self.layers[0][0].bias
        for k, layer in enumerate(self.layers):
            if len(layer) != self.num_directions:
                raise ValueError(f"layer {k} has {len(layer)} directions; a "
                                 f"{self.direction} GRU has {self.num_directions}")
            expected_input = self.input_size if k == 0 else hidden * self.num_directions
            for cell in layer:
                if cell.hidden_size != hidden:
                    raise ValueError(f"layer {k} has hidden size {cell.hidden_size}, "
                                     f"layer 0 has {hidden}: all layers must agree")
                if cell.input_size != expected_input:
                    raise ValueError(f"layer {k} takes {cell.input_size} inputs; it must take "
                                     f"{expected_input}")
                if cell.bias != bias:
                    raise ValueError("either every layer has biases or none has")

    @property
    def input_size(self):
        return self.layers[0][0].input_size

    @property
    def hidden_size(self):
        return self.layers[0][0].hidden_size

    @property
    def num_layers(self):
        return len(self.layers)

    @property
    def num_directions(self):
        return 2 if self.direction == "bidirectional" else 1

    @property
    def bias(self):
        return self.layers[0][0].bias

    def direction_reversed(self, d):
        """Whether direction index ``d`` of a layer runs from the last step to the first."""
        return self.direction == "reverse" or (self.direction == "bidirectional" and d == 1)

    def astype(self, dtype):
        """Return a copy with every array converted to ``dtype``."""
        def cast(array):
            return None if array is None else np.asarray(array, dtype=dtype)
        return GRUWeights(tuple(tuple(GRUDirectionWeights(cast(c.weight_ih), cast(c.weight_hh),
                                                          cast(c.bias_ih), cast(c.bias_hh))
                                      for c in layer) for layer in self.layers),
                          self.linear_before_reset, self.direction)


@dataclass(frozen=True)
class QuantizedGRUWeights:
    """Integer codes of a GRU's weights in ``formats``, with the float structure's shape."""

    weights: GRUWeights
    formats: NumberFormats


def quantize_gru(weights, formats=DEFAULT_FORMATS, counter=None):
    """Convert float GRU weights to integer codes (round half up, saturate).

    Weights go to ``formats.weight`` and biases to ``formats.bias``; values outside a format
    saturate and are counted in ``counter``.
    """
    layers = []
    for layer in weights.layers:
        cells = []
        for cell in layer:
            def weight(array, name):
                return formats.weight.quantize(array, counter, name)

            def bias(array, name):
                return None if array is None else formats.bias.quantize(array, counter, name)
            cells.append(GRUDirectionWeights(weight(cell.weight_ih, "weights"),
                                             weight(cell.weight_hh, "weights"),
                                             bias(cell.bias_ih, "biases"),
                                             bias(cell.bias_hh, "biases")))
        layers.append(tuple(cells))
    return QuantizedGRUWeights(GRUWeights(tuple(layers), weights.linear_before_reset,
                                          weights.direction), formats)


def _sigmoid(x):
    # Written through tanh so that it never overflows; exact identity.
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _split(v):
    return np.split(v, 3, axis=-1)


def gru_cell_float(cell, x, h, linear_before_reset, gi=None):
    """One float GRU step for a batch: ``x`` ``(N, D)``, ``h`` ``(N, H)`` -> ``h'`` ``(N, H)``.

    ``gi``, the input projection ``W_i x + b_i``, may be passed in precomputed.
    """
    if gi is None:
        gi = x @ cell.weight_ih.T
        if cell.bias:
            gi = gi + cell.bias_ih
    gi_r, gi_z, gi_n = _split(gi)
    hidden = cell.hidden_size
    w_hr_hz = cell.weight_hh[:2 * hidden]
    gh_rz = h @ w_hr_hz.T
    if cell.bias:
        gh_rz = gh_rz + cell.bias_hh[:2 * hidden]
    r = _sigmoid(gi_r + gh_rz[:, :hidden])
    z = _sigmoid(gi_z + gh_rz[:, hidden:])
    w_hn = cell.weight_hh[2 * hidden:]
    b_hn = cell.bias_hh[2 * hidden:] if cell.bias else 0.0
    if linear_before_reset:
        n = np.tanh(gi_n + r * (h @ w_hn.T + b_hn))
    else:
        n = np.tanh(gi_n + (r * h) @ w_hn.T + b_hn)
    return n + z * (h - n)


class _PreparedCell:
    """Weight codes of one cell laid out for the per-step products.

    The matrices are kept transposed as float64 copies of the integer codes: BLAS multiplies
    them exactly (see :func:`.fixed.exact_matmul`), and preparing them once per sequence
    instead of once per step is what keeps the bit-exact model near float speed.
    """

    def __init__(self, cell, formats):
        hidden = cell.hidden_size
        acc_f = formats.product_fraction_bits

        def bias(codes):
            return align(codes, formats.bias.fraction_bits, acc_f)
        self.hidden_size = hidden
        self.weight_ih_t = np.asarray(cell.weight_ih, dtype=np.float64).T
        self.weight_hrz_t = np.asarray(cell.weight_hh[:2 * hidden], dtype=np.float64).T
        self.weight_hn_t = np.asarray(cell.weight_hh[2 * hidden:], dtype=np.float64).T
        zeros = np.zeros(3 * hidden, dtype=np.int64)
        self.bias_ih = bias(cell.bias_ih) if cell.bias else zeros
        bias_hh = bias(cell.bias_hh) if cell.bias else zeros
        self.bias_hrz, self.bias_hn = bias_hh[:2 * hidden], bias_hh[2 * hidden:]

    def input_projection(self, x, formats):
        """``W_i x + b_i`` for a batch of input codes, as accumulator codes."""
        return exact_matmul(x, self.weight_ih_t, formats.data, formats.weight) + self.bias_ih


def gru_cell_fixed(cell, x, h, linear_before_reset, formats, counter=None, gi=None):
    """One bit-exact fixed-point GRU step: integer codes in, integer codes out.

    ``cell`` holds weight and bias codes; ``x`` and ``h`` are data-format codes. ``gi`` is
    the input projection accumulator ``W_i x + b_i`` (fraction bits ``formats.data.F +
    formats.weight.F``), which may be passed in precomputed. See the module docstring.
    """
    if not isinstance(cell, _PreparedCell):
        cell = _PreparedCell(cell, formats)
    data, weight, preact = formats.data, formats.weight, formats.preactivation
    act = formats.activation
    table = formats.table
    acc_f = formats.product_fraction_bits
    hidden = cell.hidden_size
    if gi is None:
        gi = cell.input_projection(np.asarray(x, dtype=np.int64), formats)
    h = np.asarray(h, dtype=np.int64)
    gh_rz = exact_matmul(h, cell.weight_hrz_t, data, weight) + cell.bias_hrz
    rz = table.sigmoid(rescale(gi[:, :2 * hidden] + gh_rz, acc_f, preact, counter,
                               "gate pre-activations"))
    r, z = rz[:, :hidden], rz[:, hidden:]
    gi_n = gi[:, 2 * hidden:]
    if linear_before_reset:
        hn = rescale(exact_matmul(h, cell.weight_hn_t, data, weight) + cell.bias_hn, acc_f,
                     preact, counter, "gate pre-activations")
        reset_f = act.fraction_bits + preact.fraction_bits
        common_f = max(acc_f, reset_f)
        n_acc = align(gi_n, acc_f, common_f) + align(r * hn, reset_f, common_f)
        n = table.tanh(rescale(n_acc, common_f, preact, counter, "gate pre-activations"))
    else:
        rh = rescale(r * h, act.fraction_bits + data.fraction_bits, data)
        n_acc = gi_n + exact_matmul(rh, cell.weight_hn_t, data, weight) + cell.bias_hn
        n = table.tanh(rescale(n_acc, acc_f, preact, counter, "gate pre-activations"))
    update_f = max(data.fraction_bits, act.fraction_bits)
    n_u = align(n, act.fraction_bits, update_f)
    h_u = align(h, data.fraction_bits, update_f)
    blended = align(n_u, 0, act.fraction_bits) + z * (h_u - n_u)
    return rescale(blended, update_f + act.fraction_bits, data, counter, "hidden states")


def _input_projection_float(cell, x):
    gi = x @ cell.weight_ih.T
    if cell.bias:
        gi = gi + cell.bias_ih
    return gi


def check_lengths(lengths, steps, batch):
    """Validate per-sequence lengths: ``None`` (all full) or ``(N,)`` integers in ``1..T``."""
    if lengths is None:
        return np.full(batch, steps, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), one per sequence of the batch, "
                         f"not {lengths.shape}")
    if lengths.dtype.kind not in "iu" and not (
            lengths.dtype.kind == "f" and np.all(lengths == np.round(lengths))):
        raise ValueError(f"lengths must be integers, not {lengths.dtype}")
    lengths = lengths.astype(np.int64)
    if np.any(lengths < 1) or np.any(lengths > steps):
        bad = lengths[(lengths < 1) | (lengths > steps)]
        raise ValueError(f"every length must be between 1 and the number of steps {steps}; "
                         f"got {bad.tolist()}")
    return lengths


def _run_layers(weights, x, h0, lengths, step, project, zero_state, prepare=lambda cell: cell):
    steps, batch, _ = x.shape
    lengths = check_lengths(lengths, steps, batch)
    directions = weights.num_directions
    hidden = weights.hidden_size
    h_n = []
    layer_input = x
    for k, layer in enumerate(weights.layers):
        outputs = []
        for d, cell in enumerate(layer):
            cell = prepare(cell)
            index = k * directions + d
            h = zero_state((batch, hidden)) if h0 is None else h0[index]
            gi_all = project(cell, layer_input.reshape(steps * batch, -1))
            gi_all = gi_all.reshape(steps, batch, -1)
            out = zero_state((steps, batch, hidden))
            order = range(steps - 1, -1, -1) if weights.direction_reversed(d) else range(steps)
            for t in order:
                active = (t < lengths)[:, None]
                h_new = step(cell, layer_input[t], h, gi_all[t])
                h = np.where(active, h_new, h)
                out[t] = np.where(active, h_new, 0)
            outputs.append(out)
            h_n.append(h)
        layer_input = np.concatenate(outputs, axis=-1) if directions > 1 else outputs[0]
    return layer_input, np.stack(h_n)


def _check_shapes(weights, x, h0):
    if x.ndim != 3 or x.shape[2] != weights.input_size:
        raise ValueError(f"x must have shape (T, N, {weights.input_size}), not {x.shape}")
    expected = (weights.num_layers * weights.num_directions, x.shape[1], weights.hidden_size)
    if h0 is not None and h0.shape != expected:
        raise ValueError(f"h0 must have shape {expected}, not {h0.shape}")


def gru_float(weights, x, h0=None, lengths=None):
    """Float64 reference GRU (any layers, directions, form, lengths).

    Parameters
    ----------
    weights : GRUWeights
    x : numpy.ndarray
        ``(T, N, D)``.
    h0 : numpy.ndarray, optional
        ``(layers * directions, N, H)``; zeros when omitted.
    lengths : array_like of int, optional
        ``(N,)``, each in ``1..T``; all ``T`` when omitted.

    Returns
    -------
    output : numpy.ndarray
        ``(T, N, directions * H)``, zero past each sequence's length.
    h_n : numpy.ndarray
        ``(layers * directions, N, H)``.
    """
    weights = weights.astype(np.float64)
    x = np.asarray(x, dtype=np.float64)
    h0 = None if h0 is None else np.asarray(h0, dtype=np.float64)
    _check_shapes(weights, x, h0)
    lbr = weights.linear_before_reset
    return _run_layers(
        weights, x, h0, lengths,
        step=lambda cell, xt, h, gi: gru_cell_float(cell, xt, h, lbr, gi=gi),
        project=_input_projection_float,
        zero_state=lambda shape: np.zeros(shape, dtype=np.float64))


def gru_fixed(qweights, x, h0=None, lengths=None, counter=None):
    """Bit-exact fixed-point GRU: data-format codes in, data-format codes out.

    Same shapes and semantics as :func:`gru_float`; ``qweights`` comes from
    :func:`quantize_gru`, ``x`` and ``h0`` are integer codes of ``qweights.formats.data``.
    Saturations inside the datapath are counted in ``counter``.
    """
    weights, formats = qweights.weights, qweights.formats
    x = np.asarray(x, dtype=np.int64)
    h0 = None if h0 is None else np.asarray(h0, dtype=np.int64)
    _check_shapes(weights, x, h0)
    lbr = weights.linear_before_reset
    return _run_layers(
        weights, x, h0, lengths,
        step=lambda cell, xt, h, gi: gru_cell_fixed(cell, xt, h, lbr, formats, counter, gi=gi),
        project=lambda cell, x2: cell.input_projection(x2, formats),
        zero_state=lambda shape: np.zeros(shape, dtype=np.int64),
        prepare=lambda cell: _PreparedCell(cell, formats))

