"""GRU import from ONNX: a whole graph as torch's exporters write it, or one node by hand.

:func:`gru_from_onnx` reads the recurrent part of a graph as one model. A chain of GRU nodes
becomes a stacked GRU; the operators around them that only move data (the Transpose of a
batch-first input or output, the Transpose and Reshape, or Squeeze, that merge a layer's
directions into its features, the Slices that hand each layer its rows of ``h0``, the Concat
that stacks the final states, the zeros torch makes for an absent ``h0``) are understood by
what they do to each tensor, so every ``nn.GRU`` option that both of ``torch.onnx.export``'s
exporters write comes back as itself (``batch_first``, ``bidirectional``, layers, ``bias``,
with or without ``h0``).

The rule above all: an operator or pattern the importer does not understand, where it matters
to the graph's outputs, is refused with an error that names it. A graph is never run in part,
and never silently wrong. ``node=`` imports one GRU node alone, for a graph whose other parts
the caller runs elsewhere.

How a graph is read: every tensor gets a value, in the nodes' (topological) order. A value
is a constant array, a shape computed from tensors whose shapes are known symbolically, a
tensor of zeros, a tensor with a known role (the graph's input sequence, a layer's output,
rows of an initial or final state stack), or "unknown", which remembers the first node it
could not follow and why. Only when a GRU node or a graph output needs an unknown value is
the import refused; nodes that feed nothing the model needs are not looked at.
"""

from dataclasses import dataclass, field, replace
import math
import os
from typing import Optional

import numpy as np

from .gru import GRUDirectionWeights, GRUWeights, swap_reset_update


__all__ = ["OnnxGRU", "gru_from_onnx", "onnx_gru_model"]


_ONNX_INPUTS = ("X", "W", "R", "B", "sequence_lens", "initial_h")
_DEFAULT_ACTIVATIONS = ("sigmoid", "tanh")


@dataclass(frozen=True)
class OnnxGRU:
    """The GRU of an ONNX model: its weights and how the graph feeds it.

    Parameters
    ----------
    weights : GRUWeights
        Every layer, float64, gates reordered to ``r | z | n``.
    batch_first : bool
        The graph takes its input sequence as ``(N, T, D)`` (a Transpose before the first GRU
        node, or ``layout=1``) and gives its output sequence the same way.
    initial_h : numpy.ndarray or None
        The model's constant initial state as ``(layers * dirs, N, H)`` (this project's
        convention, whatever the layout), or ``None`` when it holds none (or only zeros).
    sequence_lens : numpy.ndarray or None
        The model's constant ``sequence_lens`` ``(N,)`` as int64, or ``None``.
    node_names : tuple of str
        The GRU nodes, first layer first.
    initial_h_input, sequence_lens_input : str or None
        Name of the graph input that feeds the initial states (``sequence_lens``) at run
        time, also one that overrides an initializer's default; ``None`` when there is none.
    input_name : str or None
        The graph input that carries the sequence (``None`` for ``node=``: the node's ``X``
        may come from anywhere).
    """

    weights: GRUWeights
    batch_first: bool
    initial_h: Optional[np.ndarray]
    sequence_lens: Optional[np.ndarray]
    node_names: tuple
    initial_h_input: Optional[str] = None
    sequence_lens_input: Optional[str] = None
    input_name: Optional[str] = None

    @property
    def node_name(self):
        """The GRU nodes' names, joined by commas when there are several layers."""
        return ", ".join(self.node_names)


def _import_onnx():
    try:
        import onnx
    except ImportError as error:
        raise ImportError("ONNX support needs the onnx package (the 'onnx' extra)") \
            from error
    return onnx


def _load_onnx_model(onnx, model_or_path):
    """The ModelProto, with the file's name in every error about its contents."""
    from google.protobuf.message import DecodeError

    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    if isinstance(model_or_path, (bytes, bytearray, memoryview)):
        what, load = "the bytes given", lambda: onnx.load_model_from_string(bytes(model_or_path))
    elif isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        what, load = path, lambda: onnx.load(path)
    else:
        raise TypeError(f"expected an onnx.ModelProto, a path or bytes, not "
                        f"{type(model_or_path).__name__}")
    try:
        model = load()
    except DecodeError as error:
        raise ValueError(f"{what} is not an ONNX model, or it is truncated or corrupt: protobuf "
                         f"could not decode it ({error}); export the model again") from None
    if not model.graph.node:
        # Protobuf reads many byte strings (an empty file among them) as an empty message.
        raise ValueError(f"{what} holds no ONNX graph (no nodes): it is empty, or not an ONNX "
                         f"model")
    return model


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


@dataclass(frozen=True)
class _Node:
    """One GRU node read: its attributes and the cells of its weights."""

    name: str
    direction: str
    directions: int
    linear_before_reset: bool
    batch_major: bool
    cells: tuple

    @property
    def hidden_size(self):
        return self.cells[0].hidden_size

    @property
    def input_size(self):
        return self.cells[0].input_size


