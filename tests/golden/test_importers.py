"""GRU weight importers: PyTorch, Keras and ONNX, against the frameworks' own semantics."""

import numpy as np
import pytest
import torch
import onnx

from gatework.golden.gru import GRUDirectionWeights, GRUWeights, gru_float
from gatework.golden.importers import (
    OnnxGRU, gru_from_onnx, gru_weights_from_keras, gru_weights_from_torch,
    gru_weights_to_keras, onnx_gru_model,
)


STEPS, BATCH, INPUTS, HIDDEN = 6, 4, 3, 5
# Unsorted, with a length-1 and a full-length sequence.
LENGTHS = np.array([3, STEPS, 1, 4])


def max_error(actual, expected):
    assert actual.shape == expected.shape
    return np.max(np.abs(actual - expected))


def assert_same_weights(actual, expected):
    assert actual.direction == expected.direction
    assert actual.linear_before_reset == expected.linear_before_reset
    assert actual.num_layers == expected.num_layers
    for actual_layer, expected_layer in zip(actual.layers, expected.layers):
        assert len(actual_layer) == len(expected_layer)
        for a, e in zip(actual_layer, expected_layer):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if getattr(e, name) is None:
                    assert getattr(a, name) is None, name
                else:
                    assert getattr(a, name).dtype == np.float64, name
                    np.testing.assert_array_equal(getattr(a, name), getattr(e, name), name)


# --- PyTorch -------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_first, with_h0, packed", [
    (False, False, False), (True, True, False), (False, True, True), (True, False, True)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_torch_gru_matches_torch(num_layers, bidirectional, bias, batch_first, with_h0, packed,
                                 seed):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(seed)
    module = torch.nn.GRU(INPUTS, HIDDEN, num_layers, bias=bias, batch_first=batch_first,
                          bidirectional=bidirectional).double()
    directions = 2 if bidirectional else 1
    x = torch.randn(STEPS, BATCH, INPUTS, dtype=torch.float64)
    h0 = (torch.randn(num_layers * directions, BATCH, HIDDEN, dtype=torch.float64)
          if with_h0 else None)
    module_x = x.transpose(0, 1) if batch_first else x
    with torch.no_grad():
        if packed:
            sequence = pack_padded_sequence(module_x, torch.as_tensor(LENGTHS),
                                            batch_first=batch_first, enforce_sorted=False)
            output, h_n = module(sequence, h0)
            output, _ = pad_packed_sequence(output, batch_first=batch_first, total_length=STEPS)
        else:
            output, h_n = module(module_x, h0)
    if batch_first:
        output = output.transpose(0, 1)

    weights = gru_weights_from_torch(module)
    assert weights.num_layers == num_layers and weights.bias == bias
    assert weights.direction == ("bidirectional" if bidirectional else "forward")
    assert weights.linear_before_reset
    golden_output, golden_h_n = gru_float(weights, x.numpy(),
                                          None if h0 is None else h0.numpy(),
                                          LENGTHS if packed else None)
    assert max_error(golden_output, output.numpy()) <= 1e-9
    assert max_error(golden_h_n, h_n.numpy()) <= 1e-9


@pytest.mark.parametrize("bias", [True, False])
def test_torch_gru_cell_matches_torch(bias, seed):
    torch.manual_seed(seed)
    cell = torch.nn.GRUCell(INPUTS, HIDDEN, bias=bias).double()
    x = torch.randn(BATCH, INPUTS, dtype=torch.float64)
    h = torch.randn(BATCH, HIDDEN, dtype=torch.float64)
    with torch.no_grad():
        expected = cell(x, h).numpy()

    weights = gru_weights_from_torch(cell)
    assert weights.num_layers == 1 and weights.direction == "forward" and weights.bias == bias
    output, h_n = gru_float(weights, x.numpy()[None], h.numpy()[None])
    assert max_error(output[0], expected) <= 1e-9
    assert max_error(h_n[0], expected) <= 1e-9


