"""Whole ONNX graphs as users bring them: ``torch.onnx.export`` of ``nn.GRU``, both exporters.

Each file is imported whole with ``GRU.from_onnx`` and run with ``gatework run``; it must
equal torch to 1e-5 on the float64 reference and equal ``GRU.from_torch`` of the same module
bit for bit on the golden model. Graphs with operators the importer does not understand must
be refused with an error naming them. ONNX's own GRU operator cases, whose weights are graph
inputs, are imported through ``inputs=``.
"""

import contextlib
import io
import itertools
import warnings

import numpy as np
import onnx
import pytest
import torch

from gatework.golden.importers import gru_from_onnx
from gatework.host import GRU
from gatework.host.tools.cli import main


INPUT_SIZE, HIDDEN_SIZE = 5, 6
# Exported with one shape, run with another: the import is of the model, not of the trace.
EXPORT_STEPS, EXPORT_BATCH = 4, 3
RUN_STEPS, RUN_BATCH = 7, 2


@contextlib.contextmanager
def quiet_exporter():
    """torch's exporters warn about their own internals and print progress; neither is ours."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def export(module, path, dynamo, with_h0, dynamic_shapes=False):
    """``torch.onnx.export`` as a user calls it; returns the path."""
    batch_axis = 0 if module.batch_first else 1
    shape = [EXPORT_STEPS, EXPORT_BATCH]
    if module.batch_first:
        shape.reverse()
    x = torch.randn(*shape, module.input_size)
    states = module.num_layers * (2 if module.bidirectional else 1)
    args = (x, torch.randn(states, EXPORT_BATCH, module.hidden_size)) if with_h0 else (x,)
    names = ["x", "h0"][:len(args)]
    options = {}
    if dynamo and dynamic_shapes:
        batch = torch.export.Dim("batch")
        options["dynamic_shapes"] = ({batch_axis: batch}, {1: batch})[:len(args)]
    elif not dynamo:
        options["dynamic_axes"] = {"x": {0: "x0", 1: "x1"}, "h0": {1: "batch"}}
        options["dynamic_axes"] = {name: options["dynamic_axes"][name] for name in names}
    with quiet_exporter():
        torch.onnx.export(module, args, str(path), input_names=names,
                          output_names=["y", "h_n"], dynamo=dynamo, **options)
    return path


def torch_gru(seed, batch_first, bidirectional, num_layers, bias):
    torch.manual_seed(seed)
    return torch.nn.GRU(INPUT_SIZE, HIDDEN_SIZE, num_layers, bias=bias, batch_first=batch_first,
                        bidirectional=bidirectional).eval()


def run_inputs(module, seed):
    rng = np.random.default_rng(seed)
    shape = (RUN_BATCH, RUN_STEPS) if module.batch_first else (RUN_STEPS, RUN_BATCH)
    states = module.num_layers * (2 if module.bidirectional else 1)
    x = rng.standard_normal(shape + (INPUT_SIZE,)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((states, RUN_BATCH, HIDDEN_SIZE))).astype(np.float32)
    return x, h0


MATRIX = list(itertools.product([False, True], [False, True], [1, 2, 3], [True, False]))


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("batch_first, bidirectional, num_layers, bias", MATRIX)
def test_torch_export_imports_whole(exporter, batch_first, bidirectional, num_layers, bias,
                                    tmp_path, capsys):
    # h0 passed to the export in half the cells, alternating so that every exporter, layer
    # count and direction sees both.
    with_h0 = (num_layers + bias + bidirectional) % 2 == 0
    seed = MATRIX.index((batch_first, bidirectional, num_layers, bias))
    print(f"seed {seed}, h0 exported: {with_h0}")
    module = torch_gru(seed, batch_first, bidirectional, num_layers, bias)
    path = export(module, tmp_path / "gru.onnx", exporter == "dynamo", with_h0)
    x, h0 = run_inputs(module, seed)

    imported = GRU.from_onnx(path, device="numpy")
    assert (imported.num_layers, imported.bidirectional, imported.bias,
            imported.batch_first) == (num_layers, bidirectional, bias, batch_first)
    with torch.no_grad():
        expected, expected_h = module(torch.from_numpy(x), torch.from_numpy(h0))
    output, h_n = imported(x, h0)
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(h_n, expected_h.numpy(), atol=1e-5, rtol=0)

    golden, golden_h = GRU.from_onnx(str(path), device="golden")(x, h0)
    reference, reference_h = GRU.from_torch(module, device="golden")(x, h0)
    np.testing.assert_array_equal(golden, reference)
    np.testing.assert_array_equal(golden_h, reference_h)

    # The command line, without h0: the model's initial state is then zeros, as in torch.
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(path), str(tmp_path / "x.npy"), "--device", "golden",
                 "-o", str(tmp_path / "out.npy")]) == 0
    reference, reference_h = GRU.from_torch(module, device="golden")(x)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), reference)
    np.testing.assert_array_equal(np.load(tmp_path / "out.h_n.npy"), reference_h)


@pytest.mark.parametrize("batch_first", [False, True])
def test_dynamo_export_with_a_dynamic_batch(batch_first, tmp_path):
    # With dynamic shapes the exporter computes the Reshape's target from Shape, Slice and
    # Mul nodes instead of writing a constant.
    module = torch_gru(7, batch_first, False, 2, True)
    path = export(module, tmp_path / "gru.onnx", True, False, dynamic_shapes=True)
    x, _ = run_inputs(module, 7)
    with torch.no_grad():
        expected, expected_h = module(torch.from_numpy(x))
    output, h_n = GRU.from_onnx(path, device="numpy")(x)
    np.testing.assert_allclose(output, expected.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(h_n, expected_h.numpy(), atol=1e-5, rtol=0)


def test_export_records_the_graph_inputs(tmp_path):
    module = torch_gru(3, True, True, 2, True)
    imported = gru_from_onnx(export(module, tmp_path / "gru.onnx", False, True))
    assert imported.input_name == "x" and imported.initial_h_input == "h0"
    assert imported.batch_first and imported.weights.num_layers == 2
    assert len(imported.node_names) == 2


class GRUThenLinear(torch.nn.Module):
    """A classifier as users write one: the GRU's last state through a Linear layer."""

    def __init__(self):
        super().__init__()
        self.gru = torch.nn.GRU(INPUT_SIZE, HIDDEN_SIZE, batch_first=True)
        self.fc = torch.nn.Linear(HIDDEN_SIZE, 2)

    def forward(self, x):
        _, h_n = self.gru(x)
        return self.fc(h_n[-1])


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_a_layer_after_the_gru_is_refused_by_name(exporter, tmp_path):
    torch.manual_seed(0)
    model = GRUThenLinear().eval()
    path = tmp_path / "classifier.onnx"
    with quiet_exporter():
        torch.onnx.export(model, (torch.randn(2, 4, INPUT_SIZE),), str(path),
                          input_names=["x"], output_names=["logits"],
                          dynamo=exporter == "dynamo")
    with pytest.raises(ValueError,
                       match=r"graph output 'logits' comes from Gemm node .*pass node="):
        GRU.from_onnx(path)
    # node= takes the GRU node alone, as the message says.
    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "GRU"]
    gru = GRU.from_onnx(path, node=names[0], batch_first=True, device="golden")
    x = np.random.default_rng(0).standard_normal((2, 4, INPUT_SIZE))
    np.testing.assert_array_equal(gru(x)[1], GRU.from_torch(model.gru, device="golden")(x)[1])