def _read_gru_node(onnx, gru, weight_of):
    """Attributes and weights of a GRU node; ``weight_of(role)`` gives W, R or B (or None)."""
    direction, directions, linear_before_reset, batch_major, hidden_size = \
        _gru_attributes(onnx, gru)
    w, r, b = weight_of("W"), weight_of("R"), weight_of("B")
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
        biases = ((swap_reset_update(b[d, :3 * hidden]), swap_reset_update(b[d, 3 * hidden:]))
                  if b is not None else (None, None))
        cells.append(GRUDirectionWeights(
            swap_reset_update(w[d]).astype(np.float64), swap_reset_update(r[d]).astype(np.float64),
            *(None if bias is None else bias.astype(np.float64) for bias in biases)))
    return _Node(gru.name, direction, directions, linear_before_reset, batch_major, tuple(cells))


def _gru_nodes(graph):
    return [n for n in graph.node if n.op_type == "GRU" and n.domain in ("", "ai.onnx")]


def _graph_name(graph):
    return f"graph {graph.name!r}" if graph.name else "the graph"


def gru_from_onnx(model_or_path, node=None, inputs=None):
    """Import the GRU of an ONNX model: the whole recurrent graph, or one node.

    Parameters
    ----------
    model_or_path : onnx.ModelProto, str, os.PathLike or bytes
        The model, a path to it, or its serialised bytes.
    node : str, optional
        Import only the GRU node of this name, whatever surrounds it in the graph. Without
        it the whole graph is imported and must be a GRU (one node or a stack of them)
        between its input and its outputs.
    inputs : dict of str to array_like, optional
        Values of graph inputs that hold weights (``W``, ``R``, ``B``), as in ONNX's own
        operator test cases, where they are inputs rather than initializers. Keys are the
        graph's tensor names.

    Returns
    -------
    OnnxGRU

    Raises
    ------
    ValueError
        If the file is not a readable ONNX model; if the graph has no GRU node; if an
        operator or pattern between the input, the GRU nodes and the outputs is one this
        importer does not understand (the message names it); if a node uses something this
        GRU does not model (``clip``, other activations, activation parameters); if weights
        ``W``, ``R`` or ``B`` are neither constants nor given in ``inputs``; or if shapes are
        inconsistent.

    Notes
    -----
    An initializer that is also listed as a graph input (which older IR versions allow as an
    overridable default) counts as the constant. A missing ``B`` means no bias (``bias_ih``
    and ``bias_hh`` ``None``), which ONNX computes as zeros. An initial state that is zeros
    (torch's exporters write one when ``h0`` was not passed) is no initial state.
    """
    onnx = _import_onnx()
    graph = _load_onnx_model(onnx, model_or_path).graph
    given = _given_inputs(graph, inputs)
    if node is not None:
        return _import_one_node(onnx, graph, node, given)
    return _GraphReader(onnx, graph, given).read()


def _given_inputs(graph, inputs):
    if inputs is None:
        return {}
    if not isinstance(inputs, dict):
        raise TypeError(f"inputs must be a dict of tensor names to arrays, not "
                        f"{type(inputs).__name__}")
    names = {i.name for i in graph.input}
    unknown = sorted(set(inputs) - names)
    if unknown:
        raise ValueError(f"inputs names {unknown}, which are not inputs of "
                         f"{_graph_name(graph)}; its inputs are {sorted(names)}")
    return {name: np.asarray(value) for name, value in inputs.items()}


def _constant_sources(graph):
    """Initializers and ``Constant`` nodes by the name of the tensor they make.

    :func:`_constant_array` converts only those used, as a model's other initializers can be
    large.
    """
    sources = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            sources[node.output[0]] = node.attribute[0]
    return sources


def _import_one_node(onnx, graph, name, given):
    """``node=``: one GRU node, its X taken as given, whatever makes it."""
    nodes = _gru_nodes(graph)
    if not nodes:
        raise ValueError(f"{_graph_name(graph)} has no GRU node (only the main graph is "
                         f"searched, not subgraphs of control-flow nodes)")
    gru = next((n for n in nodes if n.name == name), None)
    if gru is None:
        raise ValueError(f"{_graph_name(graph)} has no GRU node named {name!r}; its GRU nodes "
                         f"are {[n.name for n in nodes]}")
    node_inputs = dict(zip(_ONNX_INPUTS, gru.input))
    constants = _constant_sources(graph)
    graph_inputs = {i.name for i in graph.input}

    def constant(role):
        name = node_inputs.get(role, "")
        if name in given:
            return given[name]
        return _constant_array(onnx, name, constants[name]) if name in constants else None

    def weight(role):
        value = constant(role)
        if value is None and node_inputs.get(role, ""):
            raise _not_constant(gru, role, node_inputs[role], graph_inputs)
        return value

    read = _read_gru_node(onnx, gru, weight)

    def runtime_name(role):
        name = node_inputs.get(role, "")
        return name if name and (name in graph_inputs or name not in constants) else None

    initial_h = constant("initial_h")
    if initial_h is not None:
        initial_h = _check_constant_state(initial_h, read)
    sequence_lens = constant("sequence_lens")
    if sequence_lens is not None:
        sequence_lens = _check_lengths(sequence_lens)
    return OnnxGRU(GRUWeights((read.cells,), read.linear_before_reset, read.direction),
                   read.batch_major, initial_h, sequence_lens, (gru.name,),
                   initial_h_input=runtime_name("initial_h"),
                   sequence_lens_input=runtime_name("sequence_lens"))


