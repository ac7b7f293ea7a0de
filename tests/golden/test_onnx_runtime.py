"""ONNX GRU semantics: the golden model on imported weights against onnxruntime.

onnxruntime's CPU GRU refuses ``layout=1`` (batch-major tensors), so that layout is checked
against ONNX's own reference evaluator instead, which ignores ``sequence_lens``.
"""

import numpy as np
import pytest
import onnxruntime as ort

from gatework.golden.gru import gru_float
from gatework.golden.importers import gru_from_onnx, onnx_gru_model


STEPS, BATCH, INPUTS, HIDDEN = 7, 5, 3, 6
# Unsorted, with a length-1 and a full-length sequence.
LENGTHS = np.array([4, 1, STEPS, 2, 6], dtype=np.int32)
DIRECTIONS = ["forward", "reverse", "bidirectional"]
# onnxruntime computes in float32 and gru_float in float64 from the same float32 weights and
# inputs; the differences measured here stay below 1e-6. 2e-5 leaves room for other CPUs' BLAS
# kernels while a wrong gate, bias or step shows as 1e-2 or more.
ATOL = 2e-5


def run_onnxruntime(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(["Y", "Y_h"], feeds)


def to_golden_layout(y, y_h, layout):
    """ONNX ``Y`` and ``Y_h`` as the golden model's ``(T, N, dirs * H)`` and ``(dirs, N, H)``.

    ONNX gives ``Y`` as ``(T, dirs, N, H)`` and ``Y_h`` as ``(dirs, N, H)``, or with
    ``layout=1`` as ``(N, T, dirs, H)`` and ``(N, dirs, H)``.
    """
    if layout:
        y, y_h = y.transpose(1, 2, 0, 3), y_h.transpose(1, 0, 2)
    steps, dirs, batch, hidden = y.shape
    return y.transpose(0, 2, 1, 3).reshape(steps, batch, dirs * hidden), y_h


def max_error(actual, expected):
    assert actual.shape == expected.shape
    return np.max(np.abs(actual - expected))


def random_inputs(rng, directions):
    x = rng.normal(size=(STEPS, BATCH, INPUTS)).astype(np.float32)
    h0 = rng.normal(size=(directions, BATCH, HIDDEN)).astype(np.float32)
    return x, h0


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_onnxruntime_matches_golden(linear_before_reset, direction, random_gru_weights, rng):
    weights = random_gru_weights(INPUTS, HIDDEN, direction=direction,
                                 linear_before_reset=linear_before_reset)
    model = onnx_gru_model(weights)
    imported = gru_from_onnx(model.SerializeToString())
    x, h0 = random_inputs(rng, imported.weights.num_directions)
    y, y_h = to_golden_layout(*run_onnxruntime(
        model, {"X": x, "sequence_lens": LENGTHS, "initial_h": h0}), layout=0)

    # Past its length a sequence's outputs are exactly zero in every direction, as in PyTorch's
    # padded packed sequences.
    for n, length in enumerate(LENGTHS):
        assert np.all(y[length:, n] == 0), f"sequence {n} of length {length}"
    expected_y, expected_h = gru_float(imported.weights, x, h0, LENGTHS)
    assert max_error(y, expected_y) <= ATOL
    assert max_error(y_h, expected_h) <= ATOL


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_onnxruntime_without_bias_and_optional_inputs(direction, random_gru_weights, rng):
    weights = random_gru_weights(INPUTS, HIDDEN, direction=direction, bias=False,
                                 linear_before_reset=False)
    model = onnx_gru_model(weights, with_sequence_lens=False, with_initial_h=False)
    imported = gru_from_onnx(model)
    assert not imported.weights.bias
    x, _ = random_inputs(rng, imported.weights.num_directions)
    y, y_h = to_golden_layout(*run_onnxruntime(model, {"X": x}), layout=0)
    expected_y, expected_h = gru_float(imported.weights, x)
    assert max_error(y, expected_y) <= ATOL
    assert max_error(y_h, expected_h) <= ATOL


def test_onnxruntime_refuses_layout_1(random_gru_weights):
    # When this starts failing, onnxruntime runs batch-major GRUs: add layout=1 to
    # test_onnxruntime_matches_golden.
    model = onnx_gru_model(random_gru_weights(INPUTS, HIDDEN), layout=1)
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the refusal is expected; keep its error log quiet
    with pytest.raises(Exception, match=r"layout == 1\) are not supported"):
        ort.InferenceSession(model.SerializeToString(), options,
                             providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_layout_1_matches_reference_evaluator(linear_before_reset, direction,
                                              random_gru_weights, rng):
    from onnx.reference import ReferenceEvaluator

    weights = random_gru_weights(INPUTS, HIDDEN, direction=direction,
                                 linear_before_reset=linear_before_reset)
    model = onnx_gru_model(weights, layout=1, with_sequence_lens=False)
    imported = gru_from_onnx(model)
    assert imported.batch_first
    x, h0 = random_inputs(rng, imported.weights.num_directions)
    outputs = ReferenceEvaluator(model).run(
        ["Y", "Y_h"], {"X": x.transpose(1, 0, 2), "initial_h": h0.transpose(1, 0, 2)})
    y, y_h = to_golden_layout(*outputs, layout=1)
    expected_y, expected_h = gru_float(imported.weights, x, h0)
    assert max_error(y, expected_y) <= ATOL
    assert max_error(y_h, expected_h) <= ATOL
