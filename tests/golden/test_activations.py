"""The interpolated tanh/sigmoid table of the default formats, over every input code."""

from fractions import Fraction
import math

import numpy as np
import pytest

from gatework.golden.activations import ActivationTable
from gatework.golden.fixed import QFormat
from gatework.golden.formats import DEFAULT_FORMATS


TABLE = DEFAULT_FORMATS.table
IN, OUT = TABLE.input_format, TABLE.output_format
CODES = np.arange(IN.min_int, IN.max_int + 1, dtype=np.int64)


def round_half_up(value):
    return math.floor(Fraction(value) + Fraction(1, 2))


def test_default_table_shape():
    # The rest of this file relies on these; a change of defaults must be looked at here.
    assert (str(IN), str(OUT)) == ("q5.13", "q1.15")
    assert (TABLE.range_log2, TABLE.segments_log2) == (3, 9)
    assert TABLE.segments == 512
    assert TABLE.offset_bits == 13 + 3 - 9


def test_table_entries_are_rounded_tanh():
    points = []
    for i in range(TABLE.segments + 1):
        exact = Fraction(math.tanh(i * 8 / 512)) * 2 ** 15
        points.append(min(round_half_up(exact), OUT.max_int))
    assert TABLE.values.tolist() == points[:-1]
    assert TABLE.slopes.tolist() == [b - a for a, b in zip(points, points[1:])]
    assert TABLE.end_value == points[-1] == OUT.max_int     # tanh(8) * 2**15 rounds to 2**15
    assert TABLE.values.dtype == TABLE.slopes.dtype == np.int64
    assert TABLE.values[0] == 0 and min(TABLE.slopes) >= 0
    assert TABLE.slope_bits == max(b - a for a, b in zip(points, points[1:])).bit_length() + 1


def test_values_and_slopes_are_read_only():
    for array in (TABLE.values, TABLE.slopes):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 1
    assert TABLE.values[0] == 0 and TABLE.slopes[0] != 1


def reference_tanh(u, table=TABLE, offset_bits=None):
    """The module docstring's steps 1-3, one code at a time in Python ints."""
    k = table.offset_bits if offset_bits is None else offset_bits
    a = abs(u)
    segment, offset = a >> k, a & ((1 << k) - 1)
    if segment >= table.segments:
        y = table.end_value
    else:
        y = int(table.values[segment]) + ((int(table.slopes[segment]) * offset
                                           + (1 << (k - 1))) >> k)
    return -y if u < 0 else y


def reference_sigmoid(u, table=TABLE):
    t = reference_tanh(u, table, table.offset_bits + 1)
    return min((2 ** table.output_format.fraction_bits + t + 1) >> 1,
               table.output_format.max_int)


def test_tanh_and_sigmoid_follow_the_documented_steps():
    # Every code of the first segments and around the table's end, a stride elsewhere.
    k = TABLE.offset_bits
    dense = [c for c in range(-(4 << k), 4 << k)]
    end = [s * c for c in range((8 << 13) - 300, (8 << 13) + 300) for s in (1, -1)]
    spread = list(range(IN.min_int, IN.max_int + 1, 37))
    codes = sorted(set(dense + end + spread + [IN.min_int, IN.max_int]))
    assert TABLE.tanh(codes).tolist() == [reference_tanh(u) for u in codes]
    assert TABLE.sigmoid(codes).tolist() == [reference_sigmoid(u) for u in codes]


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_monotone_over_every_code(name):
    y = getattr(TABLE, name)(CODES)
    assert y.shape == CODES.shape and y.dtype == np.int64
    assert np.all(np.diff(y) >= 0)


def test_tanh_is_odd():
    u = np.arange(-IN.max_int, IN.max_int + 1, dtype=np.int64)
    assert np.array_equal(TABLE.tanh(-u), -TABLE.tanh(u))
    assert TABLE.tanh(0) == 0


def test_sigmoid_range_and_symmetry():
    s = TABLE.sigmoid(CODES)
    assert s.min() >= 0 and s.max() <= OUT.max_int
    # sigmoid(-u) = 1 - sigmoid(u), to within the rounding of the final halving.
    one = 2 ** OUT.fraction_bits
    u = np.arange(-IN.max_int, IN.max_int + 1, dtype=np.int64)
    assert np.max(np.abs(TABLE.sigmoid(-u) + TABLE.sigmoid(u) - one)) <= 1
    assert TABLE.sigmoid(0) == one // 2


def test_saturation_at_the_ends():
    beyond = np.arange(8 << IN.fraction_bits, IN.max_int + 1, 101)    # |u| >= 8
    assert np.all(TABLE.tanh(beyond) == OUT.max_int)
    assert np.all(TABLE.tanh(-beyond) == -OUT.max_int)
    assert TABLE.tanh(IN.min_int) == -OUT.max_int
    assert TABLE.sigmoid(IN.max_int) == OUT.max_int
    # sigmoid(-16) = 1.1e-7 is 0.004 lsb, but the table's end gives (1 - 32767/32768) / 2,
    # which rounds half up to one lsb.
    assert TABLE.sigmoid(IN.min_int) == 1
    far = np.arange(IN.min_int, -(14 << IN.fraction_bits), 97)
    assert np.all(TABLE.sigmoid(far) == 1)


def test_measured_error_below_two_lsb():
    # Measured with the default table: sigmoid max 3.86e-5 (1.26 lsb), mean 1.54e-5;
    # tanh max 4.65e-5 (1.52 lsb), mean 2.25e-5 (lsb = 2**-15 = 3.05e-5).
    errors = TABLE.measure()
    lsb = OUT.resolution
    for name in ("sigmoid", "tanh"):
        assert errors[name]["max"] < 2 * lsb
        assert errors[name]["max_lsb"] == pytest.approx(errors[name]["max"] / lsb)
        assert errors[name]["mean"] < 1 * lsb
    assert errors["sigmoid"]["max_lsb"] == pytest.approx(1.264, abs=0.01)
    assert errors["tanh"]["max_lsb"] == pytest.approx(1.523, abs=0.01)
    # And independently of measure():
    x = IN.to_float(CODES)
    assert np.max(np.abs(OUT.to_float(TABLE.tanh(CODES)) - np.tanh(x))) < 2 * lsb
    sigmoid = 1 / (1 + np.exp(-x))
    assert np.max(np.abs(OUT.to_float(TABLE.sigmoid(CODES)) - sigmoid)) < 2 * lsb


@pytest.mark.parametrize("input_name, range_log2, segments_log2, message", [
    ("q5.13", 3, 16, "too few fraction bits"),     # k = 13 + 3 - 16 = 0
    ("q5.13", 3, 17, "too few fraction bits"),
    ("q4.4", 3, 7, "too few fraction bits"),        # k = 0
    ("q3.13", 3, 9, "only reaches"),                 # q3.13 stops short of 8
    ("q5.13", 5, 9, "only reaches"),                 # [0, 32) needs q6 or more
])
def test_impossible_table_shapes(input_name, range_log2, segments_log2, message):
    with pytest.raises(ValueError, match=message):
        ActivationTable(QFormat.parse(input_name), QFormat.parse("q1.15"),
                        range_log2, segments_log2)


def test_possible_edge_shape():
    # k = 1 and a table that exactly fits its input format are accepted.
    table = ActivationTable(QFormat.parse("q4.7"), QFormat.parse("q1.15"), 3, 9)
    assert table.offset_bits == 1
    assert table.tanh(0) == 0
