"""GRU weights from PyTorch, Keras and ONNX, and back to Keras and ONNX for tests.

Every importer returns a :class:`.gru.GRUWeights` with float64 arrays whose gate rows are in
this project's (PyTorch's) order ``r | z | n``. Keras and ONNX order their gates ``z | r | h``
(``h`` is PyTorch's ``n``); :func:`_swap_reset_update` converts between the two orders.

The golden model depends on NumPy only: PyTorch and ONNX are imported inside the functions
that need them.
"""

from dataclasses import dataclass
import os
from typing import Optional

import numpy as np

from .gru import GRUDirectionWeights, GRUWeights


__all__ = [
    "gru_weights_from_torch", "gru_weights_from_keras", "gru_weights_to_keras",
    "OnnxGRU", "gru_from_onnx", "onnx_gru_model",
]


def _swap_reset_update(array, axis=0):
    """Convert gate blocks ``z | r | h`` to ``r | z | n`` along ``axis``, or back.

    The two orders differ by swapping the first two blocks, so the conversion is its own
    inverse and serves both directions.
    """
    first, second, third = np.split(np.asarray(array), 3, axis=axis)
    return np.concatenate([second, first, third], axis=axis)


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
            bias_ih, bias_hh = _swap_reset_update(bias, axis=1)
        else:
            bias_ih, bias_hh = _swap_reset_update(bias), np.zeros(3 * hidden)
    cell = GRUDirectionWeights(_swap_reset_update(kernel.T), _swap_reset_update(recurrent_kernel.T),
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
    kernel = _swap_reset_update(cell.weight_ih).T
    recurrent_kernel = _swap_reset_update(cell.weight_hh).T
    bias = None
    if cell.bias:
        if weights.linear_before_reset:
            bias = _swap_reset_update(np.stack([cell.bias_ih, cell.bias_hh]), axis=1)
        else:
            bias = _swap_reset_update(cell.bias_ih + cell.bias_hh)
    return kernel, recurrent_kernel, bias


# --- ONNX ----------------------------------------------------------------------------------

_ONNX_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h")
_DEFAULT_ACTIVATIONS = ("sigmoid", "tanh")


@dataclass(frozen=True)
class OnnxGRU:
    """A GRU node imported from an ONNX model.

    Parameters
    ----------
    weights : GRUWeights
        One layer, float64, gates reordered to ``r | z | n``.
    batch_first : bool
        ``layout=1``: the node takes ``X`` as ``(N, T, D)`` and gives ``Y`` as
        ``(N, T, dirs, H)``.
    initial_h : numpy.ndarray or None
        The model's constant ``initial_h`` as ``(dirs, N, H)`` (this project's convention,
        whatever the layout), or ``None`` when the model holds no value for it.
    sequence_lens : numpy.ndarray or None
        The model's constant ``sequence_lens`` ``(N,)`` as int64, or ``None``.
    node_name : str
        The node's name in the graph.
    initial_h_input, sequence_lens_input : str or None
        Name of the tensor that feeds ``initial_h`` (``sequence_lens``) at run time when the
        model lets it vary: a graph input (also one that overrides an initializer's default)
        or another node's output. ``None`` when that input is absent or fixed.
    """

    weights: GRUWeights
    batch_first: bool
    initial_h: Optional[np.ndarray]
    sequence_lens: Optional[np.ndarray]
    node_name: str
    initial_h_input: Optional[str] = None
    sequence_lens_input: Optional[str] = None


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError("ONNX support needs the onnx package (the 'onnx' extra)") \
            from error
    return onnx


def _load_onnx_model(onnx, model_or_path):
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, (bytes, bytearray, memoryview)):
        return onnx.load_model_from_string(bytes(model_or_path))
    if isinstance(model_or_path, (str, os.PathLike)):
        return onnx.load(os.fspath(model_or_path))
    raise TypeError(f"expected an onnx.ModelProto, a path or bytes, not "
                    f"{type(model_or_path).__name__}")


def _constant_sources(graph):
    """Where the tensors fixed in ``graph`` come from: initializers and ``Constant`` nodes.

    Maps a tensor's name to its ``TensorProto`` or to the ``Constant`` node's one value
    attribute; :func:`_constant_array` converts only those used, as a model's other
    initializers can be large.
    """
    sources = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            sources[node.output[0]] = node.attribute[0]
    return sources


def _constant_array(onnx, name, source):
    from onnx import numpy_helper

    if isinstance(source, onnx.AttributeProto):
        if source.name not in ("value", "value_float", "value_floats", "value_int",
                               "value_ints"):
            raise ValueError(f"{name!r} comes from a Constant node with {source.name!r}; only "
                             f"dense numeric values are supported")
        source = onnx.helper.get_attribute_value(source)
    if isinstance(source, onnx.TensorProto):
        return numpy_helper.to_array(source)
    return np.asarray(source)


