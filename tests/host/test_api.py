"""The host API: PyTorch-shaped GRU, GRUCell, GLU, pack and unpack on every backend."""

import logging
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from gatework.host import GLU, GRU, GRUCell, SaturationWarning, pack, unpack
from gatework.host import backends
from gatework.host.backends import Backend, NumpyBackend


CUDA = torch.cuda.is_available()
# Every backend here; CUDA's where this machine has it (`gatework bench torch` says where the
# CUDA runs were last made).
DEVICES = ["golden", "numpy", "torch:cpu"] + (["torch:cuda"] if CUDA else [])
FLOAT32_DEVICES = [device for device in DEVICES if device.startswith("torch")]


def inputs(seed, *shape, scale=1.0):
    print(f"seed {seed}")
    return np.random.default_rng(seed).normal(0, scale, shape)


class SpyBackend(Backend):
    """The float64 reference, counting the calls that reach it."""

    name = "spy"

    def __init__(self):
        self.calls = 0
        self._numpy = NumpyBackend()

    def gru(self, *args):
        self.calls += 1
        return self._numpy.gru(*args)

    def glu(self, *args):
        self.calls += 1
        return self._numpy.glu(*args)


# --- backends agree --------------------------------------------------------------------------

CONFIGS = {
    "one layer": dict(num_layers=1),
    "two layers, bidirectional": dict(num_layers=2, bidirectional=True),
    "reverse, original form": dict(num_layers=1, reverse=True, linear_before_reset=False),
    "reverse, PyTorch form": dict(num_layers=1, reverse=True),
    "two layers, original form": dict(num_layers=2, linear_before_reset=False),
}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("ragged", [False, True])
def test_backends_agree(config, ragged):
    kwargs = CONFIGS[config]
    seed = 10 + list(CONFIGS).index(config) + 100 * ragged
    d, h, steps, batch = 5, 8, 12, 4
    x = inputs(seed, steps, batch, d)
    states = kwargs["num_layers"] * (2 if kwargs.get("bidirectional") else 1)
    h0 = inputs(seed + 1, states, batch, h, scale=0.5)
    lengths = [7, steps, 1, 10] if ragged else None
    results = {}
    for device in DEVICES:
        gru = GRU(d, h, seed=seed, device=device, **kwargs)
        assert gru.device == device
        results[device] = gru(x, h0, lengths)
    numpy_out, numpy_h_n = results["numpy"]
    assert numpy_out.shape == (steps, batch, h * (2 if kwargs.get("bidirectional") else 1))
    for device, tolerance in [(d, 1e-5) for d in FLOAT32_DEVICES] + [("golden", 5e-3)]:
        out, h_n = results[device]
        assert np.max(np.abs(out - numpy_out)) <= tolerance, device
        assert np.max(np.abs(h_n - numpy_h_n)) <= tolerance, device
    # Golden is fixed point: close to float, but not equal to it.
    assert np.any(results["golden"][0] != numpy_out)
    if ragged:
        for device in DEVICES:
            out = results[device][0]
            assert np.all(out[7:, 0] == 0) and np.all(out[1:, 2] == 0), device


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = GRU(3, 4, seed=1, device="numpy"), GRU(3, 4, seed=1), GRU(3, 4, seed=2)
    assert np.array_equal(a.weights.layers[0][0].weight_ih, b.weights.layers[0][0].weight_ih)
    assert not np.array_equal(a.weights.layers[0][0].weight_ih,
                              c.weights.layers[0][0].weight_ih)