def relu_before_gru():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    initializers = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
                    for name, shape in (("W", (1, 3 * HIDDEN_SIZE, INPUT_SIZE)),
                                        ("R", (1, 3 * HIDDEN_SIZE, HIDDEN_SIZE)))]
    nodes = [helper.make_node("Relu", ["X"], ["X_relu"], name="the_relu"),
             helper.make_node("GRU", ["X_relu", "W", "R"], ["Y", "Y_h"], name="gru",
                              hidden_size=HIDDEN_SIZE)]
    graph = helper.make_graph(
        nodes, "relu_gru", [helper.make_tensor_value_info("X", TensorProto.FLOAT,
                                                          ["T", "N", INPUT_SIZE])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "N", HIDDEN_SIZE])],
        initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


def test_an_operator_before_the_gru_is_refused_by_name(tmp_path):
    model = relu_before_gru()
    with pytest.raises(ValueError, match="X of GRU node 'gru' comes from Relu node 'the_relu'"):
        gru_from_onnx(model)
    path = tmp_path / "relu.onnx"
    onnx.save(model, path)
    x = np.zeros((2, 1, INPUT_SIZE))
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(path), str(tmp_path / "x.npy")]) == 2


def onnx_operator_cases():
    """ONNX's own GRU operator cases: (name, node, inputs, outputs), regenerated."""
    from onnx.backend.test.case.node import gru as cases

    recorded = []
    original = cases.expect
    cases.expect = lambda node, inputs, outputs, name, **_: recorded.append(
        (name, node, inputs, outputs))
    try:
        for name in sorted(dir(cases.GRU)):
            if name.startswith("export"):
                getattr(cases.GRU, name)()
    finally:
        cases.expect = original
    return recorded