def _find_gru_node(graph, node):
    nodes = [n for n in graph.node if n.op_type == "GRU" and n.domain in ("", "ai.onnx")]
    graph_name = f"graph {graph.name!r}" if graph.name else "the graph"
    if not nodes:
        raise ValueError(f"{graph_name} has no GRU node (only the main graph is searched, not "
                         f"subgraphs of control-flow nodes)")
    if node is None:
        if len(nodes) > 1:
            names = [n.name for n in nodes]
            raise ValueError(f"{graph_name} has {len(nodes)} GRU nodes {names}; pass node= "
                             f"with the name of the one to import")
        return nodes[0]
    for candidate in nodes:
        if candidate.name == node:
            return candidate
    raise ValueError(f"{graph_name} has no GRU node named {node!r}; its GRU nodes are "
                     f"{[n.name for n in nodes]}")


def _gru_attributes(onnx, node):
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    for name in ("clip", "activation_alpha", "activation_beta"):
        if name in attributes:
            raise ValueError(f"GRU node {node.name!r} has the attribute {name!r}, which is not "
                             f"supported")
    direction = attributes.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError(f"GRU node {node.name!r} has unknown direction {direction!r}")
    directions = 2 if direction == "bidirectional" else 1
    if "activations" in attributes:
        names = [a.decode() if isinstance(a, bytes) else a for a in attributes["activations"]]
        # onnxruntime matches activation names without regard to case; so do we.
        if [a.lower() for a in names] != list(_DEFAULT_ACTIVATIONS) * directions:
            raise ValueError(f"GRU node {node.name!r} has activations {names}; only the "
                             f"defaults {['Sigmoid', 'Tanh'] * directions} are supported")
    layout = attributes.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"GRU node {node.name!r} has unknown layout {layout}")
    return (direction, directions, bool(attributes.get("linear_before_reset", 0)), bool(layout),
            attributes.get("hidden_size"))


def gru_from_onnx(model_or_path, node=None):
    """Import a GRU node of an ONNX model.

    Parameters
    ----------
    model_or_path : onnx.ModelProto, str, os.PathLike or bytes
        The model, a path to it, or its serialised bytes.
    node : str, optional
        Name of the GRU node to import; needed only when the graph has several.

    Returns
    -------
    OnnxGRU

    Raises
    ------
    ValueError
        If the graph has no GRU node, several and ``node`` is not given, or the node uses
        something this GRU does not model (``clip``, other activations, activation
        parameters), has weights ``W``, ``R`` or ``B`` that are not constants, or has
        inconsistent shapes.

    Notes
    -----
    ``W``, ``R`` and ``B`` must be initializers or ``Constant`` outputs. An initializer that
    is also listed as a graph input (which older IR versions allow as an overridable
    default) counts as the constant. A missing ``B`` means no bias (``bias_ih`` and
    ``bias_hh`` ``None``), which ONNX computes as zeros.
    """
    onnx = _import_onnx()
    graph = _load_onnx_model(onnx, model_or_path).graph
    gru = _find_gru_node(graph, node)
    direction, directions, linear_before_reset, batch_first, hidden_size = \
        _gru_attributes(onnx, gru)
    inputs = dict(zip(_ONNX_INPUTS, gru.input))
    constants = _constant_sources(graph)
    graph_inputs = {i.name for i in graph.input}

    def constant(role):
        name = inputs.get(role, "")
        return _constant_array(onnx, name, constants[name]) if name in constants else None

    def weight(role):
        value = constant(role)
        if value is None and inputs.get(role, ""):
            raise ValueError(f"GRU node {gru.name!r} reads {role} from {inputs[role]!r}, "
                             f"which is not constant: the weights must be initializers (or "
                             f"Constant nodes)")
        return value

    w, r, b = weight("W"), weight("R"), weight("B")
    if w is None or r is None:
        raise ValueError(f"GRU node {gru.name!r} lacks its W or R input")
    if w.ndim != 3 or w.shape[0] != directions or w.shape[1] % 3:
        raise ValueError(f"W must have shape ({directions}, 3H, D) for direction "
                         f"{direction!r}, not {w.shape}")
    hidden = w.shape[1] // 3
    if hidden_size is not None and hidden_size != hidden:
        raise ValueError(f"hidden_size is {hidden_size} but W {w.shape} has {w.shape[1]} rows, "
                         f"i.e. a hidden size of {hidden}")
    if r.shape != (directions, 3 * hidden, hidden):
        raise ValueError(f"R must have shape {(directions, 3 * hidden, hidden)}, not {r.shape}")
    if b is not None and b.shape != (directions, 6 * hidden):
        raise ValueError(f"B must have shape {(directions, 6 * hidden)}, not {b.shape}")
    cells = []
    for d in range(directions):
        biases = ((_swap_reset_update(b[d, :3 * hidden]), _swap_reset_update(b[d, 3 * hidden:]))
                  if b is not None else (None, None))
        cells.append(GRUDirectionWeights(_swap_reset_update(w[d]), _swap_reset_update(r[d]),
                                         *biases))
    weights = GRUWeights((tuple(cells),), linear_before_reset, direction).astype(np.float64)

    def runtime_name(role):
        name = inputs.get(role, "")
        return name if name and (name in graph_inputs or name not in constants) else None

    initial_h = constant("initial_h")
    if initial_h is not None:
        initial_h = initial_h.astype(np.float64)
        if initial_h.ndim != 3 or initial_h.shape[int(batch_first)] != directions or \
                initial_h.shape[2] != hidden:
            expected = "(N, dirs, H)" if batch_first else "(dirs, N, H)"
            raise ValueError(f"initial_h must have shape {expected} with dirs={directions}, "
                             f"H={hidden}, not {initial_h.shape}")
        if batch_first:
            initial_h = initial_h.transpose(1, 0, 2)
    sequence_lens = constant("sequence_lens")
    if sequence_lens is not None:
        if sequence_lens.ndim != 1:
            raise ValueError(f"sequence_lens must have shape (N,), not {sequence_lens.shape}")
        sequence_lens = sequence_lens.astype(np.int64)
    return OnnxGRU(weights, batch_first, initial_h, sequence_lens, gru.name,
                   initial_h_input=runtime_name("initial_h"),
                   sequence_lens_input=runtime_name("sequence_lens"))