# --- array kinds and shapes ------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_tensor_in_torch_tensor_out(device, dtype):
    gru = GRU(3, 4, seed=0, device=device)
    x = torch.from_numpy(inputs(1, 6, 2, 3)).to(dtype)
    h0 = torch.zeros(1, 2, 4, dtype=dtype)
    out, h_n = gru(x, h0)
    assert isinstance(out, torch.Tensor) and isinstance(h_n, torch.Tensor)
    assert out.dtype == h_n.dtype == dtype
    assert out.shape == (6, 2, 4) and h_n.shape == (1, 2, 4)
    expected, _ = GRU(3, 4, seed=0, device="numpy")(x.numpy().astype(np.float64))
    assert np.max(np.abs(out.numpy() - expected)) <= 5e-3


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype, out_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                              (np.int64, np.float64)])
def test_numpy_dtype_kept(device, dtype, out_dtype):
    gru = GRU(3, 4, seed=0, device=device)
    x = (inputs(2, 6, 2, 3) * 2).astype(dtype)
    out, h_n = gru(x)
    assert isinstance(out, np.ndarray) and isinstance(h_n, np.ndarray)
    assert out.dtype == h_n.dtype == out_dtype


@pytest.mark.parametrize("device", DEVICES)
def test_batch_first(device):
    x = inputs(3, 7, 5, 3)                                # time-major (T, N, D)
    gru = GRU(3, 4, 2, bidirectional=True, seed=3, device=device)
    gru_bf = GRU(3, 4, 2, batch_first=True, bidirectional=True, seed=3, device=device)
    assert gru_bf.batch_first
    lengths = [7, 2, 5, 1, 6]
    out_bf, h_n_bf = gru_bf(x.transpose(1, 0, 2), lengths=lengths)
    assert out_bf.shape == (5, 7, 8) and h_n_bf.shape == (4, 5, 4)
    out, h_n = gru(x, lengths=lengths)
    assert np.array_equal(out_bf, out.transpose(1, 0, 2))
    assert np.array_equal(h_n_bf, h_n)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched(device, batch_first):
    gru = GRU(3, 4, 2, batch_first=batch_first, bidirectional=True, seed=4, device=device)
    x = inputs(4, 6, 3)
    h0 = inputs(5, 4, 4, scale=0.5)                       # (layers * directions, H)
    out, h_n = gru(x, h0)
    assert out.shape == (6, 8) and h_n.shape == (4, 4)
    batched_out, batched_h_n = gru(x[None] if batch_first else x[:, None], h0[:, None])
    assert np.array_equal(out, batched_out[0] if batch_first else batched_out[:, 0])
    assert np.array_equal(h_n, batched_h_n[:, 0])


# --- from_torch ------------------------------------------------------------------------------

