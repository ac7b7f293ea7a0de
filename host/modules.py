"""The user's API: ``GRU``, ``GRUCell``, ``GLU``, ``pack`` and ``unpack``, shaped like PyTorch.

Arrays go in as NumPy arrays or torch tensors and come back the same kind (a torch tensor
comes back on its device with its dtype; a NumPy float array keeps its dtype). Everything is
checked before any work starts; errors name the argument and what was expected.
"""

import numpy as np

from ..golden import transposer
from ..golden.formats import DEFAULT_FORMATS, NumberFormats
from ..golden.gru import GRUDirectionWeights, GRUWeights, check_lengths
from .backends import resolve_device


__all__ = ["GRU", "GRUCell", "GLU", "pack", "unpack"]


class _Converted:
    """Remembers what kind of array came in, so the result goes out as the same kind."""

    def __init__(self, value, name):
        self.torch_like = None
        if type(value).__module__.startswith("torch"):
            self.torch_like = value
            value = value.detach().cpu().numpy()
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold real numbers, not {array.dtype}")
        self.float_dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)
        self.array = array.astype(np.float64)
        if not np.all(np.isfinite(self.array)):
            bad = int(np.count_nonzero(~np.isfinite(self.array)))
            raise ValueError(f"{name} contains {bad} NaN or infinite value(s); every value "
                             f"must be finite")

    def back(self, array):
        if self.torch_like is not None:
            import torch
            return torch.as_tensor(array, dtype=self.torch_like.dtype,
                                   device=self.torch_like.device)
        return np.asarray(array, dtype=self.float_dtype)


def _to_numpy(value):
    if value is None:
        return None
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _resolve_formats(formats, fmt):
    if formats is not None and not isinstance(formats, NumberFormats):
        raise TypeError(f"formats must be a gatework.golden.NumberFormats, not "
                        f"{type(formats).__name__}")
    formats = formats or DEFAULT_FORMATS
    if fmt is not None:
        formats = formats.replace(data=fmt)
    return formats


