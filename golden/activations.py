"""Sigmoid and tanh as integer tables with linear interpolation: the activation ROM's contents.

One table serves both functions. It holds ``tanh`` on ``[0, 2**range_log2)`` in
``2**segments_log2`` equal segments, as two integer arrays the gateware loads into ROM:

* ``values[i]``: ``tanh`` at the start of segment ``i``, in the output format;
* ``slopes[i]``: ``values[i + 1] - values[i]`` (the rise across the segment).

Evaluation of ``tanh(u)`` for a pre-activation code ``u`` with ``P`` fraction bits:

1. ``a = |u|``; the segment is ``a >> k`` and the offset in it ``a & (2**k - 1)``, where
   ``k = P + range_log2 - segments_log2``;
2. ``y = values[seg] + ((slopes[seg] * offset + 2**(k-1)) >> k)`` (round half up);
   past the last segment ``y`` is the table's end value ``tanh(2**range_log2)``;
3. the result is ``-y`` for negative ``u``: tanh is odd, so only half of it is stored.

``sigmoid(u) = (1 + tanh(u / 2)) / 2`` exactly, so sigmoid reads the same table with one
more offset bit (``k + 1``: that halves ``u``), and its result is
``(2**F + t + 1) >> 1`` saturated to the output format, where ``t`` is the signed tanh code
and ``F`` the output fraction bits. The gateware computes exactly these steps.
"""

from dataclasses import dataclass
from functools import cached_property
import numpy as np

from .fixed import QFormat


__all__ = ["ActivationTable"]


@dataclass(frozen=True)
class ActivationTable:
    """An interpolated tanh table and the sigmoid derived from it.

    Parameters
    ----------
    input_format : QFormat
        Format of the pre-activation codes the table is indexed with.
    output_format : QFormat
        Format of the results (and of ``values``).
    range_log2 : int
        The table covers ``tanh`` on ``[0, 2**range_log2)``; beyond, it saturates.
    segments_log2 : int
        ``2**segments_log2`` interpolation segments.
    """

    input_format: QFormat
    output_format: QFormat
    range_log2: int = 3
    segments_log2: int = 9

    def __post_init__(self):
        if self.offset_bits < 1:
            raise ValueError(f"{self.input_format} has too few fraction bits for "
                             f"2**{self.segments_log2} segments over [0, 2**{self.range_log2}); "
                             f"use fewer segments or more fraction bits")
        if self.input_format.integer_bits - 1 < self.range_log2:
            raise ValueError(f"the table covers [0, {2 ** self.range_log2}) but "
                             f"{self.input_format} only reaches {self.input_format.max_value:g}")

    @property
    def segments(self):
        return 1 << self.segments_log2

    @property
    def offset_bits(self):
        """``k``: low bits of ``|u|`` that place it inside a tanh segment."""
        return self.input_format.fraction_bits + self.range_log2 - self.segments_log2

    @cached_property
    def _points(self):
        x = np.arange(self.segments + 1) * (2.0 ** self.range_log2 / self.segments)
        return self.output_format.quantize(np.tanh(x))

    @cached_property
    def values(self):
        """``tanh`` codes at the start of each segment (int64, ``segments`` entries)."""
        values = self._points[:-1].copy()
        values.flags.writeable = False
        return values

    @cached_property
    def slopes(self):
        """Rise of ``tanh`` across each segment, in output codes (int64)."""
        slopes = np.diff(self._points)
        slopes.flags.writeable = False
        return slopes

    @property
    def end_value(self):
        """Result for ``|u|`` at or past the end of the table."""
        return int(self._points[-1])

    @property
    def slope_bits(self):
        """Bits a slope entry needs (signed, though every slope is >= 0)."""
        return int(self.slopes.max()).bit_length() + 1

    @cached_property
    def _lookup(self):
        # values and slopes with one more entry, (end_value, 0), that every index past the
        # table is clamped to: the same result as the saturation rule, without a select.
        return (np.append(self.values, self.end_value), np.append(self.slopes, 0))

    def _tanh_magnitude(self, magnitude, offset_bits):
        values, slopes = self._lookup
        index = np.minimum(magnitude >> offset_bits, self.segments)
        offset = magnitude & ((1 << offset_bits) - 1)
        return values[index] + ((slopes[index] * offset + (1 << (offset_bits - 1)))
                                >> offset_bits)

    def tanh(self, codes):
        """``tanh`` of pre-activation codes, as output codes (int64, same shape)."""
        codes = np.asarray(codes, dtype=np.int64)
        y = self._tanh_magnitude(np.abs(codes), self.offset_bits)
        return np.where(codes < 0, -y, y)

    def sigmoid(self, codes):
        """``sigmoid`` of pre-activation codes, as output codes (int64, same shape)."""
        codes = np.asarray(codes, dtype=np.int64)
        y = self._tanh_magnitude(np.abs(codes), self.offset_bits + 1)
        t = np.where(codes < 0, -y, y)
        one = 1 << self.output_format.fraction_bits
        return np.minimum((one + t + 1) >> 1, self.output_format.max_int)

    def measure(self):
        """Max and mean absolute error of both functions over every input code, against float.

        The inputs are every code of ``input_format``, taken as exact real numbers, so this is
        the error of the table alone (interpolation and output rounding), not of the
        quantisation of the input.
        """
        fmt = self.input_format
        codes = np.arange(fmt.min_int, fmt.max_int + 1, dtype=np.int64)
        x = fmt.to_float(codes)
        result = {}
        for name, fixed, exact in (("sigmoid", self.sigmoid, lambda v: 0.5 * (1 + np.tanh(v / 2))),
                                   ("tanh", self.tanh, np.tanh)):
            error = np.abs(self.output_format.to_float(fixed(codes)) - exact(x))
            result[name] = {"max": float(error.max()), "mean": float(error.mean()),
                            "max_lsb": float(error.max() / self.output_format.resolution)}
        return result

    def rom_bits(self):
        """Bits of ROM the table takes: values and slopes."""
        return self.segments * (self.output_format.total_bits + self.slope_bits)

    def describe(self):
        return (f"tanh on [0, {2 ** self.range_log2}) in {self.segments} segments "
                f"(inputs {self.input_format}, outputs {self.output_format}, "
                f"{self.rom_bits()} ROM bits)")

