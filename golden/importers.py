"""GRU weights from PyTorch, Keras and ONNX, and back to Keras and ONNX for tests.

Every importer returns a :class:`.gru.GRUWeights` with float64 arrays whose gate rows are in
this project's (PyTorch's) order ``r | z | n``. Keras and ONNX order their gates ``z | r | h``
(``h`` is PyTorch's ``n``); :func:`swap_reset_update` converts between the two orders.

The golden model depends on NumPy only: PyTorch and ONNX are imported inside the functions
that need them.
"""

import numpy as np

from .gru import GRUDirectionWeights, GRUWeights, swap_reset_update
# ONNX has a module of its own; its names are kept here too, where every importer is found.
from .onnx_import import OnnxGRU, gru_from_onnx, onnx_gru_model


__all__ = [
    "gru_weights_from_torch", "gru_weights_from_keras", "gru_weights_to_keras",
    "OnnxGRU", "gru_from_onnx", "onnx_gru_model",
]


# --- PyTorch -------------------------------------------------------------------------------

def gru_weights_from_torch(module):
    """Weights of a ``torch.nn.GRU`` or ``torch.nn.GRUCell``.

    Parameters
    ----------
    module : torch.nn.GRU or torch.nn.GRUCell
        Any number of layers, one or two directions, with or without bias, on any device
        and in any float dtype. ``batch_first`` does not change the weights; the caller reads
        ``module.batch_first`` to lay out its inputs.

    Returns
    -------
    GRUWeights
        Float64 copies of the parameters, ``linear_before_reset=True`` (PyTorch's form).
        A ``GRUCell`` gives one forward layer.

    Raises
    ------
    TypeError
        If ``module`` is neither a ``torch.nn.GRU`` nor a ``torch.nn.GRUCell``.
    ValueError
        If ``module`` has a projection (``proj_size != 0``), which this GRU does not model.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError("gru_weights_from_torch needs PyTorch (the 'torch' extra)") from error

    def array(tensor):
        # Converting in torch first handles dtypes NumPy lacks (bfloat16); the copy keeps the
        # frozen weights independent of a module that may be trained further.
        return tensor.detach().to(device="cpu", dtype=torch.float64).numpy().copy()

    if isinstance(module, torch.nn.GRUCell):
        biases = ((array(module.bias_ih), array(module.bias_hh)) if module.bias
                  else (None, None))
        cell = GRUDirectionWeights(array(module.weight_ih), array(module.weight_hh), *biases)
        return GRUWeights(((cell,),), linear_before_reset=True, direction="forward")
    if not isinstance(module, torch.nn.GRU):
        raise TypeError(f"expected a torch.nn.GRU or torch.nn.GRUCell, not "
                        f"{type(module).__module__}.{type(module).__qualname__}")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"the GRU has proj_size={module.proj_size}: projections are not "
                         f"supported")
    suffixes = ("", "_reverse") if module.bidirectional else ("",)
    layers = []
    for k in range(module.num_layers):
        cells = []
        for suffix in suffixes:
            def parameter(kind):
                return array(getattr(module, f"{kind}_l{k}{suffix}"))
            biases = ((parameter("bias_ih"), parameter("bias_hh")) if module.bias
                      else (None, None))
            cells.append(GRUDirectionWeights(parameter("weight_ih"), parameter("weight_hh"),
                                             *biases))
        layers.append(tuple(cells))
    return GRUWeights(tuple(layers), linear_before_reset=True,
                      direction="bidirectional" if module.bidirectional else "forward")


# --- Keras ---------------------------------------------------------------------------------

def gru_weights_from_keras(kernel, recurrent_kernel, bias=None, *, reset_after=True):
    """Weights of one Keras ``GRU`` layer, from the arrays ``layer.get_weights()`` returns.

    Only one layer is converted: a stack of Keras GRU layers is a list of these calls, each
    giving its own :class:`GRUWeights`. The layer must use Keras's default activations
    (``activation="tanh"``, ``recurrent_activation="sigmoid"``) and run forwards
    (``go_backwards=False``); the arrays do not say, so the caller checks.

    Parameters
    ----------
    kernel : array_like
        ``(D, 3H)``, columns ``z | r | h``.
    recurrent_kernel : array_like
        ``(H, 3H)``, columns ``z | r | h``.
    bias : array_like, optional
        ``reset_after=True``: ``(2, 3H)``, the input bias row then the recurrent bias row.
        ``reset_after=False``: ``(3H,)``, Keras's single bias. ``None`` for
        ``use_bias=False``.
    reset_after : bool
        The layer's ``reset_after``; it becomes ``linear_before_reset``.

    Returns
    -------
    GRUWeights
        One forward layer, float64. A single ``reset_after=False`` bias goes to ``bias_ih``
        with zeros in ``bias_hh``: in that form every bias only adds to a pre-activation, so
        where it sits does not matter.

    Raises
    ------
    ValueError
        If an array does not have the shape given above.
    """
    kernel = np.asarray(kernel)
    recurrent_kernel = np.asarray(recurrent_kernel)
    if recurrent_kernel.ndim != 2 or recurrent_kernel.shape[1] != 3 * recurrent_kernel.shape[0]:
        raise ValueError(f"recurrent_kernel must have shape (H, 3H), not "
                         f"{recurrent_kernel.shape}")
    hidden = recurrent_kernel.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != 3 * hidden:
        raise ValueError(f"kernel must have shape (D, {3 * hidden}) to match recurrent_kernel "
                         f"{recurrent_kernel.shape}, not {kernel.shape}")
    bias_ih = bias_hh = None
    if bias is not None:
        bias = np.asarray(bias)
        expected = (2, 3 * hidden) if reset_after else (3 * hidden,)
        if bias.shape != expected:
            raise ValueError(f"bias must have shape {expected} with reset_after={reset_after}, "
                             f"not {bias.shape}")
        if reset_after:
            bias_ih, bias_hh = swap_reset_update(bias, axis=1)
        else:
            bias_ih, bias_hh = swap_reset_update(bias), np.zeros(3 * hidden)
    cell = GRUDirectionWeights(swap_reset_update(kernel.T), swap_reset_update(recurrent_kernel.T),
                               bias_ih, bias_hh)
    return GRUWeights(((cell,),), linear_before_reset=bool(reset_after),
                      direction="forward").astype(np.float64)


def gru_weights_to_keras(weights):
    """Keras arrays ``(kernel, recurrent_kernel, bias)`` of a one-layer forward GRU.

    The inverse of :func:`gru_weights_from_keras`; ``reset_after`` is
    ``weights.linear_before_reset``.

    Parameters
    ----------
    weights : GRUWeights
        One layer, ``direction="forward"``.

    Returns
    -------
    kernel : numpy.ndarray
        ``(D, 3H)``, columns ``z | r | h``.
    recurrent_kernel : numpy.ndarray
        ``(H, 3H)``, columns ``z | r | h``.
    bias : numpy.ndarray or None
        ``(2, 3H)`` with ``linear_before_reset``, else ``(3H,)`` holding ``bias_ih + bias_hh``
        (the two only ever add in that form); ``None`` without bias.
    """
    if weights.num_layers != 1 or weights.direction != "forward":
        raise ValueError(f"a Keras GRU layer is one forward layer; these weights have "
                         f"{weights.num_layers} layer(s), direction {weights.direction!r}")
    cell = weights.layers[0][0]
    kernel = swap_reset_update(cell.weight_ih).T
    recurrent_kernel = swap_reset_update(cell.weight_hh).T
    bias = None
    if cell.bias:
        if weights.linear_before_reset:
            bias = swap_reset_update(np.stack([cell.bias_ih, cell.bias_hh]), axis=1)
        else:
            bias = swap_reset_update(cell.bias_ih + cell.bias_hh)
    return kernel, recurrent_kernel, bias