@pytest.mark.parametrize("device", ["torch", "numpy"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_gru_from_torch(device, batch_first):
    torch.manual_seed(7)
    print("seed 7")
    module = torch.nn.GRU(5, 6, 2, batch_first=batch_first, bidirectional=True).eval()
    gru = GRU.from_torch(module, device=device)
    torch_device = "torch:cuda" if CUDA else "torch:cpu"
    assert gru.device == {"torch": torch_device, "numpy": "numpy"}[device]
    assert gru.batch_first == batch_first
    assert (gru.input_size, gru.hidden_size, gru.num_layers) == (5, 6, 2)
    assert gru.bidirectional and gru.linear_before_reset
    x = torch.randn(3, 9, 5) if batch_first else torch.randn(9, 3, 5)
    h0 = torch.randn(4, 3, 6)
    with torch.no_grad():
        expected, expected_h_n = module(x, h0)
    out, h_n = gru(x, h0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h_n, expected_h_n, atol=1e-5, rtol=1e-5)


def test_gru_from_torch_batch_first_can_be_overridden():
    module = torch.nn.GRU(2, 3, batch_first=True)
    assert not GRU.from_torch(module, batch_first=False, device="numpy").batch_first


@pytest.mark.parametrize("device", ["torch", "numpy", "golden"])
def test_gru_cell_from_torch(device):
    torch.manual_seed(8)
    print("seed 8")
    module = torch.nn.GRUCell(4, 5).eval()
    cell = GRUCell.from_torch(module, device=device)
    assert (cell.input_size, cell.hidden_size, cell.bias) == (4, 5, True)
    x, h = torch.randn(3, 4), torch.randn(3, 5) * 0.5
    tolerance = 5e-3 if device == "golden" else 1e-5
    with torch.no_grad():
        for args in ((x, h), (x,), (x[0], h[0]), (x[0],)):
            expected = module(*args)
            result = cell(*args)
            assert result.shape == expected.shape and result.dtype == torch.float32
            torch.testing.assert_close(result, expected, atol=tolerance, rtol=0)


def test_from_torch_rejects_the_other_form_and_the_wrong_module():
    with pytest.raises(ValueError, match="linear_before_reset"):
        GRU.from_torch(torch.nn.GRU(2, 3), linear_before_reset=False)
    with pytest.raises(ValueError, match="linear_before_reset"):
        GRUCell.from_torch(torch.nn.GRUCell(2, 3), linear_before_reset=False)
    with pytest.raises(TypeError, match="use GRUCell.from_torch"):
        GRU.from_torch(torch.nn.GRUCell(2, 3))
    with pytest.raises(TypeError, match="takes a torch.nn.GRUCell, not GRU"):
        GRUCell.from_torch(torch.nn.GRU(2, 3))


# --- GLU -------------------------------------------------------------------------------------

@pytest.mark.parametrize("device, tolerance", [("golden", 1e-3), ("numpy", 1e-12),
                                               ("torch:cpu", 1e-6)])
@pytest.mark.parametrize("dim", [0, 1, -1, -3])
def test_glu_on_every_device(device, tolerance, dim):
    x = inputs(20 + dim, 4, 6, 8, scale=2.0)
    expected = F.glu(torch.from_numpy(x), dim).numpy()
    glu = GLU(dim, device=device)
    assert glu.device == device
    result = glu(x)
    assert result.shape == expected.shape and result.dtype == np.float64
    assert np.max(np.abs(result - expected)) <= tolerance
    tensor = glu(torch.from_numpy(x).to(torch.float32))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    assert np.max(np.abs(tensor.numpy() - expected)) <= max(tolerance, 1e-6)


def test_glu_errors_before_work():
    spy = SpyBackend()
    glu = GLU(1, device=spy)
    with pytest.raises(ValueError, match="size must be even"):
        glu(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="dim=1 is out of range"):
        glu(np.zeros(4))
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        glu(np.array([[1.0, np.nan]]).T)
    with pytest.raises(TypeError, match="dim must be an integer"):
        GLU(1.0)
    assert spy.calls == 0
    glu(np.zeros((2, 4)))
    assert spy.calls == 1


# --- pack / unpack ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
def test_pack_unpack_torch(dtype):
    lengths = torch.tensor([3, 1, 4])
    values = torch.arange(8 * 2).reshape(8, 2).to(dtype)
    padded = pack(values, lengths)
    assert isinstance(padded, torch.Tensor) and padded.dtype == dtype
    expected = pad_sequence(list(values.split(lengths.tolist())))
    assert torch.equal(padded, expected)
    restored = unpack(padded, lengths)
    assert isinstance(restored, torch.Tensor) and restored.dtype == dtype
    assert torch.equal(restored, values)
    # NumPy in, NumPy out; lengths may be a list.
    assert np.array_equal(pack(values.numpy(), [3, 1, 4]), expected.numpy())


# --- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, message", [
    (lambda g: g(np.zeros((2, 3, 4, 3))), ValueError, "x must be 3-D"),
    (lambda g: g(np.zeros(3)), ValueError, "x must be 3-D"),
    (lambda g: g(np.zeros((5, 2, 4))), ValueError, "x has 4 features.*input_size=3"),
    (lambda g: g(np.zeros((0, 2, 3))), ValueError, "x must hold at least one step"),
    (lambda g: g(np.zeros((5, 2, 3)), np.zeros((1, 2, 4))), ValueError,
     r"h0 must have shape \(2, 2, 4\)"),
    (lambda g: g(np.zeros((5, 2, 3)), np.zeros((2, 4))), ValueError,
     r"h0 must have shape \(2, 2, 4\)"),
    (lambda g: g(np.zeros((5, 3)), np.zeros((2, 2, 4))), ValueError,
     r"h0 must have shape \(2, 4\)"),
    (lambda g: g(np.zeros((5, 2, 3)), lengths=[5, 6]), ValueError,
     r"every length must be between 1 and the number of steps 5; got \[6\]"),
    (lambda g: g(np.zeros((5, 2, 3)), lengths=[0, 5]), ValueError,
     r"every length must be between 1 .*got \[0\]"),
    (lambda g: g(np.zeros((5, 2, 3)), lengths=[5]), ValueError,
     r"lengths must have shape \(2,\)"),
    (lambda g: g(np.zeros((5, 2, 3)), lengths=[2.5, 5]), ValueError, "lengths must be integers"),
    (lambda g: g(np.zeros((5, 3)), lengths=[5]), ValueError, "lengths needs a batch"),
    (lambda g: g(np.full((5, 2, 3), np.nan)), ValueError, "x contains 30 NaN"),
    (lambda g: g(np.zeros((5, 2, 3)), np.full((2, 2, 4), np.inf)), ValueError,
     "h0 contains 16 NaN or infinite"),
    (lambda g: g(np.array([["a"] * 3] * 5)), TypeError, "x must hold real numbers"),
])
def test_gru_errors_before_any_work(call, error, message):
    spy = SpyBackend()
    gru = GRU(3, 4, 2, seed=0, device=spy)
    assert gru.device == "spy"
    with pytest.raises(error, match=message):
        call(gru)
    assert spy.calls == 0
    gru(np.zeros((5, 2, 3)))          # and a valid call does reach the backend
    assert spy.calls == 1