def test_torch_weights_are_float64_copies(seed):
    torch.manual_seed(seed)
    module = torch.nn.GRU(INPUTS, HIDDEN)
    weights = gru_weights_from_torch(module)
    cell = weights.layers[0][0]
    assert cell.weight_ih.dtype == np.float64
    np.testing.assert_array_equal(cell.weight_ih, module.weight_ih_l0.detach().double().numpy())
    # Training the module further must not change weights already taken from it.
    with torch.no_grad():
        module.weight_ih_l0.add_(1.0)
    assert not np.array_equal(cell.weight_ih, module.weight_ih_l0.detach().double().numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_gru_on_cuda(seed):
    torch.manual_seed(seed)
    module = torch.nn.GRU(INPUTS, HIDDEN, 2, bidirectional=True)
    expected = gru_weights_from_torch(module)
    assert_same_weights(gru_weights_from_torch(module.cuda()), expected)


@pytest.mark.parametrize("module, message", [
    (lambda: torch.nn.LSTM(INPUTS, HIDDEN), "torch.nn.GRU"),
    (lambda: torch.nn.Linear(INPUTS, HIDDEN), "torch.nn.GRUCell"),
    (lambda: np.zeros(3), "expected a torch.nn.GRU"),
])
def test_torch_rejects_other_modules(module, message):
    with pytest.raises(TypeError, match=message):
        gru_weights_from_torch(module())


def test_torch_rejects_projection():
    module = torch.nn.GRU(INPUTS, HIDDEN)
    # torch.nn.GRU refuses proj_size in its constructor; a subclass or a future version might
    # not, and the importer must not silently drop the projection.
    module.proj_size = 2
    with pytest.raises(ValueError, match="projections are not supported"):
        gru_weights_from_torch(module)


# --- Keras ---------------------------------------------------------------------------------

def keras_gru(kernel, recurrent_kernel, bias, x, h, reset_after):
    """Keras's GRU equations, written independently of the golden model; ``x`` ``(T, N, D)``."""
    hidden = recurrent_kernel.shape[0]
    zeros = np.zeros(3 * hidden)
    if bias is None:
        input_bias, recurrent_bias = zeros, zeros
    elif reset_after:
        input_bias, recurrent_bias = bias
    else:
        input_bias, recurrent_bias = bias, zeros
    kernel_z, kernel_r, kernel_h = np.split(recurrent_kernel, 3, axis=1)
    outputs = []
    for xt in x:
        x_z, x_r, x_h = np.split(xt @ kernel + input_bias, 3, axis=1)
        if reset_after:
            inner_z, inner_r, inner_h = np.split(h @ recurrent_kernel + recurrent_bias, 3, axis=1)
            z = 1 / (1 + np.exp(-(x_z + inner_z)))
            r = 1 / (1 + np.exp(-(x_r + inner_r)))
            hh = np.tanh(x_h + r * inner_h)
        else:
            z = 1 / (1 + np.exp(-(x_z + h @ kernel_z)))
            r = 1 / (1 + np.exp(-(x_r + h @ kernel_r)))
            hh = np.tanh(x_h + (r * h) @ kernel_h)
        h = z * h + (1 - z) * hh
        outputs.append(h)
    return np.stack(outputs), h


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_matches_keras_equations(reset_after, bias, random_gru_weights, rng):
    original = random_gru_weights(INPUTS, HIDDEN, linear_before_reset=reset_after, bias=bias)
    kernel, recurrent_kernel, keras_bias = gru_weights_to_keras(original)
    assert kernel.shape == (INPUTS, 3 * HIDDEN)
    assert recurrent_kernel.shape == (HIDDEN, 3 * HIDDEN)
    if bias:
        assert keras_bias.shape == ((2, 3 * HIDDEN) if reset_after else (3 * HIDDEN,))
    else:
        assert keras_bias is None

    weights = gru_weights_from_keras(kernel, recurrent_kernel, keras_bias,
                                     reset_after=reset_after)
    assert weights.linear_before_reset == reset_after
    for array, again in zip((kernel, recurrent_kernel, keras_bias),
                            gru_weights_to_keras(weights)):
        np.testing.assert_array_equal(again, array)
    if reset_after or not bias:
        assert_same_weights(weights, original)
    else:
        # One Keras bias holds the sum of both PyTorch biases, all in bias_ih.
        cell, original_cell = weights.layers[0][0], original.layers[0][0]
        np.testing.assert_allclose(cell.bias_ih, original_cell.bias_ih + original_cell.bias_hh,
                                   rtol=0, atol=1e-15)
        np.testing.assert_array_equal(cell.bias_hh, 0)

    x = rng.normal(size=(STEPS, BATCH, INPUTS))
    h0 = rng.normal(size=(BATCH, HIDDEN))
    expected_output, expected_h = keras_gru(kernel, recurrent_kernel, keras_bias, x, h0,
                                            reset_after)
    output, h_n = gru_float(weights, x, h0[None])
    assert max_error(output, expected_output) <= 1e-12
    assert max_error(h_n[0], expected_h) <= 1e-12
    # The original weights compute the same GRU, whichever way the biases were split.
    original_output, _ = gru_float(original, x, h0[None])
    assert max_error(output, original_output) <= 1e-12


@pytest.mark.parametrize("arrays, reset_after, message", [
    (((INPUTS, 3 * HIDDEN), (HIDDEN, 2 * HIDDEN), None), True, r"recurrent_kernel.*\(H, 3H\)"),
    (((INPUTS, 2 * HIDDEN), (HIDDEN, 3 * HIDDEN), None), True, r"kernel must have shape \(D, 15\)"),
    (((INPUTS, 3 * HIDDEN), (HIDDEN, 3 * HIDDEN), (3 * HIDDEN,)), True,
     r"bias must have shape \(2, 15\) with reset_after=True"),
    (((INPUTS, 3 * HIDDEN), (HIDDEN, 3 * HIDDEN), (2, 3 * HIDDEN)), False,
     r"bias must have shape \(15,\) with reset_after=False"),
])
def test_keras_rejects_wrong_shapes(arrays, reset_after, message):
    arrays = [None if shape is None else np.zeros(shape) for shape in arrays]
    with pytest.raises(ValueError, match=message):
        gru_weights_from_keras(*arrays, reset_after=reset_after)


def test_keras_export_needs_one_forward_layer(random_gru_weights):
    with pytest.raises(ValueError, match="one forward layer"):
        gru_weights_to_keras(random_gru_weights(INPUTS, HIDDEN, direction="bidirectional"))


# --- ONNX ----------------------------------------------------------------------------------

def float32_rounded(weights):
    """What ``weights`` become after a trip through a float32 ONNX model."""
    return weights.astype(np.float32).astype(np.float64)


def replace_inputs_by_initializers(model, values):
    """Make the graph inputs named in ``values`` initializers with those values."""
    from onnx import numpy_helper

    kept = [i for i in model.graph.input if i.name not in values]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(v, n) for n, v in values.items())
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_onnx_round_trip(linear_before_reset, direction, bias, layout, random_gru_weights):
    weights = random_gru_weights(INPUTS, HIDDEN, direction=direction, bias=bias,
                                 linear_before_reset=linear_before_reset)
    imported = gru_from_onnx(onnx_gru_model(weights, layout=layout))
    assert isinstance(imported, OnnxGRU)
    assert imported.node_name == "gru"
    assert imported.batch_first == bool(layout)
    assert imported.initial_h is None and imported.initial_h_input == "initial_h"
    assert imported.sequence_lens is None and imported.sequence_lens_input == "sequence_lens"
    assert_same_weights(imported.weights, float32_rounded(weights))