def _not_constant(gru, role, name, graph_inputs):
    where = ("a graph input" if name in graph_inputs else "another node's output")
    return ValueError(f"GRU node {gru.name!r} reads {role} from {name!r}, {where}, which is not "
                      f"constant: the weights must be initializers (or Constant nodes), or be "
                      f"given as inputs={{{name!r}: array, ...}}")


def _check_constant_state(initial_h, read):
    """A node's constant ``initial_h`` as ``(dirs, N, H)`` float64."""
    initial_h = np.asarray(initial_h, dtype=np.float64)
    if initial_h.ndim != 3 or initial_h.shape[int(read.batch_major)] != read.directions or \
            initial_h.shape[2] != read.hidden_size:
        expected = "(N, dirs, H)" if read.batch_major else "(dirs, N, H)"
        raise ValueError(f"initial_h of GRU node {read.name!r} must have shape {expected} with "
                         f"dirs={read.directions}, H={read.hidden_size}, not {initial_h.shape}")
    return initial_h.transpose(1, 0, 2) if read.batch_major else initial_h


def _check_lengths(sequence_lens):
    sequence_lens = np.asarray(sequence_lens)
    if sequence_lens.ndim != 1:
        raise ValueError(f"sequence_lens must have shape (N,), not {sequence_lens.shape}")
    return sequence_lens.astype(np.int64)


