"""Golden GRU: the float model against PyTorch and a hand-written cell, the fixed-point model
against the float one and against the documented cell rule worked through in exact
arithmetic."""

from fractions import Fraction
import math

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gatework.golden.fixed import SaturationCounter
from gatework.golden.formats import DEFAULT_FORMATS
from gatework.golden.gru import (GRUDirectionWeights, GRUWeights, QuantizedGRUWeights,
                                 gru_cell_fixed, gru_fixed, gru_float, quantize_gru)


DATA = DEFAULT_FORMATS.data


def weights_of(module):
    """GRUWeights of a torch.nn.GRU, read from its parameters (independent of importers)."""
    suffixes = ("", "_reverse") if module.bidirectional else ("",)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if module.bias else (
        "weight_ih", "weight_hh")
    layers = []
    for k in range(module.num_layers):
        layers.append(tuple(
            GRUDirectionWeights(*(getattr(module, f"{name}_l{k}{suffix}").detach()
                                  .to(torch.float64).numpy().copy() for name in names))
            for suffix in suffixes))
    return GRUWeights(tuple(layers), linear_before_reset=True,
                      direction="bidirectional" if module.bidirectional else "forward")


def torch_gru(seed, *args, **kwargs):
    torch.manual_seed(seed)
    return torch.nn.GRU(*args, **kwargs).to(torch.float64).eval()


# --- float model against PyTorch -------------------------------------------------------------

T, N, D, H = 9, 4, 5, 6

