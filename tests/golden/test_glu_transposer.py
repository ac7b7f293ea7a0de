"""Golden GLU (float and fixed point) and the sequence transposer, against PyTorch."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence, pad_sequence

from gatework.golden.fixed import SaturationCounter
from gatework.golden.formats import DEFAULT_FORMATS
from gatework.golden.glu import glu_fixed, glu_float
from gatework.golden.transposer import pack, unpack


DATA = DEFAULT_FORMATS.data


# --- GLU -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 6, 8), (2, 4, 6, 10)])
def test_glu_float_equals_torch(shape):
    seed = sum(shape)
    print(f"seed {seed}")
    x = np.random.default_rng(seed).normal(0, 3, shape)
    for dim in range(-len(shape), len(shape)):
        expected = F.glu(torch.from_numpy(x), dim).numpy()
        result = glu_float(x, dim)
        assert result.shape == expected.shape
        np.testing.assert_allclose(result, expected, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("function", [glu_float, glu_fixed])
def test_glu_rejects_odd_sizes_and_bad_dims(function):
    x = np.zeros((4, 5, 6), dtype=np.int64)
    with pytest.raises(ValueError, match="size must be even; it is 5"):
        function(x, 1)
    with pytest.raises(ValueError, match="size must be even; it is 5"):
        function(x, -2)
    with pytest.raises(ValueError, match="out of range"):
        function(x, 3)
    with pytest.raises(ValueError, match="out of range"):
        function(x, -4)
    with pytest.raises(ValueError, match="scalar"):
        function(np.int64(4))


def test_glu_fixed_close_to_float():
    seed = 7
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    # Every gate code in a sweep over the whole data range, with large and random a.
    b = np.arange(DATA.min_int, DATA.max_int + 1, 3, dtype=np.int64)
    a = rng.integers(DATA.min_int, DATA.max_int + 1, b.size)
    a[:1000] = DATA.min_int
    a[1000:2000] = DATA.max_int
    codes = np.stack([a, b], axis=-1)
    counter = SaturationCounter()
    fixed = DATA.to_float(glu_fixed(codes, -1, DEFAULT_FORMATS, counter))
    exact = glu_float(DATA.to_float(codes), -1)
    error = np.abs(fixed - exact) / DATA.resolution
    print(f"GLU fixed vs float: max {error.max():.3f} lsb, mean {error.mean():.3f} lsb")
    # Bound: |a| < 8 times the sigmoid table's error (< 1.27 lsb of q1.15, see
    # test_activations) is < 1.27 data lsb (2**-12), plus 0.5 lsb of the final rounding.
    # Measured: max 1.49 lsb, mean 0.31 lsb.
    assert error.max() <= 1.77
    assert error.mean() <= 0.5
    assert counter.total == 0


@pytest.mark.parametrize("a, b, expected", [
    # b = 0: tanh(0) = 0, so s = (2**15 + 0 + 1) >> 1 = 16384 (0.5) exactly.
    (4096, 0, 2048),           # 1.0 * 0.5: 4096 * 16384 / 2**15 = 2048
    (3, 0, 2),                 # 3 * 0.5 = 1.5 lsb: a tie rounds up
    (-3, 0, -1),               # -1.5 lsb: up, towards +inf
    (1, 0, 1),                 # 0.5 lsb -> 1
    (-1, 0, 0),                # -0.5 lsb -> 0
    (-32768, 0, -16384),
    # b = 2.0 (8192): pre-activation code 16384 (q5.13); sigmoid reads the table at
    # 16384 >> (7 + 1) = segment 64, offset 0, i.e. tanh(64 * 8/512 = 1.0):
    # round_half_up(0.7615941559557649 * 2**15 = 24956.1) = 24956,
    # s = (32768 + 24956 + 1) >> 1 = 28862.
    (4096, 8192, 3608),        # 4096 * 28862 / 2**15 = 3607.75 -> 3608
    (-4096, 8192, -3608),      # -3607.75 -> -3608
    (8, 8192, 7),              # 8 * 28862 / 2**15 = 7.046 -> 7
    # b = -2.0: t = -24956, s = (32768 - 24956 + 1) >> 1 = 3906.
    (4096, -8192, 488),        # 4096 * 3906 / 2**15 = 488.25 -> 488
    # b = 32767 (the largest, 8 - 2**-12): u = 65534, segment 65534 >> 8 = 255, offset 254;
    # values[255] = round_half_up(tanh(255/64) * 2**15 = 32745.33) = 32745,
    # values[256] = round_half_up(32746.02) = 32746, slope 1;
    # t = 32745 + ((1 * 254 + 128) >> 8) = 32746, s = (32768 + 32746 + 1) >> 1 = 32757.
    (32767, 32767, 32756),     # 32767 * 32757 / 2**15 = 32756.00003 -> 32756
    (4096, 32767, 4095),       # 32757 / 8 = 4094.625 -> 4095
])
def test_glu_fixed_hand_values(a, b, expected):
    x = np.array([[a, b]], dtype=np.int64)
    assert glu_fixed(x).tolist() == [[expected]]
    assert glu_fixed(x.T, dim=0).tolist() == [[expected]]


def test_glu_fixed_other_dims():
    seed = 11
    print(f"seed {seed}")
    x = np.random.default_rng(seed).integers(-20000, 20000, (4, 6, 2))
    result = glu_fixed(x, 1)
    # Halving dim 1 is glu along the last axis of the moved array.
    moved = glu_fixed(np.moveaxis(x, 1, -1), -1)
    assert np.array_equal(result, np.moveaxis(moved, -1, 1))
    assert result.shape == (4, 3, 2)


# --- pack / unpack ---------------------------------------------------------------------------

def test_pack_hand_example():
    # caffe2 PackRNNSequence: sequences laid one after the other, (sum(lengths), D) ->
    # time-major (max(lengths), N, D), zero-padded.
    values = np.array([[1], [2], [3], [4], [5], [6]])
    lengths = [2, 1, 3]
    #   sequence 0 = [1, 2], sequence 1 = [3], sequence 2 = [4, 5, 6]
    expected = np.array([[[1], [3], [4]],
                         [[2], [0], [5]],
                         [[0], [0], [6]]])
    padded = pack(values, lengths)
    assert padded.shape == (3, 3, 1)
    assert padded.dtype == values.dtype
    assert np.array_equal(padded, expected)
    assert np.array_equal(unpack(expected, lengths), values)


@pytest.mark.parametrize("lengths", [[5, 2, 7, 1], [3], [4, 4, 4], [1, 1, 9, 2, 6]])
@pytest.mark.parametrize("feature_shape", [(3,), (2, 2), ()])
def test_pack_equals_torch(lengths, feature_shape):
    seed = sum(lengths) + len(feature_shape)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(sum(lengths),) + feature_shape)
    sequences = [torch.from_numpy(s) for s in np.split(values, np.cumsum(lengths)[:-1])]
    padded = pack(values, lengths)
    assert padded.shape == (max(lengths), len(lengths)) + feature_shape
    assert np.array_equal(padded, pad_sequence(sequences).numpy())
    unpacked, torch_lengths = pad_packed_sequence(pack_sequence(sequences, enforce_sorted=False))
    assert torch_lengths.tolist() == lengths
    assert np.array_equal(padded, unpacked.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int16])
def test_unpack_inverts_pack(dtype):
    seed = 5
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    lengths = np.array([3, 8, 1, 5])
    values = (rng.normal(0, 1000, (lengths.sum(), 4))).astype(dtype)
    padded = pack(values, lengths)
    assert padded.dtype == dtype
    # Padding is zero, and exactly the valid steps carry the values.
    mask = np.arange(padded.shape[0])[:, None] < lengths[None, :]
    assert np.all(padded[~mask] == 0)
    restored = unpack(padded, lengths)
    assert restored.dtype == dtype
    assert np.array_equal(restored, values)


def test_unpack_ignores_padding_and_accepts_longer_t():
    padded = np.arange(2 * 5 * 3).reshape(5, 2, 3)
    result = unpack(padded, [2, 4])
    assert np.array_equal(result, np.concatenate([padded[:2, 0], padded[:4, 1]]))


@pytest.mark.parametrize("lengths, message", [
    ([2, 0, 4], "at least 1"),
    ([2, -1, 5], "at least 1"),
    ([2, 1, 2], "sum\\(lengths\\) = 5"),
    ([2, 1, 4], "sum\\(lengths\\) = 7"),
    ([2.0, 1.0, 3.0], "must be integers"),
    ([2.5, 1, 2.5], "must be integers"),
    ([], "non-empty"),
    ([[2, 1, 3]], "1-D"),
])
def test_pack_rejects_bad_lengths(lengths, message):
    values = np.arange(6).reshape(6, 1)
    with pytest.raises(ValueError, match=message):
        pack(values, lengths)


@pytest.mark.parametrize("lengths, message", [
    ([2, 0, 3], "at least 1"),
    ([2, 1, -3], "at least 1"),
    ([2, 1, 4], "exceeds the 3 steps"),
    ([2.0, 1.0, 3.0], "must be integers"),
    ([2, 1], "one column per sequence"),
])
def test_unpack_rejects_bad_lengths(lengths, message):
    padded = np.zeros((3, 3, 1))
    with pytest.raises(ValueError, match=message):
        unpack(padded, lengths)