# --- symbolic shapes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Dim:
    """A dimension: ``factor`` times the product of named sizes unknown until run time."""

    factor: int
    names: tuple = ()

    def __mul__(self, other):
        return _Dim(self.factor * other.factor, tuple(sorted(self.names + other.names)))

    def divide(self, other):
        """``self / other``, or None when it is not a whole dimension."""
        names = list(self.names)
        for name in other.names:
            if name not in names:
                return None
            names.remove(name)
        if other.factor == 0 or self.factor % other.factor:
            return None
        return _Dim(self.factor // other.factor, tuple(names))

    def __str__(self):
        return "*".join([str(self.factor)] * (self.factor != 1 or not self.names)
                        + list(self.names))


def _dims(*sizes):
    return tuple(size if isinstance(size, _Dim) else _Dim(int(size)) for size in sizes)


def _product(dims):
    return math.prod(dims, start=_Dim(1))


# --- values ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Const:
    array: np.ndarray = field(compare=False)
    name: str = ""


@dataclass(frozen=True)
class _ShapeValue:
    """A 1-D integer tensor computed from shapes: its entries are known dimensions."""

    dims: tuple


@dataclass(frozen=True)
class _Zeros:
    """A tensor of zeros whose shape is only known at run time (torch's absent ``h0``)."""


@dataclass(frozen=True)
class _Tensor:
    """A tensor of the model's data, with the role it plays.

    ``role``:

    * ``"input"``: a graph input (``source``), ``transposed`` if its first two axes have been
      swapped; ``rows`` is the range of its first axis taken by Slices, or None.
    * ``"sequence"``: layer ``layer``'s output with directions merged into features,
      ``(N, T, F)`` if ``batch_major`` else ``(T, N, F)``.
    * ``"Y"``: a GRU node's ``Y`` as ONNX lays it out: ``(T, dirs, N, H)``, or
      ``(N, T, dirs, H)`` with ``batch_major`` (``layout=1``).
    * ``"Y_T"``: a ``layout=0`` ``Y`` transposed to ``(T, N, dirs, H)``.
    * ``"final"``: rows ``rows`` of the stacked final states ``(layers * dirs, N, H)``, or a
      ``layout=1`` node's ``Y_h`` ``(N, dirs, H)`` with ``batch_major``.
    """

    role: str
    shape: tuple
    layer: int = -1
    batch_major: bool = False
    source: str = ""
    transposed: bool = False
    rows: Optional[tuple] = None


@dataclass(frozen=True)
class _Unknown:
    """A value the importer could not follow: the first node where that happened, and why."""

    op_type: str
    node_name: str
    output: str
    reason: str

    def describe(self):
        return f"{self.op_type} node {self.node_name!r} (making {self.output!r}): {self.reason}"


class _Refused(Exception):
    """A node whose values the importer cannot follow; becomes an :class:`_Unknown`."""


_MOVES_DATA = ("Identity", "Transpose", "Squeeze", "Reshape", "Slice", "Concat", "Cast",
               "Unsqueeze", "Shape", "Gather", "Mul", "ConstantOfShape", "Expand", "Constant",
               "GRU")


class _GraphReader:
    """Follows the values of a graph from its inputs to its outputs; see the module's text."""

    def __init__(self, onnx, graph, given):
        self._onnx = onnx
        self._graph = graph
        self._given = given
        self._constants = _constant_sources(graph)
        self._graph_inputs = {i.name: i for i in graph.input}
        self._values = {}
        self._layers = []          # _Node of each GRU node of the stack, in order
        self._initial = []         # what each layer's initial_h is
        self._lengths = []         # where each layer's sequence_lens comes from
        self._input_name = None
        self._batch_first = None

    # --- reading values --------------------------------------------------------------------

    def value(self, name):
        """The value of tensor ``name`` ('' for an absent optional input gives None)."""
        if not name:
            return None
        if name in self._values:
            return self._values[name]
        if name in self._given:
            value = _Const(self._given[name], name)
        elif name in self._constants:
            value = _Const(_constant_array(self._onnx, name, self._constants[name]), name)
        elif name in self._graph_inputs:
            value = _Tensor("input", self._declared_shape(name), source=name)
        else:
            value = _Unknown("(none)", "", name, "no node makes this tensor")
        self._values[name] = value
        return value

    def _declared_shape(self, name):
        dims = []
        tensor_type = self._graph_inputs[name].type.tensor_type
        if tensor_type.HasField("shape"):
            for k, dim in enumerate(tensor_type.shape.dim):
                if dim.HasField("dim_value"):
                    dims.append(_Dim(dim.dim_value))
                else:
                    dims.append(_Dim(1, (dim.dim_param or f"{name}[{k}]",)))
            return tuple(dims)
        # No shape declared: every input the GRU reads (X, initial_h) has three axes.
        return tuple(_Dim(1, (f"{name}[{k}]",)) for k in range(3))

    def _constant(self, node, index, what):
        value = self.value(node.input[index]) if index < len(node.input) else None
        if not isinstance(value, _Const):
            raise _Refused(f"its {what} is not a constant")
        return value.array

    def _ints(self, node, index, what):
        return [int(v) for v in np.asarray(self._constant(node, index, what)).reshape(-1)]

    def _attribute(self, node, name, default=None):
        for attribute in node.attribute:
            if attribute.name == name:
                return self._onnx.helper.get_attribute_value(attribute)
        return default

    def _axes(self, node, index):
        """Axes of Squeeze, Unsqueeze or Slice: an input since opset 13 (10 for Slice), an
        attribute before."""
        if index < len(node.input) and node.input[index]:
            return self._ints(node, index, "axes")
        axes = self._attribute(node, "axes")
        return None if axes is None else [int(a) for a in axes]

    # --- the walk --------------------------------------------------------------------------

    def read(self):
        graph = self._graph
        grus = _gru_nodes(graph)
        if not grus:
            raise ValueError(f"{_graph_name(graph)} has no GRU node (only the main graph is "
                             f"searched, not subgraphs of control-flow nodes)")
        self._gru_names = [n.name for n in grus]
        for node in graph.node:
            if node.op_type == "GRU" and node.domain in ("", "ai.onnx"):
                self._gru(node)
                continue
            try:
                outputs = self._follow(node)
            except _Refused as refused:
                unknown = _Unknown(node.op_type, node.name, node.output[0] if node.output else "",
                                   str(refused))
                outputs = [unknown] * len(node.output)
            for name, value in zip(node.output, outputs):
                self._values[name] = value
        return self._result()

    def _follow(self, node):
        """The values of a node's outputs; raises :class:`_Refused` where it cannot tell."""
        if node.domain not in ("", "ai.onnx") or node.op_type not in _MOVES_DATA:
            raise _Refused("gatework does not import this operator" +
                           (f" (domain {node.domain!r})" if node.domain not in ("", "ai.onnx")
                            else ""))
        inputs = [self.value(name) for name in node.input]
        # An unknown input makes every output unknown, remembering where it started.
        for value in inputs:
            if isinstance(value, _Unknown):
                return [value] * len(node.output)
        handler = getattr(self, f"_op_{node.op_type}")
        result = handler(node, inputs)
        return result if isinstance(result, list) else [result]

    def _op_Constant(self, node, inputs):
        return _Const(_constant_array(self._onnx, node.output[0], node.attribute[0]),
                      node.output[0])

    def _op_Identity(self, node, inputs):
        return inputs[0]

    def _op_Cast(self, node, inputs):
        value = inputs[0]
        if isinstance(value, _Const):
            to = self._onnx.helper.tensor_dtype_to_np_dtype(self._attribute(node, "to"))
            return _Const(value.array.astype(to))
        if isinstance(value, _Tensor):
            to = self._attribute(node, "to")
            if to not in (self._onnx.TensorProto.FLOAT, self._onnx.TensorProto.DOUBLE):
                raise _Refused("it casts the model's data to a type other than float")
        return value

    def _op_Transpose(self, node, inputs):
        value = inputs[0]
        perm = self._attribute(node, "perm")
        perm = None if perm is None else [int(p) for p in perm]
        if isinstance(value, _Const):
            return _Const(np.transpose(value.array, perm))
        if isinstance(value, _Zeros):
            return value
        if not isinstance(value, _Tensor) or value.shape is None:
            raise _Refused("it transposes a tensor of unknown role")
        rank = len(value.shape)
        if perm is None:
            perm = list(range(rank))[::-1]
        shape = tuple(value.shape[p] for p in perm)
        swap = [1, 0] + list(range(2, rank))
        if value.role in ("input", "sequence") and rank == 3 and perm == swap:
            if value.role == "input":
                return replace(value, shape=shape, transposed=not value.transposed)
            return replace(value, shape=shape, batch_major=not value.batch_major)
        if value.role == "Y" and not value.batch_major and perm == [0, 2, 1, 3]:
            return replace(value, role="Y_T", shape=shape)
        raise _Refused(f"perm {perm} on {self._describe(value)} is not a transpose gatework "
                       f"follows")

    def _op_Squeeze(self, node, inputs):
        value = inputs[0]
        axes = self._axes(node, 1)
        if isinstance(value, _ShapeValue):
            return value
        if isinstance(value, _Const):
            return _Const(np.squeeze(value.array, axis=None if axes is None else tuple(axes)))
        if isinstance(value, _Tensor) and axes is not None and len(axes) == 1:
            axis = axes[0] % len(value.shape)
            directions_axis = {"Y": 2 if value.batch_major else 1, "Y_T": 2}.get(value.role)
            if axis == directions_axis and value.shape[axis] == _Dim(1):
                shape = value.shape[:axis] + value.shape[axis + 1:]
                return _Tensor("sequence", shape, value.layer,
                               value.batch_major if value.role == "Y" else False)
        raise _Refused(f"axes {axes} on {self._describe(value)} do not remove the directions "
                       f"axis of a one-direction GRU's Y")

    def _op_Unsqueeze(self, node, inputs):
        value = inputs[0]
        if isinstance(value, _ShapeValue):
            return value
        if isinstance(value, _Const):
            array = value.array
            for axis in sorted(self._axes(node, 1)):
                array = np.expand_dims(array, axis)
            return _Const(array)
        raise _Refused(f"it adds an axis to {self._describe(value)}")

    def _op_Shape(self, node, inputs):
        value = inputs[0]
        shape = (_dims(*value.array.shape) if isinstance(value, _Const)
                 else value.shape if isinstance(value, _Tensor) else None)
        if shape is None:
            raise _Refused(f"the shape of {self._describe(value)} is not known")
        start, end = self._attribute(node, "start", 0), self._attribute(node, "end")
        return _ShapeValue(tuple(shape[start:end]))

    def _shape_entries(self, value):
        if isinstance(value, _ShapeValue):
            return value.dims
        if isinstance(value, _Const) and value.array.dtype.kind in "iu" and \
                value.array.ndim <= 1:
            return _dims(*value.array.reshape(-1).tolist())
        return None

    def _op_Gather(self, node, inputs):
        value, indices = inputs
        if isinstance(value, _Const) and isinstance(indices, _Const):
            return _Const(np.take(value.array, indices.array,
                                  axis=self._attribute(node, "axis", 0)))
        dims = self._shape_entries(value)
        if dims is not None and isinstance(indices, _Const):
            return _ShapeValue(tuple(dims[int(i)] for i in indices.array.reshape(-1)))
        raise _Refused(f"it gathers from {self._describe(value)}")

    def _op_Mul(self, node, inputs):
        a, b = (self._shape_entries(v) for v in inputs)
        if isinstance(inputs[0], _Const) and isinstance(inputs[1], _Const):
            return _Const(inputs[0].array * inputs[1].array)
        if a is not None and b is not None and len(a) == len(b) == 1:
            return _ShapeValue((a[0] * b[0],))
        raise _Refused("it multiplies the model's data (gatework imports only a GRU)")

    def _op_Concat(self, node, inputs):
        axis = self._attribute(node, "axis")
        if all(isinstance(v, _Const) for v in inputs):
            return _Const(np.concatenate([v.array for v in inputs], axis=axis))
        entries = [self._shape_entries(v) for v in inputs]
        if all(e is not None for e in entries):
            return _ShapeValue(tuple(d for e in entries for d in e))
        if all(isinstance(v, _Tensor) and v.role == "final" and not v.batch_major
               for v in inputs) and axis == 0:
            rows = [v.rows for v in inputs]
            if all(rows[k][1] == rows[k + 1][0] for k in range(len(rows) - 1)):
                first = inputs[0]
                stacked = _Dim(rows[-1][1] - rows[0][0])
                return replace(first, rows=(rows[0][0], rows[-1][1]),
                               shape=(stacked,) + first.shape[1:])
        raise _Refused(f"it concatenates {', '.join(self._describe(v) for v in inputs)} along "
                       f"axis {axis}: only the final states of consecutive layers, stacked, "
                       f"are followed")

    def _op_ConstantOfShape(self, node, inputs):
        fill = self._attribute(node, "value")
        fill = 0 if fill is None else self._onnx.numpy_helper.to_array(fill)
        if np.all(np.asarray(fill) == 0):
            return _Zeros()
        raise _Refused("it fills a tensor with a value other than zero")

    def _op_Expand(self, node, inputs):
        value = inputs[0]
        if isinstance(value, _Zeros) or (isinstance(value, _Const)
                                         and not np.any(value.array)):
            return _Zeros()
        raise _Refused(f"it expands {self._describe(value)}, which is not zeros")

    def _op_Slice(self, node, inputs):
        value = inputs[0]
        if len(node.input) >= 3:
            starts, ends = self._ints(node, 1, "starts"), self._ints(node, 2, "ends")
            axes = self._axes(node, 3)
            steps = self._ints(node, 4, "steps") if len(node.input) > 4 and node.input[4] \
                else [1] * len(starts)
        else:
            starts = [int(s) for s in self._attribute(node, "starts")]
            ends = [int(e) for e in self._attribute(node, "ends")]
            axes, steps = self._attribute(node, "axes"), [1] * len(starts)
        axes = list(range(len(starts))) if axes is None else [int(a) for a in axes]
        if isinstance(value, _Const):
            index = [slice(None)] * value.array.ndim
            for start, end, axis, step in zip(starts, ends, axes, steps):
                index[axis] = slice(start, end, step)
            return _Const(value.array[tuple(index)])
        if isinstance(value, _Zeros):
            return value
        entries = self._shape_entries(value)
        if entries is not None and axes == [0] and steps == [1]:
            return _ShapeValue(tuple(entries[starts[0]:ends[0]]))
        if (isinstance(value, _Tensor) and value.role == "input" and not value.transposed
                and axes == [0] and steps == [1] and value.rows is None):
            size = value.shape[0].factor if value.shape and not value.shape[0].names else None
            start, end = starts[0], ends[0]
            if start >= 0 and (end >= 0 or size is not None):
                end = min(end, size) if size is not None and end >= 0 else end
                if end < 0:
                    end += size
                return replace(value, rows=(start, end),
                               shape=(_Dim(end - start),) + value.shape[1:])
        raise _Refused(f"starts {starts}, ends {ends}, axes {axes}, steps {steps} on "
                       f"{self._describe(value)}: only rows of an initial-state input are "
                       f"followed")

    def _op_Reshape(self, node, inputs):
        value, target = inputs
        if isinstance(value, _ShapeValue):
            return value
        if isinstance(value, _Const) and isinstance(target, _Const):
            return _Const(value.array.reshape(target.array.astype(np.int64)))
        target = self._shape_entries(target)
        if target is None:
            raise _Refused("its target shape is computed in a way gatework does not follow")
        if not isinstance(value, _Tensor) or value.shape is None:
            raise _Refused(f"it reshapes {self._describe(value)}")
        shape = self._resolve_reshape(value.shape, target, self._attribute(node, "allowzero", 0))
        merged = None
        if value.role in ("Y_T", "Y") and (value.role == "Y_T" or value.batch_major):
            # (T, N, dirs, H) or (N, T, dirs, H) -> (., ., dirs * H)
            merged = value.shape[:2] + (value.shape[2] * value.shape[3],)
            batch_major = value.role == "Y" and value.batch_major
        elif value.role == "Y" and value.shape[1] == _Dim(1):
            merged = (value.shape[0], value.shape[2], value.shape[3])
            batch_major = False
        elif value.role == "sequence":
            merged, batch_major = value.shape, value.batch_major
        if merged is not None and shape == merged:
            return _Tensor("sequence", merged, value.layer, batch_major)
        raise _Refused(f"it reshapes {self._describe(value)} of shape "
                       f"({', '.join(map(str, value.shape))}) to "
                       f"({', '.join(map(str, target))}), which does not merge a layer's "
                       f"directions into its features")

    @staticmethod
    def _resolve_reshape(shape, target, allowzero):
        dims, unknown = [], None
        for k, dim in enumerate(target):
            if dim == _Dim(0) and not allowzero:
                if k >= len(shape):
                    return None
                dim = shape[k]
            elif dim == _Dim(-1):
                if unknown is not None:
                    return None
                unknown = k
            dims.append(dim)
        if unknown is not None:
            known = _product(d for k, d in enumerate(dims) if k != unknown)
            inferred = _product(shape).divide(known)
            if inferred is None:
                return None
            dims[unknown] = inferred
        return tuple(dims)

    def _describe(self, value):
        if isinstance(value, _Tensor):
            if value.role == "input":
                return f"the graph input {value.source!r}"
            what = {"sequence": "output sequence", "Y": "Y", "Y_T": "transposed Y",
                    "final": "final states"}[value.role]
            return f"the {what} of GRU node {self._layers[value.layer].name!r}"
        if isinstance(value, _Zeros):
            return "zeros"
        if isinstance(value, _Const):
            return f"a constant of shape {value.array.shape}"
        if isinstance(value, _ShapeValue):
            return "a shape"
        return "a tensor"

    # --- GRU nodes -------------------------------------------------------------------------

    def _needed(self, value, what):
        if isinstance(value, _Unknown):
            raise ValueError(f"{what} comes from {value.describe()}. gatework imports a GRU "
                             f"(one node or a stack) and the operators torch's exporters put "
                             f"around it, nothing else: export the GRU alone, or pass node= "
                             f"to import one GRU node and run the rest of the graph yourself")
        return value

    def _gru(self, gru):
        k = len(self._layers)
        inputs = dict(zip(_ONNX_INPUTS, gru.input))

        def weight(role):
            value = self.value(inputs.get(role, ""))
            if value is None:
                return None
            if not isinstance(value, _Const):
                self._needed(value, f"{role} of GRU node {gru.name!r}")
                raise _not_constant(gru, role, inputs[role], self._graph_inputs)
            return value.array

        read = _read_gru_node(self._onnx, gru, weight)
        x = self._needed(self.value(inputs.get("X", "")), f"X of GRU node {gru.name!r}")
        self._check_chain(gru, read, x, k)
        if read.batch_major:
            steps, batch = x.shape[1], x.shape[0]
        else:
            steps, batch = x.shape[0], x.shape[1]
        self._layers.append(read)
        self._initial.append(self._initial_state(gru, read, inputs.get("initial_h", ""), k))
        self._lengths.append(self._sequence_lens(gru, inputs.get("sequence_lens", "")))
        dirs, hidden = _Dim(read.directions), _Dim(read.hidden_size)
        y_shape = ((batch, steps, dirs, hidden) if read.batch_major
                   else (steps, dirs, batch, hidden))
        outputs = [_Tensor("Y", y_shape, k, read.batch_major),
                   _Tensor("final", (batch, dirs, hidden) if read.batch_major
                           else (dirs, batch, hidden), k, read.batch_major,
                           rows=(k * read.directions, (k + 1) * read.directions))]
        for name, value in zip(gru.output, outputs):
            if name:
                self._values[name] = value

    def _several(self, why):
        names = self._gru_names
        return ValueError(f"{_graph_name(self._graph)} has {len(names)} GRU nodes {names}; pass "
                          f"node= with the name of the one to import: they do not form one "
                          f"stack ({why})")

    def _check_chain(self, gru, read, x, k):
        if k == 0:
            if not (isinstance(x, _Tensor) and x.role == "input" and x.rows is None
                    and x.shape is not None and len(x.shape) == 3):
                raise ValueError(f"GRU node {gru.name!r} reads X from {self._describe(x)}, not "
                                 f"from a graph input of shape (T, N, D) or (N, T, D)")
            if not x.shape[2].names and x.shape[2] != _Dim(read.input_size):
                raise ValueError(f"GRU node {gru.name!r} takes {read.input_size} features, but "
                                 f"the graph input {x.source!r} has {x.shape[2]}")
            self._input_name = x.source
            # A Transpose on the way turns a batch-major input into the node's layout 0.
            self._batch_first = x.transposed != read.batch_major
            return
        previous = self._layers[k - 1]
        if not (isinstance(x, _Tensor) and x.role == "sequence" and x.layer == k - 1):
            raise self._several(f"GRU node {gru.name!r} reads X from {self._describe(x)}, "
                                f"not from the output sequence of GRU node {previous.name!r}")
        if x.batch_major != read.batch_major:
            raise ValueError(f"GRU node {gru.name!r} reads the output of {previous.name!r} "
                             f"with its batch and time axes swapped")
        first = self._layers[0]
        for what, mine, theirs in (
                ("direction", read.direction, first.direction),
                ("linear_before_reset", read.linear_before_reset, first.linear_before_reset),
                ("hidden_size", read.hidden_size, first.hidden_size),
                ("bias", read.cells[0].bias, first.cells[0].bias)):
            if mine != theirs:
                raise ValueError(f"GRU node {gru.name!r} has {what} {mine!r}, but "
                                 f"{first.name!r}, the first layer, has {theirs!r}: a stack's "
                                 f"layers must agree")

    def _initial_state(self, gru, read, name, k):
        """What layer ``k`` starts from: ``"zeros"``, ``("constant", array (dirs, N, H),
        overridable name or None)`` or ``("input", name, rows or None)``."""
        value = self.value(name)
        if value is None or isinstance(value, _Zeros):
            return "zeros"
        value = self._needed(value, f"initial_h of GRU node {gru.name!r}")
        if isinstance(value, _Const):
            array = _check_constant_state(value.array, read)
            if not np.any(array):
                return "zeros"
            return ("constant", array, name if name in self._graph_inputs else None)
        if isinstance(value, _Tensor) and value.role == "input" and not value.transposed:
            return ("input", value.source, value.rows)
        raise ValueError(f"GRU node {gru.name!r} reads initial_h from {self._describe(value)}; "
                         f"gatework follows an initial state that is a graph input (or rows of "
                         f"one), a constant, or zeros")

    def _sequence_lens(self, gru, name):
        value = self.value(name)
        if value is None:
            return None
        value = self._needed(value, f"sequence_lens of GRU node {gru.name!r}")
        if isinstance(value, _Const):
            return ("constant", _check_lengths(value.array),
                    name if name in self._graph_inputs else None)
        if isinstance(value, _Tensor) and value.role == "input" and value.rows is None:
            return ("input", value.source)
        raise ValueError(f"GRU node {gru.name!r} reads sequence_lens from "
                         f"{self._describe(value)}; it must be a graph input or a constant")

    # --- the result ------------------------------------------------------------------------

    def _result(self):
        layers = self._layers
        first, count = layers[0], len(layers)
        if count != len(self._gru_names):
            raise self._several("some GRU nodes are not part of the chain")
        weights = GRUWeights(tuple(layer.cells for layer in layers), first.linear_before_reset,
                             first.direction)
        self._check_outputs(count)
        initial_h, initial_h_input = self._initial_states(first)
        def key(entry):
            return None if entry is None else (entry[0], entry[1] if entry[0] == "input"
                                               else entry[1].tobytes())
        if any(key(entry) != key(self._lengths[0]) for entry in self._lengths):
            raise ValueError("the GRU nodes read different sequence_lens; a stack runs every "
                             "layer over the same lengths")
        entry = self._lengths[0]
        sequence_lens = entry[1] if entry and entry[0] == "constant" else None
        sequence_lens_input = (entry[1] if entry and entry[0] == "input"
                               else entry[2] if entry else None)
        return OnnxGRU(weights, self._batch_first, initial_h, sequence_lens,
                       tuple(layer.name for layer in layers), initial_h_input=initial_h_input,
                       sequence_lens_input=sequence_lens_input, input_name=self._input_name)

    def _check_outputs(self, count):
        last = count - 1
        for output in self._graph.output:
            value = self.value(output.name)
            what = f"the graph output {output.name!r}"
            self._needed(value, what)
            if isinstance(value, _Tensor) and value.layer == last:
                if value.role in ("sequence", "Y"):
                    if value.batch_major != self._batch_first:
                        order = ("(N, T, ...)", "(T, N, ...)")
                        raise ValueError(
                            f"{what} is {order[not value.batch_major]} but the input is "
                            f"{order[not self._batch_first]}: gatework's GRU keeps one layout "
                            f"for both (batch_first)")
                    continue
            if isinstance(value, _Tensor) and value.role == "final":
                if (value.rows == (0, count * self._layers[0].directions)
                        and (not value.batch_major or count == 1)):
                    continue
                raise ValueError(f"{what} holds the final states of only some layers (rows "
                                 f"{value.rows}); gatework gives them all, stacked")
            raise ValueError(f"{what} is {self._describe(value)}, not the last layer's output "
                             f"sequence or the stacked final states; gatework runs the whole "
                             f"stack and gives only those")

    def _initial_states(self, first):
        """``initial_h`` and ``initial_h_input`` of the whole stack."""
        entries = self._initial
        if all(entry == "zeros" for entry in entries):
            return None, None
        kinds = {entry if entry == "zeros" else entry[0] for entry in entries}
        directions = first.directions
        if kinds == {"input"}:
            sources = {entry[1] for entry in entries}
            expected = [(k * directions, (k + 1) * directions) for k in range(len(entries))]
            rows = [entry[2] for entry in entries]
            if len(sources) == 1 and (rows == expected or (len(entries) == 1 and rows == [None])):
                return None, sources.pop()
            raise ValueError(f"the layers read their initial states from rows {rows} of "
                             f"{sorted(sources)}; gatework takes h0 as one input whose rows "
                             f"{expected} belong to the layers in order")
        if "input" not in kinds:
            constants = [entry[1] for entry in entries if entry != "zeros"]
            batch = constants[0].shape[1]
            stacked = [np.zeros((directions, batch, first.hidden_size)) if entry == "zeros"
                       else entry[1] for entry in entries]
            if any(state.shape != stacked[0].shape for state in stacked):
                raise ValueError("the layers' constant initial states differ in batch size")
            names = [entry[2] for entry in entries if entry != "zeros" and entry[2]]
            return np.concatenate(stacked), (names[0] if len(names) == 1 and
                                             len(entries) == 1 else None)
        raise ValueError("some layers read their initial state from a graph input and others "
                         "from constants or zeros; gatework takes h0 for every layer or none")


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

    initializers = [initializer("W", [swap_reset_update(c.weight_ih) for c in cells]),
                    initializer("R", [swap_reset_update(c.weight_hh) for c in cells])]
    if weights.bias:
        initializers.append(initializer("B", [
            np.concatenate([swap_reset_update(c.bias_ih), swap_reset_update(c.bias_hh)])
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