def test_gru_cell_errors():
    cell = GRUCell(3, 4, seed=0, device="numpy")
    with pytest.raises(ValueError, match=r"h must have shape \(2, 4\)"):
        cell(np.zeros((2, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="x must be 2-D"):
        cell(np.zeros((1, 2, 3)))


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(device="gpu"), ValueError, "device must be one of"),
    (dict(device="torch:mps"), ValueError, "device must be one of"),
    (dict(device=None), ValueError, "device must be one of"),
    (dict(bidirectional=True, reverse=True), ValueError, "reverse=True is for a one-direction"),
    (dict(formats="q4.12"), TypeError, "formats must be a gatework.golden.NumberFormats"),
    (dict(fmt="4.12"), ValueError, "a fixed-point format is written"),
])
def test_gru_constructor_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        GRU(3, 4, **kwargs)


@pytest.mark.parametrize("name, value", [("input_size", 0), ("hidden_size", -1),
                                         ("num_layers", 1.5), ("input_size", True)])
def test_gru_size_errors(name, value):
    sizes = dict(input_size=3, hidden_size=4, num_layers=1)
    sizes[name] = value
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        GRU(**sizes)


@pytest.mark.skipif(CUDA, reason="CUDA is available here")
def test_torch_cuda_without_cuda():
    with pytest.raises(RuntimeError, match="device='torch:cuda'.*no CUDA"):
        GRU(3, 4, device="torch:cuda")
    with pytest.raises(RuntimeError, match="device='torch:cuda'"):
        GLU(device="torch:cuda")


# --- saturation warnings ---------------------------------------------------------------------

def test_golden_warns_on_saturation():
    gru = GRU(3, 4, seed=0, device="golden")
    x = np.full((5, 2, 3), 100.0)
    x[0, 0, 0] = 1.0                               # 29 of the 30 inputs are out of range
    with pytest.warns(SaturationWarning, match=r"29 of 30 inputs were outside q4\.12 "
                                               r"\[-8, 7\.99976\] and saturated"):
        out, _ = gru(x)
    assert np.all(np.isfinite(out)) and np.max(np.abs(out)) <= 1
    glu = GLU(device="golden")
    with pytest.warns(SaturationWarning, match="2 of 4 inputs were outside q4.12"):
        glu(np.array([[1.0, -100.0], [100.0, 0.5]]))


