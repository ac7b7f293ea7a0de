"""``GRU.from_onnx`` through the host API, against onnxruntime, and packaging rules."""

import subprocess
import sys

import numpy as np
import onnxruntime
import pytest

from gatework.golden.importers import onnx_gru_model
from gatework.host import GRU


def _run_onnxruntime(model, x, lengths, h0):
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x.astype(np.float32),
                              "sequence_lens": np.asarray(lengths, dtype=np.int32),
                              "initial_h": h0.astype(np.float32)})


@pytest.mark.parametrize("linear_before_reset", [True, False])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_from_onnx_matches_onnxruntime(direction, linear_before_reset):
    seed = 11
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    source = GRU(5, 7, bidirectional=direction == "bidirectional",
                 reverse=direction == "reverse", linear_before_reset=linear_before_reset,
                 device="numpy", seed=seed)
    model = onnx_gru_model(source.weights)
    steps, batch, dirs = 9, 4, 2 if direction == "bidirectional" else 1
    x = rng.standard_normal((steps, batch, 5))
    lengths = np.array([3, 9, 1, 6])
    h0 = rng.standard_normal((dirs, batch, 7)) * 0.5
    y, y_h = _run_onnxruntime(model, x, lengths, h0)
    # ONNX Y is (T, dirs, N, H); this API gives PyTorch's (T, N, dirs * H).
    expected = y.transpose(0, 2, 1, 3).reshape(steps, batch, dirs * 7)
    for device in ("numpy", "torch:cpu"):
        gru = GRU.from_onnx(model, device=device)
        assert gru.linear_before_reset is linear_before_reset
        output, h_n = gru(x, h0, lengths)
        assert output.shape == (steps, batch, dirs * 7)
        np.testing.assert_allclose(output, expected, atol=2e-5)
        np.testing.assert_allclose(h_n, y_h, atol=2e-5)
    golden_output, _ = GRU.from_onnx(model, device="golden")(x, h0, lengths)
    assert np.abs(golden_output - expected).max() < 5e-3


def test_from_onnx_layout_1_is_batch_first():
    source = GRU(3, 4, device="numpy", seed=2)
    gru = GRU.from_onnx(onnx_gru_model(source.weights, layout=1), device="numpy")
    assert gru.batch_first
    x = np.random.default_rng(2).standard_normal((2, 6, 3))   # (N, T, D)
    output, h_n = gru(x)
    reference, reference_h = source(x.transpose(1, 0, 2))
    # The ONNX file holds the weights in float32.
    np.testing.assert_allclose(output, reference.transpose(1, 0, 2), atol=1e-6)
    np.testing.assert_allclose(h_n, reference_h, atol=1e-6)


def test_from_onnx_refuses_the_other_form():
    model = onnx_gru_model(GRU(3, 4, device="numpy", seed=0).weights)
    with pytest.raises(ValueError, match="linear_before_reset=1"):
        GRU.from_onnx(model, linear_before_reset=False)


def _run_python(code, cwd):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd)


def test_host_imports_with_numpy_alone(tmp_path):
    result = _run_python("import sys, gatework.host, gatework.golden; "
                         "heavy = {'torch', 'onnx', 'onnxruntime', 'sklearn', 'serial'}; "
                         "print(sorted(heavy & set(sys.modules)))", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("generic", ["host", "golden", "hdl", "sim", "boards"])
def test_nothing_generic_at_the_top_of_site_packages(generic, tmp_path):
    result = _run_python(f"import importlib.util; "
                         f"print(importlib.util.find_spec({generic!r}))", tmp_path)
    assert result.stdout.strip() == "None"
    result = _run_python(f"import gatework.{generic}", tmp_path)
    assert result.returncode == 0, result.stderr
