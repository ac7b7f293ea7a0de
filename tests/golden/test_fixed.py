"""Fixed-point formats and the one narrowing rule (round half up, saturate)."""

from fractions import Fraction
import math

import numpy as np
import pytest

from gatework.golden.fixed import QFormat, SaturationCounter, align, exact_matmul, rescale


# --- QFormat ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, integer_bits, fraction_bits", [
    ("q4.12", 4, 12), ("q1.15", 1, 15), ("q2.14", 2, 14), ("q5.13", 5, 13),
    ("q16.0", 16, 0), ("q1.0", 1, 0), ("q31.31", 31, 31),
])
def test_parse_and_str_round_trip(name, integer_bits, fraction_bits):
    fmt = QFormat.parse(name)
    assert (fmt.integer_bits, fmt.fraction_bits) == (integer_bits, fraction_bits)
    assert str(fmt) == name
    assert QFormat.parse(str(fmt)) == fmt
    assert QFormat.parse(fmt) is fmt
    assert QFormat.parse(" " + name.upper() + " ") == fmt


@pytest.mark.parametrize("name", ["4.12", "q4", "q4.", "q.12", "q-4.12", "q4.12.1", "p4.12",
                                  "q4,12", "", "q4.1 2", "q 4.12"])
def test_parse_rejects_bad_names(name):
    with pytest.raises(ValueError, match=r"written 'qI\.F'") as info:
        QFormat.parse(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("name, message", [
    ("q0.12", "integer_bits must be an int >= 1"),
    ("q40.30", "at most 62"),
])
def test_parse_rejects_impossible_formats(name, message):
    with pytest.raises(ValueError, match=message):
        QFormat.parse(name)


def test_constructor_rejects_bad_fields():
    with pytest.raises(ValueError, match="fraction_bits must be an int >= 0"):
        QFormat(4, -1)
    with pytest.raises(ValueError, match="integer_bits must be an int >= 1"):
        QFormat(1.5, 3)


@pytest.mark.parametrize("name, min_int, max_int, resolution, min_value, max_value", [
    ("q4.12", -32768, 32767, 2.0 ** -12, -8.0, 8.0 - 2.0 ** -12),
    ("q1.15", -32768, 32767, 2.0 ** -15, -1.0, 1.0 - 2.0 ** -15),
    ("q2.14", -32768, 32767, 2.0 ** -14, -2.0, 2.0 - 2.0 ** -14),
    ("q5.13", -131072, 131071, 2.0 ** -13, -16.0, 16.0 - 2.0 ** -13),
    ("q8.0", -128, 127, 1.0, -128.0, 127.0),
    ("q1.0", -1, 0, 1.0, -1.0, 0.0),
])
def test_range_and_resolution(name, min_int, max_int, resolution, min_value, max_value):
    fmt = QFormat.parse(name)
    assert fmt.total_bits == fmt.integer_bits + fmt.fraction_bits
    assert (fmt.min_int, fmt.max_int) == (min_int, max_int)
    assert fmt.resolution == resolution
    assert (fmt.min_value, fmt.max_value) == (min_value, max_value)


# --- quantize --------------------------------------------------------------------------------

Q412 = QFormat.parse("q4.12")
LSB = Q412.resolution


@pytest.mark.parametrize("value_lsb, code", [
    (0.5, 1),       # a tie goes up
    (-0.5, 0),      # and towards +inf for negative values too
    (1.5, 2), (-1.5, -1), (2.5, 3), (-2.5, -2),
    (0.49, 0), (0.51, 1), (-0.49, 0), (-0.51, -1),
    (0.0, 0), (7.0, 7), (-7.0, -7),
])
def test_quantize_rounds_half_up(value_lsb, code):
    assert Q412.quantize(value_lsb * LSB).tolist() == code
    assert Q412.quantize([value_lsb * LSB]).dtype == np.int64


def test_quantize_saturates_and_counts():
    counter = SaturationCounter()
    values = [100.0, -100.0, 8.0, 8.0 - LSB, -8.0, -8.0 - LSB / 2, -8.0 - LSB, 0.25,
              8.0 - LSB / 2]
    codes = Q412.quantize(values, counter, "inputs")
    # 8 - lsb/2 rounds up to 8.0, which is out of range; -8 - lsb/2 rounds up to -8, in range.
    assert codes.tolist() == [32767, -32768, 32767, 32767, -32768, -32768, -32768, 1024, 32767]
    assert counter.total == 5
    assert counter.counts == {("inputs", "q4.12"): (5, 9)}
    report = counter.report()
    assert report == "5 of 9 inputs were outside q4.12 [-8, 7.99976] and saturated"
    # A second call adds to the same place.
    Q412.quantize([9.0, 1.0], counter, "inputs")
    assert counter.counts[("inputs", "q4.12")] == (6, 11)


def test_quantize_in_range_counts_nothing():
    counter = SaturationCounter()
    Q412.quantize(np.linspace(-8, 8 - LSB, 101), counter, "inputs")
    assert counter.total == 0
    assert counter.report() == ""


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_rejects_non_finite(bad):
    with pytest.raises(ValueError, match="inputs contain NaN or infinity"):
        Q412.quantize([1.0, bad], what="inputs")


def test_to_float_inverts_quantize_on_codes():
    codes = np.arange(Q412.min_int, Q412.max_int + 1, 97)
    assert np.array_equal(Q412.quantize(Q412.to_float(codes)), codes)


# --- rescale ---------------------------------------------------------------------------------

def reference_rescale(value, shift, fmt):
    """floor(v / 2**s + 1/2), saturated, in exact rational arithmetic (any shift sign)."""
    exact = Fraction(int(value)) / Fraction(2) ** shift
    rounded = math.floor(exact + Fraction(1, 2))
    return min(max(rounded, fmt.min_int), fmt.max_int)


@pytest.mark.parametrize("shift", [1, 2, 3, 5, 13, 15, 27])
def test_rescale_ties_round_up(shift):
    fmt = QFormat(20, 0)
    half = 1 << (shift - 1)
    one = 1 << shift
    values = np.array([half, -half, 3 * half, -3 * half, 5 * half, -5 * half,
                       half - 1, -half - 1, half + 1, -half + 1, one, -one], dtype=np.int64)
    expected = [1, 0, 2, -1, 3, -2, 0, -1, 1, 0, 1, -1]
    assert rescale(values, shift, fmt).tolist() == expected


@pytest.mark.parametrize("from_fraction, to_fraction", [(12, 13), (12, 15), (0, 7), (26, 28)])
def test_rescale_widens_by_left_shift(from_fraction, to_fraction):
    fmt = QFormat(20, to_fraction)
    values = np.array([0, 1, -1, 1234, -4321, 1000], dtype=np.int64)
    expected = values * (1 << (to_fraction - from_fraction))
    result = rescale(values, from_fraction, fmt)
    assert result.tolist() == expected.tolist()
    assert np.array_equal(align(values, from_fraction, to_fraction), expected)


def test_rescale_same_fraction_only_saturates():
    counter = SaturationCounter()
    fmt = QFormat(4, 4)
    values = np.array([-129, -128, 0, 127, 128, 5000], dtype=np.int64)
    assert rescale(values, 4, fmt, counter, "x").tolist() == [-128, -128, 0, 127, 127, 127]
    assert counter.counts == {("x", "q4.4"): (3, 6)}


@pytest.mark.parametrize("shift", [1, 4, 14])
def test_rescale_saturates_both_ends(shift):
    fmt = QFormat.parse("q4.12")
    counter = SaturationCounter()
    one = 1 << shift
    half = one >> 1
    values = np.array([
        fmt.max_int * one,                # exactly max
        fmt.max_int * one + half - 1,     # rounds down to max
        fmt.max_int * one + half,         # rounds up past max: saturates
        (fmt.max_int + 100) * one,        # far above
        fmt.min_int * one,                # exactly min
        fmt.min_int * one - half,         # a tie at min - 1/2 rounds up to min
        fmt.min_int * one - half - 1,     # rounds down past min: saturates
        (fmt.min_int - 100) * one,        # far below
    ], dtype=np.int64)
    result = rescale(values, 12 + shift, fmt, counter, "states")
    assert result.tolist() == [fmt.max_int] * 4 + [fmt.min_int] * 4
    assert counter.counts == {("states", "q4.12"): (4, 8)}


def test_rescale_left_shift_saturates():
    fmt = QFormat(4, 12)
    values = np.array([4095, 4096, -4096, -4097], dtype=np.int64)   # shifted by 3
    assert rescale(values, 9, fmt).tolist() == [32760, 32767, -32768, -32768]


@pytest.mark.parametrize("shift, fmt_name", [(1, "q8.0"), (3, "q16.4"), (7, "q24.8"),
                                             (13, "q30.13"), (20, "q44.12"), (31, "q62.0")])
def test_rescale_matches_exact_rational_reference(shift, fmt_name):
    seed = 1000 + shift
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fmt = QFormat.parse(fmt_name)
    from_fraction = fmt.fraction_bits + shift
    info = np.iinfo(np.int64)
    # Values of every magnitude, ties and near-ties, and the int64 extremes.
    wide = rng.integers(info.min, info.max, 300, dtype=np.int64, endpoint=True)
    scaled = (rng.integers(-(1 << 40), 1 << 40, 300, dtype=np.int64) >>
              rng.integers(0, 40, 300))
    ties = (rng.integers(-(1 << 20), 1 << 20, 100, dtype=np.int64) << shift) + (1 << (shift - 1))
    extremes = np.array([info.min, info.min + 1, info.max, info.max - 1, 0, -1, 1],
                        dtype=np.int64)
    values = np.concatenate([wide, scaled, ties, ties - 1, extremes])
    expected = [reference_rescale(v, shift, fmt) for v in values.tolist()]
    assert rescale(values, from_fraction, fmt).tolist() == expected


@pytest.mark.parametrize("widen", [1, 5, 20])
def test_rescale_left_shift_matches_exact_rational_reference(widen):
    seed = 2000 + widen
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fmt = QFormat(24, 20)
    values = rng.integers(-(1 << 40), 1 << 40, 500, dtype=np.int64)
    expected = [reference_rescale(v, -widen, fmt) for v in values.tolist()]
    assert rescale(values, fmt.fraction_bits - widen, fmt).tolist() == expected


def test_rescale_does_not_wrap_at_int64_limits():
    # Adding the rounding constant 2**(s-1) to a value within 2**(s-1) of the int64 maximum
    # would wrap it to a large negative number; the result must saturate high instead.
    top, bottom = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    fmt = QFormat(62, 0)
    values = np.array([top, top - 1, bottom, bottom + 1], dtype=np.int64)
    assert rescale(values, 1, fmt).tolist() == [fmt.max_int, fmt.max_int,
                                                 fmt.min_int, fmt.min_int]
    # Shifted by 3 the values are in range: (2**63 - 1) / 8 + 1/2 rounds to 2**60.
    assert rescale(values, 3, fmt).tolist() == [1 << 60, 1 << 60, -(1 << 60), -(1 << 60)]
    for shift in (1, 2, 3, 30, 62):
        assert rescale(values, shift, fmt).tolist() == [reference_rescale(v, shift, fmt)
                                                        for v in values.tolist()]


def test_align_refuses_to_narrow():
    with pytest.raises(ValueError, match="align only widens"):
        align([1], 12, 10)


# --- accumulator -----------------------------------------------------------------------------

@pytest.mark.parametrize("a_name, b_name", [("q4.12", "q3.13"), ("q4.12", "q2.14"), ("q2.3", "q3.2"),
                                            ("q1.7", "q8.0")])
@pytest.mark.parametrize("terms", [1, 2, 3, 4, 5, 7, 8, 9, 16, 130])
def test_accumulator_holds_worst_case_and_is_tight(a_name, b_name, terms):
    a, b = QFormat.parse(a_name), QFormat.parse(b_name)
    acc = a.accumulator(b, terms)
    assert acc.fraction_bits == a.fraction_bits + b.fraction_bits
    # Every signed product of codes, in Python ints: the extremes of a sum of `terms`.
    products = [x * y for x in (a.min_int, a.max_int) for y in (b.min_int, b.max_int)]
    largest, smallest = terms * max(products), terms * min(products)
    assert largest == terms * a.min_int * b.min_int     # all operands at min_int
    assert acc.min_int <= smallest and largest <= acc.max_int
    narrower = QFormat(acc.integer_bits - 1, acc.fraction_bits)
    assert largest > narrower.max_int


def test_accumulator_rejects_no_terms():
    with pytest.raises(ValueError, match="terms must be >= 1"):
        Q412.accumulator(Q412, 0)


# --- exact_matmul ----------------------------------------------------------------------------

@pytest.mark.parametrize("a_name, b_name, terms", [
    ("q4.12", "q2.14", 130),   # the float64 BLAS path
    ("q12.12", "q8.16", 127),  # float64 path at its limit: sums up to 127 * 2**46 < 2**53
    ("q12.12", "q8.16", 256),  # the int64 path: sums up to 2**54 would not be exact in float64
    ("q1.15", "q1.15", 1),
])
def test_exact_matmul_equals_int64_matmul(a_name, b_name, terms):
    seed = 3000 + terms
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    a_fmt, b_fmt = QFormat.parse(a_name), QFormat.parse(b_name)
    # Max-magnitude codes (min_int and max_int) with random signs, plus random codes.
    a = rng.choice([a_fmt.min_int, a_fmt.max_int], (9, terms)).astype(np.int64)
    b = rng.choice([b_fmt.min_int, b_fmt.max_int], (terms, 7)).astype(np.int64)
    a[0] = a_fmt.min_int
    b[:, 0] = b_fmt.min_int       # one entry of the result is the worst-case sum
    a[1:3] = rng.integers(a_fmt.min_int, a_fmt.max_int + 1, (2, terms))
    result = exact_matmul(a, b, a_fmt, b_fmt)
    expected = a @ b
    assert result.dtype == np.int64
    assert np.array_equal(result, expected)
    assert result[0, 0] == terms * a_fmt.min_int * b_fmt.min_int