@pytest.mark.parametrize("device", DEVICES)
def test_no_warning_in_range(device):
    gru = GRU(3, 4, 2, bidirectional=True, seed=0, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gru(inputs(9, 20, 3, 3), inputs(10, 4, 3, 4, scale=0.5), lengths=[20, 4, 11])
        GLU(device=device)(inputs(11, 5, 8, scale=2.0))


def test_float_backends_do_not_warn_out_of_range():
    # Only the fixed-point backend has a range.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRU(3, 4, seed=0, device="numpy")(np.full((5, 2, 3), 100.0))


# --- device names and auto -------------------------------------------------------------------

@pytest.mark.parametrize("device, name", [("golden", "golden"), ("numpy", "numpy"),
                                          ("torch", "torch:cpu"), ("torch:cpu", "torch:cpu")])
def test_device_names(device, name):
    if device == "torch" and CUDA:
        name = "torch:cuda"
    assert GRU(2, 3, device=device).device == name
    assert GRUCell(2, 3, device=device).device == name
    assert GLU(device=device).device == name
    assert f"device={name!r}" in repr(GRU(2, 3, device=device))


@pytest.mark.skipif(CUDA, reason="auto picks CUDA where it exists")
def test_auto_picks_torch_cpu_and_logs_it_once(monkeypatch, caplog):
    monkeypatch.setattr(backends, "_announced", set())
    caplog.set_level(logging.INFO, logger="gatework")
    gru = GRU(2, 3)                            # device="auto" is the default
    assert gru.device == "torch:cpu"
    GRU(2, 3, device="auto")
    GLU(device="auto")
    messages = [r.getMessage() for r in caplog.records if r.name == "gatework"]
    assert messages == ["gatework runs on the torch:cpu backend (device='auto')"]
    assert caplog.records[0].levelno == logging.INFO
    # Another backend is announced once too, without the request when it names it.
    GRU(2, 3, device="numpy")
    GRU(2, 3, device="numpy")
    messages = [r.getMessage() for r in caplog.records if r.name == "gatework"]
    assert messages[1:] == ["gatework runs on the numpy backend"]


# --- torch: full float32, tensors on their device --------------------------------------------

@pytest.fixture
def tf32_allowed():
    """A process that allows TF32 in cuDNN (torch's default) and in cuBLAS."""
    with backends.tf32_allowed(torch, True):
        yield


@pytest.mark.parametrize("device", FLOAT32_DEVICES)
@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_torch_backend_is_full_float32_whatever_the_process_allows(device, linear_before_reset,
                                                                  tf32_allowed):
    # The reference must not lose 13 mantissa bits to a global switch (TF32 would put the
    # error near 1e-3; cuDNN in float32 measured 5e-6), and must leave the switch as it was.
    d, h, steps, batch = 64, 128, 30, 8
    x = inputs(40, steps, batch, d)
    gru = GRU(d, h, seed=40, linear_before_reset=linear_before_reset, device=device)
    expected, _ = GRU(d, h, seed=40, linear_before_reset=linear_before_reset,
                      device="numpy")(x)
    out, _ = gru(x)
    assert np.max(np.abs(out - expected)) <= 2e-5
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_tensor_in_cuda_tensor_out():
    gru = GRU(3, 4, 2, bidirectional=True, seed=41, device="torch:cuda")
    x = torch.from_numpy(inputs(41, 6, 2, 3)).cuda()
    out, h_n = gru(x, lengths=[6, 3])
    assert out.device.type == h_n.device.type == "cuda" and out.dtype == torch.float64
    expected, expected_h_n = GRU(3, 4, 2, bidirectional=True, seed=41, device="numpy")(
        x.cpu().numpy(), lengths=[6, 3])
    assert np.max(np.abs(out.cpu().numpy() - expected)) <= 1e-5
    assert np.max(np.abs(h_n.cpu().numpy() - expected_h_n)) <= 1e-5