def test_onnx_without_optional_inputs(random_gru_weights):
    model = onnx_gru_model(random_gru_weights(INPUTS, HIDDEN), with_sequence_lens=False,
                           with_initial_h=False)
    imported = gru_from_onnx(model)
    assert imported.initial_h is None and imported.initial_h_input is None
    assert imported.sequence_lens is None and imported.sequence_lens_input is None


def test_onnx_from_path_and_bytes(random_gru_weights, tmp_path):
    model = onnx_gru_model(random_gru_weights(INPUTS, HIDDEN, direction="reverse"))
    path = tmp_path / "gru.onnx"
    onnx.save(model, path)
    expected = gru_from_onnx(model).weights
    for source in (path, str(path), model.SerializeToString()):
        assert_same_weights(gru_from_onnx(source).weights, expected)


@pytest.mark.parametrize("layout", [0, 1])
def test_onnx_constant_initial_state_and_lengths(layout, random_gru_weights, rng):
    weights = random_gru_weights(INPUTS, HIDDEN, direction="bidirectional")
    initial_h = rng.normal(size=(2, BATCH, HIDDEN)).astype(np.float32)
    model = replace_inputs_by_initializers(onnx_gru_model(weights, layout=layout), {
        "initial_h": initial_h.transpose(1, 0, 2) if layout else initial_h,
        "sequence_lens": LENGTHS.astype(np.int32)})
    imported = gru_from_onnx(model)
    assert imported.initial_h_input is None and imported.sequence_lens_input is None
    assert imported.initial_h.dtype == np.float64
    np.testing.assert_array_equal(imported.initial_h, initial_h)
    assert imported.sequence_lens.dtype == np.int64
    np.testing.assert_array_equal(imported.sequence_lens, LENGTHS)


def test_onnx_initializer_that_is_also_an_input(random_gru_weights, rng):
    # Before IR version 4 initializers had to be graph inputs too; such an input keeps the
    # initializer as a default the caller may override.
    weights = random_gru_weights(INPUTS, HIDDEN)
    initial_h = rng.normal(size=(1, BATCH, HIDDEN)).astype(np.float32)
    model = onnx_gru_model(weights)
    model.graph.initializer.append(onnx.numpy_helper.from_array(initial_h, "initial_h"))
    imported = gru_from_onnx(model)
    np.testing.assert_array_equal(imported.initial_h, initial_h)
    assert imported.initial_h_input == "initial_h"