def test_weights_given_as_graph_inputs():
    from onnx import helper

    cases = onnx_operator_cases()
    assert len(cases) >= 6
    for name, node, arrays, expected in cases:
        print(name)
        values = dict(zip(node.input, arrays))
        model = helper.make_model(helper.make_graph(
            [node], name,
            [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(values[n].shape))
             for n in node.input if n],
            [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
             for n in node.output if n]))
        with pytest.raises(ValueError, match="inputs="):
            GRU.from_onnx(model)
        weights = {n: values[n] for n in ("W", "R", "B") if n in values}
        gru = GRU.from_onnx(model, inputs=weights, device="numpy")
        output, h_n = gru(values["X"])
        y_h = expected[-1]
        if gru.batch_first:
            y_h = y_h.transpose(1, 0, 2)     # layout 1 gives Y_h as (N, dirs, H)
        np.testing.assert_allclose(h_n, y_h, atol=1e-5, rtol=0)
        if len(expected) == 2:
            y = expected[0]
            if not gru.batch_first:          # (T, dirs, N, H) -> (T, N, dirs * H)
                y = y.transpose(0, 2, 1, 3)
            np.testing.assert_allclose(output, y.reshape(output.shape), atol=1e-5, rtol=0)


def test_inputs_must_name_graph_inputs():
    model = relu_before_gru()
    with pytest.raises(ValueError, match=r"\['Q'\], which are not inputs"):
        gru_from_onnx(model, inputs={"Q": np.zeros(1)})


@pytest.mark.parametrize("content, message", [
    (b"", "holds no ONNX graph"),
    (b"this is not protobuf \xff\xff\xff", "not an ONNX model, or it is truncated or corrupt"),
])
def test_unreadable_files(content, message, tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        gru_from_onnx(path)


def test_a_truncated_export(tmp_path):
    path = export(torch_gru(1, False, False, 1, True), tmp_path / "gru.onnx", False, False)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=f"{path}.*truncated or corrupt"):
        gru_from_onnx(path)


def test_a_graph_that_declares_no_shapes():
    from onnx import TensorProto, helper, numpy_helper

    source = GRU(3, 4, bias=False, device="numpy", seed=9)
    cell = source.weights.layers[0][0]
    weights = {"W": cell.weight_ih, "R": cell.weight_hh}
    # ONNX orders the gates z | r | h, this project r | z | n.
    reordered = {name: np.concatenate([w[4:8], w[:4], w[8:]])[None].astype(np.float32)
                 for name, w in weights.items()}
    graph = helper.make_graph(
        [helper.make_node("GRU", ["X", "W", "R"], ["Y", "Y_h"], hidden_size=4,
                          linear_before_reset=1)], "bare",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(array, name) for name, array in reordered.items()])
    x = np.random.default_rng(9).standard_normal((5, 2, 3))
    gru = GRU.from_onnx(helper.make_model(graph), device="numpy")
    np.testing.assert_allclose(gru(x)[1], source(x)[1], atol=1e-6, rtol=0)
