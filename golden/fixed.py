"""Fixed-point number formats and the integer arithmetic rules the gateware implements.

Every fixed-point value in gatework is a signed two's complement integer ``v`` standing for
``v / 2**fraction_bits``. A format is written ``qI.F``: ``I`` integer bits *including* the sign
bit and ``F`` fraction bits, ``I + F`` bits in all (``q4.12`` is 16 bits, range [-8, 8)).

There is exactly one rule for leaving a wider intermediate value for a narrower format,
:func:`rescale`:

* **round half up**: drop ``s`` fraction bits by adding ``2**(s-1)`` and shifting right
  arithmetically, i.e. ``floor(v / 2**s + 1/2)``. Ties go towards +infinity. In hardware this
  is one adder and a wire shift.
* **saturate**: a result beyond the format's range is clamped to its most negative or most
  positive code; it never wraps.

Products and sums are exact: a product of formats with ``F1`` and ``F2`` fraction bits has
``F1 + F2`` fraction bits, and operands of a sum are first aligned by left shifts (which are
exact) to the largest fraction count among them. Accumulators are sized by
:meth:`QFormat.accumulator` so that no dot product can overflow.
"""

from dataclasses import dataclass
import re

import numpy as np


__all__ = ["QFormat", "SaturationCounter", "rescale", "align", "exact_matmul"]


_FORMAT_PATTERN = re.compile(r"^[qQ](\d+)\.(\d+)$")


@dataclass(frozen=True)
class QFormat:
    """Signed two's complement fixed-point format ``qI.F``.

    Parameters
    ----------
    integer_bits : int
        Integer bits, the sign bit included (at least 1).
    fraction_bits : int
        Fraction bits (at least 0).
    """

    integer_bits: int
    fraction_bits: int

    def __post_init__(self):
        if not isinstance(self.integer_bits, int) or self.integer_bits < 1:
            raise ValueError(f"integer_bits must be an int >= 1 (it counts the sign bit), "
                             f"not {self.integer_bits!r}")
        if not isinstance(self.fraction_bits, int) or self.fraction_bits < 0:
            raise ValueError(f"fraction_bits must be an int >= 0, not {self.fraction_bits!r}")
        if self.total_bits > 62:
            raise ValueError(f"{self} has {self.total_bits} bits; at most 62 are supported so "
                             f"that every value and product fits the golden model's int64")

    @classmethod
    def parse(cls, text):
        """Make a format from its name, such as ``"q4.12"``, or return a ``QFormat`` as is."""
        if isinstance(text, QFormat):
            return text
        match = _FORMAT_PATTERN.match(str(text).strip())
        if match is None:
            raise ValueError(f"a fixed-point format is written 'qI.F' with I integer bits "
                             f"(sign included) and F fraction bits, such as 'q4.12'; "
                             f"got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self):
        return f"q{self.integer_bits}.{self.fraction_bits}"

    @property
    def total_bits(self):
        return self.integer_bits + self.fraction_bits

    @property
    def min_int(self):
        return -(1 << (self.total_bits - 1))

    @property
    def max_int(self):
        return (1 << (self.total_bits - 1)) - 1

    @property
    def resolution(self):
        """The value of one least significant bit."""
        return 2.0 ** -self.fraction_bits

    @property
    def min_value(self):
        return self.min_int * self.resolution

    @property
    def max_value(self):
        return self.max_int * self.resolution

    def accumulator(self, other, terms):
        """Format of an exact sum of ``terms`` products of this format and ``other``.

        The sum can never overflow it: its integer part has room for ``terms`` times the
        largest product magnitude, ``2**(total_bits - 1) * 2**(other.total_bits - 1)``.
        """
        if terms < 1:
            raise ValueError(f"terms must be >= 1, not {terms}")
        magnitude_bits = (self.total_bits - 1) + (other.total_bits - 1)
        total = magnitude_bits + terms.bit_length() + 1
        fraction = self.fraction_bits + other.fraction_bits
        return QFormat(total - fraction, fraction)

    def quantize(self, values, counter=None, what="values"):
        """Convert real numbers to this format: round half up, then saturate.

        Parameters
        ----------
        values : array_like of float
            Finite real numbers.
        counter : SaturationCounter, optional
            Receives the number of values that were outside the range.
        what : str
            Names the values in the counter's report.

        Returns
        -------
        numpy.ndarray of int64
        """
        values = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{what} contain NaN or infinity; only finite numbers can be "
                             f"converted to {self}")
        scaled = np.floor(values * (2.0 ** self.fraction_bits) + 0.5)
        clipped = np.clip(scaled, self.min_int, self.max_int)
        if counter is not None:
            counter.add(what, self, int(np.count_nonzero(clipped != scaled)), values.size)
        return clipped.astype(np.int64)

    def to_float(self, ints):
        """Return the real numbers that integers of this format stand for."""
        return np.asarray(ints, dtype=np.float64) * self.resolution

    def saturate(self, ints, counter=None, what="values"):
        """Clamp integers of this format's scale to its range."""
        ints = np.asarray(ints, dtype=np.int64)
        clipped = np.clip(ints, self.min_int, self.max_int)
        if counter is not None:
            counter.add(what, self, int(np.count_nonzero(clipped != ints)), ints.size)
        return clipped