def onnx_gru_model(weights, *, layout=0, with_sequence_lens=True, with_initial_h=True,
                   opset=14):
    """An ONNX model of one GRU node with ``weights``, for tests and benchmarks.

    The inverse of :func:`gru_from_onnx`: gates are reordered to ``z | r | h`` and stored as
    float32 initializers ``W``, ``R`` and (with bias) ``B``.

    Parameters
    ----------
    weights : GRUWeights
        One layer, any direction and form.
    layout : {0, 1}
        ONNX ``layout``; 1 makes ``X`` ``(N, T, D)``, ``initial_h`` ``(N, dirs, H)``, ``Y``
        ``(N, T, dirs, H)`` and ``Y_h`` ``(N, dirs, H)``.
    with_sequence_lens, with_initial_h : bool
        Whether the graph has the inputs ``sequence_lens`` (int32 ``(N,)``) and
        ``initial_h``.
    opset : int
        ONNX opset the model is written for; ``layout`` needs 14 or later.

    Returns
    -------
    onnx.ModelProto
        Inputs ``X`` (float32, ``T`` and ``N`` symbolic), then the optional ones; outputs
        ``Y`` and ``Y_h``. The node is named ``"gru"``.
    """
    onnx = _import_onnx()
    from onnx import TensorProto, helper, numpy_helper

    if weights.num_layers != 1:
        raise ValueError(f"an ONNX GRU node is one layer; these weights have "
                         f"{weights.num_layers}")
    if layout not in (0, 1):
        raise ValueError(f"layout must be 0 or 1, not {layout}")
    if layout and opset < 14:
        raise ValueError(f"layout=1 needs opset 14 or later, not {opset}")
    cells = weights.layers[0]
    dirs, hidden, inputs = weights.num_directions, weights.hidden_size, weights.input_size

    def initializer(name, arrays):
        return numpy_helper.from_array(np.stack(arrays).astype(np.float32), name)

    initializers = [initializer("W", [_swap_reset_update(c.weight_ih) for c in cells]),
                    initializer("R", [_swap_reset_update(c.weight_hh) for c in cells])]
    if weights.bias:
        initializers.append(initializer("B", [
            np.concatenate([_swap_reset_update(c.bias_ih), _swap_reset_update(c.bias_hh)])
            for c in cells]))
    batch_major = layout == 1
    graph_inputs = [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, ["N", "T", inputs] if batch_major else ["T", "N", inputs])]
    node_inputs = ["X", "W", "R", "B" if weights.bias else ""]
    if with_sequence_lens:
        graph_inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32,
                                                          ["N"]))
    node_inputs.append("sequence_lens" if with_sequence_lens else "")
    if with_initial_h:
        graph_inputs.append(helper.make_tensor_value_info(
            "initial_h", TensorProto.FLOAT,
            ["N", dirs, hidden] if batch_major else [dirs, "N", hidden]))
        node_inputs.append("initial_h")
    attributes = dict(hidden_size=hidden, direction=weights.direction,
                      linear_before_reset=int(weights.linear_before_reset))
    if layout:
        attributes["layout"] = layout
    gru = helper.make_node("GRU", node_inputs, ["Y", "Y_h"], name="gru", **attributes)
    outputs = [
        helper.make_tensor_value_info(
            "Y", TensorProto.FLOAT,
            ["N", "T", dirs, hidden] if batch_major else ["T", dirs, "N", hidden]),
        helper.make_tensor_value_info(
            "Y_h", TensorProto.FLOAT, ["N", dirs, hidden] if batch_major else [dirs, "N", hidden]),
    ]
    graph = helper.make_graph([gru], "gru", graph_inputs, outputs, initializers)
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opsets,
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model)
    return model