def test_onnx_weights_from_constant_nodes(random_gru_weights):
    from onnx import helper

    weights = random_gru_weights(INPUTS, HIDDEN, direction="bidirectional")
    model = onnx_gru_model(weights)
    constants = [helper.make_node("Constant", [], [tensor.name], value=tensor)
                 for tensor in model.graph.initializer]
    nodes = constants + list(model.graph.node)
    del model.graph.initializer[:], model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    assert_same_weights(gru_from_onnx(model).weights, float32_rounded(weights))


def test_onnx_accepts_activation_names_in_any_case(random_gru_weights):
    weights = random_gru_weights(INPUTS, HIDDEN, direction="bidirectional")
    model = onnx_gru_model(weights)
    model.graph.node[0].attribute.append(onnx.helper.make_attribute(
        "activations", ["Sigmoid", "Tanh", "sigmoid", "TANH"]))
    assert_same_weights(gru_from_onnx(model).weights, float32_rounded(weights))


def two_gru_model(weights):
    model = onnx_gru_model(weights)
    second = onnx.helper.make_node("GRU", model.graph.node[0].input, ["Y2", "Y_h2"],
                                   name="second", hidden_size=HIDDEN,
                                   linear_before_reset=1)
    model.graph.node.append(second)
    model.graph.output.append(onnx.helper.make_tensor_value_info(
        "Y2", onnx.TensorProto.FLOAT, ["T", 1, "N", HIDDEN]))
    onnx.checker.check_model(model)
    return model


def test_onnx_chooses_among_several_nodes(random_gru_weights):
    weights = random_gru_weights(INPUTS, HIDDEN, linear_before_reset=False)
    model = two_gru_model(weights)
    with pytest.raises(ValueError, match=r"2 GRU nodes \['gru', 'second'\]; pass node="):
        gru_from_onnx(model)
    assert gru_from_onnx(model, node="gru").weights.linear_before_reset is False
    assert gru_from_onnx(model, node="second").weights.linear_before_reset is True
    with pytest.raises(ValueError, match="no GRU node named 'third'"):
        gru_from_onnx(model, node="third")


def test_onnx_rejects_graph_without_gru():
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], "identity",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])])
    with pytest.raises(ValueError, match="'identity' has no GRU node"):
        gru_from_onnx(helper.make_model(graph))


def with_attribute(model, name, value):
    model.graph.node[0].attribute.append(onnx.helper.make_attribute(name, value))
    return model


@pytest.mark.parametrize("name, value, message", [
    ("activations", ["Sigmoid", "Relu"], r"activations \['Sigmoid', 'Relu'\]; only the defaults"),
    ("activations", ["HardSigmoid", "Tanh"], "HardSigmoid"),
    ("clip", 3.0, "'clip'.*not supported"),
    ("activation_alpha", [0.5], "'activation_alpha'.*not supported"),
    ("activation_beta", [0.5], "'activation_beta'.*not supported"),
])
def test_onnx_rejects_unsupported_attributes(name, value, message, random_gru_weights):
    model = with_attribute(onnx_gru_model(random_gru_weights(INPUTS, HIDDEN)), name, value)
    with pytest.raises(ValueError, match=message):
        gru_from_onnx(model)


def test_onnx_rejects_inconsistent_hidden_size(random_gru_weights):
    model = onnx_gru_model(random_gru_weights(INPUTS, HIDDEN))
    attribute = next(a for a in model.graph.node[0].attribute if a.name == "hidden_size")
    attribute.i = HIDDEN + 1
    with pytest.raises(ValueError, match="hidden_size is 6"):
        gru_from_onnx(model)


def test_onnx_rejects_weights_from_graph_inputs(random_gru_weights):
    model = onnx_gru_model(random_gru_weights(INPUTS, HIDDEN))
    weight = model.graph.initializer[0]
    model.graph.input.append(onnx.helper.make_tensor_value_info(
        weight.name, weight.data_type, list(weight.dims)))
    del model.graph.initializer[0]
    with pytest.raises(ValueError, match="the weights must be initializers"):
        gru_from_onnx(model)


def test_onnx_rejects_other_sources():
    with pytest.raises(TypeError, match="ModelProto, a path or bytes"):
        gru_from_onnx(42)


def test_onnx_model_needs_one_layer():
    cell = GRUDirectionWeights(np.zeros((3 * HIDDEN, INPUTS)), np.zeros((3 * HIDDEN, HIDDEN)))
    stacked = GRUDirectionWeights(np.zeros((3 * HIDDEN, HIDDEN)), np.zeros((3 * HIDDEN, HIDDEN)))
    with pytest.raises(ValueError, match="one layer; these weights have 2"):
        onnx_gru_model(GRUWeights(((cell,), (stacked,))))