class SaturationCounter:
    """Count values that saturated, per place, so that a call can report them.

    Saturation is defined behaviour (never a wrap), but a user must learn that it happened:
    the host API turns a non-empty counter into one warning per call.
    """

    def __init__(self):
        self.counts = {}

    def add(self, what, fmt, saturated, total):
        key = (what, str(fmt))
        count, seen = self.counts.get(key, (0, 0))
        self.counts[key] = (count + saturated, seen + total)

    @property
    def total(self):
        return sum(count for count, _ in self.counts.values())

    def report(self):
        """One line per place that saturated, or an empty string."""
        lines = []
        for (what, fmt), (count, seen) in self.counts.items():
            if count:
                fmt = QFormat.parse(fmt)
                lines.append(f"{count} of {seen} {what} were outside {fmt} "
                             f"[{fmt.min_value:g}, {fmt.max_value:g}] and saturated")
        return "; ".join(lines)


def align(ints, from_fraction, to_fraction):
    """Shift integers left from ``from_fraction`` to ``to_fraction`` fraction bits (exact)."""
    if to_fraction < from_fraction:
        raise ValueError(f"align only widens: {from_fraction} -> {to_fraction} fraction bits "
                         f"would drop bits; use rescale")
    return np.asarray(ints, dtype=np.int64) << (to_fraction - from_fraction)


def rescale(ints, from_fraction, fmt, counter=None, what="intermediate values"):
    """Narrow integers with ``from_fraction`` fraction bits to ``fmt``: round half up, saturate.

    This is the only narrowing rule of gatework; the gateware implements it bit for bit as
    ``(v + (1 << (s - 1))) >>> s`` followed by a clamp, with ``s = from_fraction -
    fmt.fraction_bits``.
    """
    ints = np.asarray(ints, dtype=np.int64)
    shift = from_fraction - fmt.fraction_bits
    if shift > 0:
        # floor(v / 2**s) plus the first dropped bit: the same as (v + 2**(s-1)) >> s, but
        # without the addition that could wrap an int64 near its limits.
        ints = (ints >> shift) + ((ints >> (shift - 1)) & 1)
    elif shift < 0:
        ints = ints << -shift
    return fmt.saturate(ints, counter, what)


def exact_matmul(a, b, a_format, b_format):
    """Multiply integer matrices exactly, fast.

    NumPy's integer matmul does not use BLAS and is slow. Every product of two codes is below
    ``2**(a_bits - 1 + b_bits - 1)`` in magnitude, so as long as the sum of a row cannot reach
    2**53 the float64 BLAS product is exact whatever order it sums in; this is checked here
    and the result converted back to int64 without any rounding.
    """
    terms = a.shape[-1]
    bound_bits = (a_format.total_bits - 1) + (b_format.total_bits - 1) + max(terms, 1).bit_length()
    if bound_bits > 53:
        return np.asarray(a, dtype=np.int64) @ np.asarray(b, dtype=np.int64)
    product = np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)
    return product.astype(np.int64)