def _check_size(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return int(value)


def _random_weights(input_size, hidden_size, num_layers, bias, direction,
                    linear_before_reset, seed):
    # PyTorch's initialisation: every parameter uniform in [-1/sqrt(H), 1/sqrt(H)].
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(hidden_size)
    directions = 2 if direction == "bidirectional" else 1
    layers = []
    for k in range(num_layers):
        layer_input = input_size if k == 0 else hidden_size * directions
        layer = []
        for _ in range(directions):
            def uniform(*shape):
                return rng.uniform(-bound, bound, shape)
            layer.append(GRUDirectionWeights(
                uniform(3 * hidden_size, layer_input), uniform(3 * hidden_size, hidden_size),
                uniform(3 * hidden_size) if bias else None,
                uniform(3 * hidden_size) if bias else None))
        layers.append(tuple(layer))
    return GRUWeights(tuple(layers), linear_before_reset, direction)


class GRU:
    """A multi-layer GRU with PyTorch's interface, run on a chosen backend.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int
    bias : bool
    batch_first : bool
        Inputs and outputs are ``(N, T, ...)`` instead of ``(T, N, ...)``; ``h0`` and ``h_n``
        stay ``(layers * directions, N, H)``, as in PyTorch.
    bidirectional : bool
    linear_before_reset : bool
        ``True``: PyTorch's form, the reset gate scales ``W_hn h + b_hn``. ``False``: the
        original form (ONNX's default), the reset gate scales ``h`` before ``W_hn``.
    reverse : bool
        For a one-direction GRU, run it from the last step to the first (ONNX
        ``direction="reverse"``).
    device : str
        ``"auto"``, ``"golden"``, ``"numpy"``, ``"torch"``, ``"torch:cpu"`` or ``"torch:cuda"``.
    formats : NumberFormats, optional
        Fixed-point formats for fixed-point backends; the defaults when omitted.
    fmt : str, optional
        Shorthand for the data format (``x``, ``h``, outputs), such as ``"q4.12"``.
    seed : int, optional
        Seed of the PyTorch-style random initialisation of the weights.
    weights : GRUWeights, optional
        Weights to use instead of a random initialisation.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 bidirectional=False, *, linear_before_reset=True, reverse=False,
                 device="auto", formats=None, fmt=None, seed=None, weights=None):
        input_size = _check_size(input_size, "input_size")
        hidden_size = _check_size(hidden_size, "hidden_size")
        num_layers = _check_size(num_layers, "num_layers")
        if bidirectional and reverse:
            raise ValueError("reverse=True is for a one-direction GRU; a bidirectional GRU "
                             "already runs both ways")
        direction = "bidirectional" if bidirectional else "reverse" if reverse else "forward"
        if weights is None:
            weights = _random_weights(input_size, hidden_size, num_layers, bool(bias),
                                      direction, bool(linear_before_reset), seed)
        self.batch_first = bool(batch_first)
        self.formats = _resolve_formats(formats, fmt)
        self.load_weights(weights)
        expected = (input_size, hidden_size, num_layers, bool(bias), direction,
                    bool(linear_before_reset))
        actual = (self.input_size, self.hidden_size, self.num_layers, self.bias,
                  self.weights.direction, self.linear_before_reset)
        if expected != actual:
            raise ValueError(f"the weights describe (input_size, hidden_size, num_layers, "
                             f"bias, direction, linear_before_reset) = {actual}, but the "
                             f"arguments say {expected}")
        self.backend = resolve_device(device)

    def load_weights(self, weights):
        """Replace the weights (a :class:`GRUWeights` with float arrays)."""
        if not isinstance(weights, GRUWeights):
            raise TypeError(f"weights must be a gatework.golden.GRUWeights, not "
                            f"{type(weights).__name__}")
        self.weights = weights.astype(np.float64)

    @property
    def device(self):
        """Name of the backend the module runs on, such as ``"golden"`` or ``"torch:cpu"``."""
        return self.backend.name

    input_size = property(lambda self: self.weights.input_size)
    hidden_size = property(lambda self: self.weights.hidden_size)
    num_layers = property(lambda self: self.weights.num_layers)
    bias = property(lambda self: self.weights.bias)
    bidirectional = property(lambda self: self.weights.direction == "bidirectional")
    linear_before_reset = property(lambda self: self.weights.linear_before_reset)

    @classmethod
    def from_torch(cls, module, *, linear_before_reset=True, **kwargs):
        """Take the weights and settings of a ``torch.nn.GRU``.

        ``linear_before_reset`` may be given only to confirm PyTorch's form (True); asking for
        the other form is an error, as the weights were trained for this one.
        """
        from ..golden.importers import gru_weights_from_torch
        import torch
        if not isinstance(module, torch.nn.GRU):
            raise TypeError(f"GRU.from_torch takes a torch.nn.GRU, not {type(module).__name__}"
                            + ("; use GRUCell.from_torch" if isinstance(module, torch.nn.GRUCell)
                               else ""))
        if not linear_before_reset:
            raise ValueError("torch.nn.GRU computes linear_before_reset=True (the reset gate "
                             "scales W_hn h + b_hn); its weights do not fit the other form. "
                             "Leave linear_before_reset at True.")
        weights = gru_weights_from_torch(module)
        return cls(weights.input_size, weights.hidden_size, weights.num_layers, weights.bias,
                   kwargs.pop("batch_first", module.batch_first),
                   weights.direction == "bidirectional", weights=weights, **kwargs)

    @classmethod
    def from_onnx(cls, model, *, node=None, inputs=None, linear_before_reset=None, **kwargs):
        """Take the GRU of an ONNX model (a ``ModelProto``, a path or bytes).

        The whole graph is imported as one model: a stack of GRU nodes becomes ``num_layers``,
        a bidirectional node ``bidirectional=True``, a Transpose before the first node (as
        torch's exporters write a ``batch_first`` GRU) or ``layout=1`` ``batch_first=True``,
        ``direction="reverse"`` ``reverse=True``. An operator the importer does not
        understand is refused with an error naming it (see
        :func:`gatework.golden.importers.gru_from_onnx`); ``node=`` imports one GRU node
        alone instead. Outputs and states keep this API's PyTorch conventions: output
        ``(T, N, dirs*H)``, states ``(layers * dirs, N, H)``. A constant initial state becomes
        the default ``h0``, a constant ``sequence_lens`` the default ``lengths``.

        Parameters
        ----------
        model : onnx.ModelProto, str, os.PathLike or bytes
        node : str, optional
            The name of the one GRU node to import.
        inputs : dict, optional
            Values of graph inputs that hold the weights (``{"W": ..., "R": ..., "B": ...}``),
            for graphs written as ONNX's operator tests are.
        linear_before_reset : bool, optional
            Only to confirm the graph's form; the other form is refused.
        """
        from ..golden.importers import gru_from_onnx
        imported = gru_from_onnx(model, node=node, inputs=inputs)
        weights = imported.weights
        if (linear_before_reset is not None
                and bool(linear_before_reset) != weights.linear_before_reset):
            raise ValueError(f"the ONNX node {imported.node_name!r} has linear_before_reset="
                             f"{int(weights.linear_before_reset)}, but linear_before_reset="
                             f"{linear_before_reset!r} was asked for; its weights only fit its "
                             f"own form")
        gru = cls(weights.input_size, weights.hidden_size, weights.num_layers, weights.bias,
                  kwargs.pop("batch_first", imported.batch_first),
                  weights.direction == "bidirectional",
                  linear_before_reset=weights.linear_before_reset,
                  reverse=weights.direction == "reverse", weights=weights, **kwargs)
        gru.default_h0 = imported.initial_h
        gru.default_lengths = imported.sequence_lens
        return gru

    # Inputs that an imported model fixes; a call's own arguments take precedence.
    default_h0 = None
    default_lengths = None

    def __call__(self, x, h0=None, lengths=None):
        """Run the GRU.

        Parameters
        ----------
        x : array or tensor
            ``(T, N, D)`` (``(N, T, D)`` when ``batch_first``), or ``(T, D)`` unbatched.
        h0 : array or tensor, optional
            ``(layers * directions, N, H)``, or ``(layers * directions, H)`` unbatched.
        lengths : array_like of int, optional
            ``(N,)``: valid steps of each sequence, each in ``1..T``, in any order. A
            sequence's state stops at its last valid step and its outputs past it are zero.

        Returns
        -------
        output : ``(T, N, directions * H)`` (batch-first if asked), the same kind as ``x``
        h_n : ``(layers * directions, N, H)``
        """
        converted = _Converted(x, "x")
        x = converted.array
        states = self.num_layers * self.weights.num_directions
        unbatched = x.ndim == 2
        if x.ndim not in (2, 3):
            raise ValueError(f"x must be 3-D ({'N, T' if self.batch_first else 'T, N'}, "
                             f"input_size) or 2-D (T, input_size) unbatched; it has shape "
                             f"{x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has {x.shape[-1]} features in its last dimension; this GRU "
                             f"takes input_size={self.input_size}")
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        steps, batch, _ = x.shape
        if steps == 0 or batch == 0:
            raise ValueError(f"x must hold at least one step of one sequence; it has shape "
                             f"{converted.array.shape}")
        if h0 is None and self.default_h0 is not None:
            h0 = self.default_h0
        if lengths is None and self.default_lengths is not None and not unbatched:
            lengths = self.default_lengths
        if h0 is not None:
            h0 = _Converted(h0, "h0").array
            expected = (states, self.hidden_size) if unbatched else (states, batch,
                                                                     self.hidden_size)
            if h0.shape != expected:
                raise ValueError(f"h0 must have shape {expected} (layers * directions, "
                                 f"{'' if unbatched else 'N, '}hidden_size), not {h0.shape}")
            if unbatched:
                h0 = h0[:, None, :]
        if lengths is not None:
            if unbatched:
                raise ValueError("lengths needs a batch: x is unbatched (T, input_size)")
            lengths = check_lengths(_to_numpy(lengths), steps, batch)
        output, h_n = self.backend.gru(self.weights, self.formats, x, h0, lengths)
        if unbatched:
            output, h_n = output[:, 0], h_n[:, 0]
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return converted.back(output), converted.back(h_n)

    def __repr__(self):
        extras = "".join([", bias=False" if not self.bias else "",
                          ", batch_first=True" if self.batch_first else "",
                          ", bidirectional=True" if self.bidirectional else "",
                          ", reverse=True" if self.weights.direction == "reverse" else "",
                          "" if self.linear_before_reset else ", linear_before_reset=False"])
        layers = f", num_layers={self.num_layers}" if self.num_layers > 1 else ""
        return (f"GRU({self.input_size}, {self.hidden_size}{layers}{extras}, "
                f"device={self.device!r})")


class GRUCell:
    """One GRU step with PyTorch's ``GRUCell`` interface: ``h' = cell(x, h)``.

    Parameters are those of :class:`GRU` that apply to one step.
    """

    def __init__(self, input_size, hidden_size, bias=True, *, linear_before_reset=True,
                 device="auto", formats=None, fmt=None, seed=None, weights=None):
        self._gru = GRU(input_size, hidden_size, 1, bias,
                        linear_before_reset=linear_before_reset, device=device,
                        formats=formats, fmt=fmt, seed=seed, weights=weights)

    @classmethod
    def from_torch(cls, module, *, linear_before_reset=True, **kwargs):
        """Take the weights of a ``torch.nn.GRUCell``."""
        from ..golden.importers import gru_weights_from_torch
        import torch
        if not isinstance(module, torch.nn.GRUCell):
            raise TypeError(f"GRUCell.from_torch takes a torch.nn.GRUCell, not "
                            f"{type(module).__name__}")
        if not linear_before_reset:
            raise ValueError("torch.nn.GRUCell computes linear_before_reset=True; its weights "
                             "do not fit the other form. Leave linear_before_reset at True.")
        weights = gru_weights_from_torch(module)
        return cls(weights.input_size, weights.hidden_size, weights.bias, weights=weights,
                   **kwargs)

    weights = property(lambda self: self._gru.weights)
    device = property(lambda self: self._gru.device)
    formats = property(lambda self: self._gru.formats)
    input_size = property(lambda self: self._gru.input_size)
    hidden_size = property(lambda self: self._gru.hidden_size)
    bias = property(lambda self: self._gru.bias)
    linear_before_reset = property(lambda self: self._gru.linear_before_reset)

    def __call__(self, x, h=None):
        """``x`` ``(N, D)`` or ``(D,)``, ``h`` ``(N, H)`` or ``(H,)`` -> ``h'`` like ``h``."""
        converted = _Converted(x, "x")
        x = converted.array
        if x.ndim not in (1, 2):
            raise ValueError(f"x must be 2-D (N, input_size) or 1-D (input_size,) unbatched; "
                             f"it has shape {x.shape}")
        batched = x.ndim == 2
        if h is not None:
            h = _Converted(h, "h").array
            expected = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
            if h.shape != expected:
                raise ValueError(f"h must have shape {expected}, not {h.shape}")
            h = h[None]
        _, h_n = self._gru(x[None], h)
        return converted.back(h_n[0])

    def __repr__(self):
        return f"GRUCell({self.input_size}, {self.hidden_size}, device={self.device!r})"


class GLU:
    """``a * sigmoid(b)`` with ``a`` the first half of ``x`` along ``dim`` (PyTorch ``F.glu``)."""

    def __init__(self, dim=-1, *, device="auto", formats=None, fmt=None):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an integer, not {dim!r}")
        self.dim = int(dim)
        self.formats = _resolve_formats(formats, fmt)
        self.backend = resolve_device(device)

    @property
    def device(self):
        return self.backend.name

    def __call__(self, x):
        converted = _Converted(x, "x")
        x = converted.array
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"dim={self.dim} is out of range for x of shape {x.shape}")
        if x.shape[self.dim] % 2:
            raise ValueError(f"GLU halves dimension {self.dim} of x, so its size must be even; "
                             f"x has shape {x.shape}")
        return converted.back(self.backend.glu(self.formats, x, self.dim))

    def __repr__(self):
        return f"GLU(dim={self.dim}, device={self.device!r})"


def _same_kind(result, like):
    if type(like).__module__.startswith("torch"):
        import torch
        return torch.as_tensor(result, device=like.device)
    return result


def pack(values, lengths):
    """Ragged batch-major ``(sum(lengths), ...)`` -> time-major zero-padded ``(T, N, ...)``.

    Like caffe2's PackRNNSequence, or PyTorch's ``pad_sequence`` of the split sequences.
    Values move unchanged, whatever their dtype.
    """
    return _same_kind(transposer.pack(_to_numpy(values), _to_numpy(lengths)), values)


def unpack(padded, lengths):
    """Time-major ``(T, N, ...)`` -> ragged batch-major ``(sum(lengths), ...)``: inverse of pack."""
    return _same_kind(transposer.unpack(_to_numpy(padded), _to_numpy(lengths)), padded)