VARIANTS = {
    # name: (h0 given, lengths)
    "full": (False, None),
    "h0": (True, None),
    "ragged": (False, [T, 3, 1, T - 2]),          # unsorted, one sequence full
    "ragged_short_h0": (True, [4, T - 1, 2, 6]),  # unsorted, none full: padding to T
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_gru_float_equals_torch(num_layers, bidirectional, batch_first, variant):
    seed = 100 * num_layers + 10 * bidirectional + 2 * batch_first + list(VARIANTS).index(variant)
    print(f"seed {seed}")
    with_h0, lengths = VARIANTS[variant]
    module = torch_gru(seed, D, H, num_layers, batch_first=batch_first,
                       bidirectional=bidirectional)
    directions = 2 if bidirectional else 1
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(T, N, D, generator=generator, dtype=torch.float64)     # time-major
    h0 = (torch.randn(num_layers * directions, N, H, generator=generator, dtype=torch.float64)
          if with_h0 else None)
    x_in = x.transpose(0, 1) if batch_first else x
    with torch.no_grad():
        if lengths is None:
            expected, expected_h_n = module(x_in, h0)
        else:
            packed = pack_padded_sequence(x_in, torch.tensor(lengths), batch_first=batch_first,
                                          enforce_sorted=False)
            out, expected_h_n = module(packed, h0)
            expected, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    if batch_first:
        expected = expected.transpose(0, 1)
    output, h_n = gru_float(weights_of(module), x.numpy(),
                            None if h0 is None else h0.numpy(), lengths)
    assert output.shape == (T, N, directions * H)
    assert h_n.shape == (num_layers * directions, N, H)
    assert np.max(np.abs(output - expected.numpy())) <= 1e-9
    assert np.max(np.abs(h_n - expected_h_n.numpy())) <= 1e-9


def test_gru_float_without_bias_equals_torch():
    seed = 5
    print(f"seed {seed}")
    module = torch_gru(seed, D, H, 2, bias=False, bidirectional=True)
    x = torch.randn(T, N, D, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    with torch.no_grad():
        expected, expected_h_n = module(x)
    weights = weights_of(module)
    assert not weights.bias
    output, h_n = gru_float(weights, x.numpy())
    assert np.max(np.abs(output - expected.numpy())) <= 1e-9
    assert np.max(np.abs(h_n - expected_h_n.numpy())) <= 1e-9


# --- float model, linear_before_reset=False, against a plain implementation ------------------

def reference_gru_original_form(cell, x, h0, lengths, reverse):
    """The original GRU (ONNX default), one sequence and one step at a time."""
    w_ir, w_iz, w_in = np.split(cell.weight_ih, 3)
    w_hr, w_hz, w_hn = np.split(cell.weight_hh, 3)
    b_ir, b_iz, b_in = np.split(cell.bias_ih, 3)
    b_hr, b_hz, b_hn = np.split(cell.bias_hh, 3)
    steps, batch, _ = x.shape
    output = np.zeros((steps, batch, cell.hidden_size))
    h_n = np.zeros((batch, cell.hidden_size))
    for b in range(batch):
        h = h0[b].copy()
        order = range(lengths[b])
        for t in (reversed(order) if reverse else order):
            xt = x[t, b]
            r = 1 / (1 + np.exp(-(w_ir @ xt + b_ir + w_hr @ h + b_hr)))
            z = 1 / (1 + np.exp(-(w_iz @ xt + b_iz + w_hz @ h + b_hz)))
            n = np.tanh(w_in @ xt + b_in + w_hn @ (r * h) + b_hn)
            h = (1 - z) * n + z * h
            output[t, b] = h
        h_n[b] = h
    return output, h_n


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_gru_float_original_form_equals_plain_implementation(direction):
    seed = 17 + (direction == "reverse")
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    d, h, steps, batch = 3, 5, 7, 4
    scale = 1 / np.sqrt(h)
    cell = GRUDirectionWeights(rng.uniform(-scale, scale, (3 * h, d)),
                               rng.uniform(-scale, scale, (3 * h, h)),
                               rng.uniform(-scale, scale, 3 * h),
                               rng.uniform(-scale, scale, 3 * h))
    x = rng.normal(0, 1.5, (steps, batch, d))
    h0 = rng.normal(0, 0.5, (1, batch, h))
    lengths = np.array([5, steps, 1, 3])
    expected, expected_h_n = reference_gru_original_form(cell, x, h0[0], lengths,
                                                         direction == "reverse")
    weights = GRUWeights(((cell,),), linear_before_reset=False, direction=direction)
    output, h_n = gru_float(weights, x, h0, lengths)
    assert np.max(np.abs(output - expected)) <= 1e-12
    assert np.max(np.abs(h_n[0] - expected_h_n)) <= 1e-12
    # The two forms differ on the same weights: the test can tell them apart.
    other, _ = gru_float(GRUWeights(((cell,),), True, direction), x, h0, lengths)
    assert np.max(np.abs(other - expected)) > 1e-3


# --- fixed-point model -----------------------------------------------------------------------

def random_weights(rng, input_size, hidden, num_layers, direction, linear_before_reset):
    scale = 1 / np.sqrt(hidden)
    directions = 2 if direction == "bidirectional" else 1
    layers = []
    for k in range(num_layers):
        inputs = input_size if k == 0 else hidden * directions
        layers.append(tuple(
            GRUDirectionWeights(rng.uniform(-scale, scale, (3 * hidden, inputs)),
                                rng.uniform(-scale, scale, (3 * hidden, hidden)),
                                rng.uniform(-scale, scale, 3 * hidden),
                                rng.uniform(-scale, scale, 3 * hidden))
            for _ in range(directions)))
    return GRUWeights(tuple(layers), linear_before_reset, direction)


@pytest.mark.parametrize("linear_before_reset", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_gru_fixed_lengths(direction, num_layers, linear_before_reset):
    seed = 40 + 3 * num_layers + 7 * linear_before_reset + len(direction)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    steps, batch, hidden = 8, 5, 4
    weights = random_weights(rng, 3, hidden, num_layers, direction, linear_before_reset)
    qweights = quantize_gru(weights)
    x = DATA.quantize(rng.normal(0, 1, (steps, batch, 3)))
    h0 = DATA.quantize(rng.normal(0, 0.5, (num_layers * weights.num_directions, batch, hidden)))
    lengths = np.array([3, steps, 1, 6, 7])
    output, h_n = gru_fixed(qweights, x, h0, lengths)
    assert output.dtype == h_n.dtype == np.int64
    valid = np.arange(steps)[:, None] < lengths[None, :]
    assert np.all(output[~valid] == 0)
    assert np.all(np.any(output[valid] != 0, axis=-1))   # and the valid steps are not zero
    last = num_layers * weights.num_directions - weights.num_directions   # last layer's states
    for b, length in enumerate(lengths):
        if direction == "bidirectional":
            assert np.array_equal(h_n[last, b], output[length - 1, b, :hidden])
            assert np.array_equal(h_n[last + 1, b], output[0, b, hidden:])
        elif direction == "reverse":
            assert np.array_equal(h_n[last, b], output[0, b])
        else:
            assert np.array_equal(h_n[last, b], output[length - 1, b])
    # A sequence's results depend on its own steps only: running it alone, cut to its
    # length, gives the same codes.
    b = 0
    alone, alone_h_n = gru_fixed(qweights, x[:lengths[b], b:b + 1], h0[:, b:b + 1])
    assert np.array_equal(alone[:, 0], output[:lengths[b], b])
    assert np.array_equal(alone_h_n[:, 0], h_n[:, b])


def test_gru_fixed_close_to_float_on_pytorch_gru():
    seed = 2024
    print(f"seed {seed}")
    module = torch_gru(seed, 64, 64)
    weights = weights_of(module)
    x = np.random.default_rng(seed).normal(0, 1, (100, 16, 64))
    expected, expected_h_n = gru_float(weights, x)
    counter = SaturationCounter()
    qweights = quantize_gru(weights, DEFAULT_FORMATS, counter)
    output, h_n = gru_fixed(qweights, DATA.quantize(x, counter, "inputs"), counter=counter)
    error = np.abs(DATA.to_float(output) - expected)
    h_error = np.abs(DATA.to_float(h_n) - expected_h_n)
    print(f"fixed vs float, D=H=64 T=100 N=16: max {error.max():.3e}, mean {error.mean():.3e}, "
          f"h_n max {h_error.max():.3e}")
    # Measured (seed 2024): max 9.4e-4, mean 1.5e-4; h_n max 6.4e-4.
    assert error.max() <= 5e-3
    assert error.mean() <= 1e-3
    assert h_error.max() <= 5e-3
    assert counter.total == 0


def test_gru_fixed_is_deterministic():
    seed = 99
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    weights = random_weights(rng, 6, 8, 2, "bidirectional", True)
    x = DATA.quantize(rng.normal(0, 2, (12, 3, 6)))
    x_before = x.copy()
    first = gru_fixed(quantize_gru(weights), x, lengths=[12, 5, 9])
    second = gru_fixed(quantize_gru(weights), x, lengths=[12, 5, 9])
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert np.array_equal(x, x_before)       # the input is not modified
    assert np.any(first[0] != 0)


# --- one fixed-point cell step, worked through in exact arithmetic ---------------------------

def to_code(value, fmt):
    """R(value -> fmt) on an exact rational: floor(value * 2**F + 1/2), saturated."""
    code = math.floor(value * 2 ** fmt.fraction_bits + Fraction(1, 2))
    return min(max(code, fmt.min_int), fmt.max_int)


def real(code, fmt):
    return Fraction(int(code), 2 ** fmt.fraction_bits)


def hand_cell(w_ih, w_hh, b_ih, b_hh, x, h, linear_before_reset, formats=DEFAULT_FORMATS):
    """The module docstring's fixed-point cell for D = H = 1, from integer codes.

    Every value is an exact rational: products and sums are exact, and each R() rounds the
    exact value once, so no fraction-bit bookkeeping is needed here.
    """
    data, weight, bias = formats.data, formats.weight, formats.bias
    preact, act, table = formats.preactivation, formats.activation, formats.table

    def sigmoid(value):
        return real(int(table.sigmoid(to_code(value, preact))), act)

    def tanh(value):
        return real(int(table.tanh(to_code(value, preact))), act)

    x, h = real(x, data), real(h, data)
    gi = [real(w, weight) * x + real(b, bias) for w, b in zip(w_ih, b_ih)]
    gh = [real(w, weight) * h + real(b, bias) for w, b in zip(w_hh, b_hh)]
    r = sigmoid(gi[0] + gh[0])
    z = sigmoid(gi[1] + gh[1])
    if linear_before_reset:
        hn = real(to_code(gh[2], preact), preact)
        n = tanh(gi[2] + r * hn)
    else:
        rh = real(to_code(r * h, data), data)
        n = tanh(gi[2] + real(w_hh[2], weight) * rh + real(b_hh[2], bias))
    return to_code(n + z * (h - n), data)


def one_lsb_cases():
    # Tiny integer codes: every product and sum is a few lsb, so the roundings are mostly ties
    # and near-ties.
    yield [3, -2, 5], [-7, 1, 4], [1, -1, 2], [0, 3, -2], 3, -5
    yield [1, 1, 1], [1, 1, 1], [0, 0, 0], [0, 0, 0], 1, 1
    yield [-1, 2, -3], [4, -5, 6], [-7, 8, -9], [10, -11, 12], -13, 14
    # Small real integers: weights of -1, 0 and 1, inputs and biases of a few units.
    one_w = 1 << DEFAULT_FORMATS.weight.fraction_bits
    one_d = 1 << DATA.fraction_bits
    yield [one_w, -one_w, one_w], [0, one_w, -one_w], [one_d, 0, -one_d], [0, -one_d, one_d], \
        one_d, -one_d
    yield [-one_w, one_w, -one_w], [one_w, 0, one_w], [0, one_d, 0], [-one_d, 0, 0], \
        -2 * one_d, 3 * one_d


def random_cases(count, seed):
    rng = np.random.default_rng(seed)
    w, d = DEFAULT_FORMATS.weight, DEFAULT_FORMATS.data
    for _ in range(count):
        # Spread over every magnitude, saturating ones included.
        w_scale, d_scale = 2 ** rng.integers(0, 16), 2 ** rng.integers(0, 16)
        codes = lambda fmt, scale, n: np.clip(rng.integers(-scale, scale + 1, n),  # noqa: E731
                                              fmt.min_int, fmt.max_int).tolist()
        yield (codes(w, w_scale, 3), codes(w, w_scale, 3), codes(d, d_scale, 3),
               codes(d, d_scale, 3), codes(d, d_scale, 1)[0], codes(d, d_scale, 1)[0])


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_gru_cell_fixed_matches_hand_computation(linear_before_reset):
    seed = 321
    print(f"seed {seed}")
    cases = list(one_lsb_cases()) + list(random_cases(300, seed))
    extreme = (DATA.max_int, DATA.max_int, DATA.max_int)
    cases.append(([32767] * 3, [32767] * 3, extreme, extreme, DATA.max_int, DATA.max_int))
    cases.append(([-32768] * 3, [32767] * 3, extreme, extreme, DATA.min_int, DATA.max_int))
    for w_ih, w_hh, b_ih, b_hh, x, h in cases:
        cell = GRUDirectionWeights(np.array(w_ih, dtype=np.int64)[:, None],
                                   np.array(w_hh, dtype=np.int64)[:, None],
                                   np.array(b_ih, dtype=np.int64), np.array(b_hh, dtype=np.int64))
        expected = hand_cell(w_ih, w_hh, b_ih, b_hh, x, h, linear_before_reset)
        result = gru_cell_fixed(cell, np.array([[x]]), np.array([[h]]), linear_before_reset,
                                DEFAULT_FORMATS)
        assert result.tolist() == [[expected]], (w_ih, w_hh, b_ih, b_hh, x, h)
        # The same step through the whole-sequence model, one step long.
        qweights = QuantizedGRUWeights(GRUWeights(((cell,),), linear_before_reset),
                                       DEFAULT_FORMATS)
        output, h_n = gru_fixed(qweights, np.array([[[x]]]), np.array([[[h]]]))
        assert output.tolist() == h_n.tolist() == [[[expected]]]
    # The cases reach far into both halves of the data range, with many values between.
    results = {hand_cell(*case, linear_before_reset) for case in cases}
    print(f"{len(results)} distinct results in [{min(results)}, {max(results)}]")
    assert min(results) < -20000 and max(results) > 20000 and len(results) > 100
