"""Fixed-point arithmetic in gateware: golden's rescale rule and a multiply-accumulate unit.

The numerics are :mod:`gatework.golden.fixed`'s, bit for bit: products are exact, an
accumulator has :meth:`QFormat.accumulator`'s width, and narrowing rounds half up and
saturates.
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.fixed import QFormat


__all__ = ["rescale", "Rescale", "MultiplyAccumulate"]


def rescale(value, from_fraction, fmt):
    """Expression for golden's ``rescale``: ``value`` (signed, ``from_fraction`` fraction bits)
    narrowed to ``fmt``, rounding half up and saturating.

    Rounding adds the first dropped bit to the truncated value, ``(v >> s) + v[s - 1]``, which
    equals ``(v + 2**(s-1)) >> s`` without the carry chain of a full-width addition.
    """
    fmt = QFormat.parse(fmt)
    value = value.as_signed()
    shift = from_fraction - fmt.fraction_bits
    if shift > 0:
        rounded = (value >> shift) + value[shift - 1]
    else:
        rounded = value << -shift
    return Mux(rounded > fmt.max_int, fmt.max_int,
               Mux(rounded < fmt.min_int, fmt.min_int, rounded))


class Rescale(wiring.Component):
    """Narrow a stream of wide values to a fixed-point format (round half up, saturate).

    Parameters
    ----------
    input_width : int
        Width of the signed input values.
    from_fraction : int
        Fraction bits of the input values.
    fmt : QFormat or str
        Format of the output values.

    Members
    -------
    i : In(stream.Signature(signed(input_width)))
    o : Out(stream.Signature(signed(fmt.total_bits)))

    Latency 1 cycle, throughput 1 value per cycle; one adder and two comparators.
    """

    def __init__(self, input_width, from_fraction, fmt):
        self._fmt = QFormat.parse(fmt)
        self._from_fraction = from_fraction
        super().__init__({
            "i": In(stream.Signature(signed(input_width))),
            "o": Out(stream.Signature(signed(self._fmt.total_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(self.o.ready | ~self.o.valid):
            m.d.sync += [
                self.o.valid.eq(self.i.valid),
                self.o.payload.eq(rescale(self.i.payload, self._from_fraction, self._fmt)),
            ]
        m.d.comb += self.i.ready.eq(self.o.ready | ~self.o.valid)
        return m


class MultiplyAccumulate(wiring.Component):
    """Accumulate products of a data and a weight stream into golden's accumulator width.

    Each input transfer carries one operand pair; ``first`` starts a new sum, ``last`` ends
    it and sends the exact sum out.

    Parameters
    ----------
    data_format, weight_format : QFormat or str
    terms : int
        Most products in one sum; sets the accumulator width.

    Members
    -------
    i : In(stream.Signature(StructLayout({"data", "weight", "first", "last"})))
    o : Out(stream.Signature(signed(accumulator width)))
        The sum, with ``data_format.F + weight_format.F`` fraction bits.

    One product per cycle sustained; a sum leaves 2 cycles after its last operand (one
    register after the multiplier, one for the accumulator). One multiplier, one adder.
    """

    def __init__(self, data_format, weight_format, terms):
        self._data_format = QFormat.parse(data_format)
        self._weight_format = QFormat.parse(weight_format)
        self._accumulator = self._data_format.accumulator(self._weight_format, terms)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "data": signed(self._data_format.total_bits),
                "weight": signed(self._weight_format.total_bits),
                "first": 1, "last": 1}))),
            "o": Out(stream.Signature(signed(self._accumulator.total_bits))),
        })

    @property
    def accumulator_format(self):
        return self._accumulator

    def elaborate(self, platform):
        m = Module()
        width = self._accumulator.total_bits
        product = Signal(signed(width))
        product_valid = Signal()
        product_first = Signal()
        product_last = Signal()
        accumulator = Signal(signed(width))

        # The pipeline advances whenever the output register is free or being emptied.
        advance = self.o.ready | ~self.o.valid
        m.d.comb += self.i.ready.eq(advance)
        with m.If(advance):
            m.d.sync += [
                product.eq(self.i.payload.data * self.i.payload.weight),
                product_valid.eq(self.i.valid),
                product_first.eq(self.i.payload.first),
                product_last.eq(self.i.payload.last),
                self.o.valid.eq(0),
            ]
            with m.If(product_valid):
                total = Mux(product_first, 0, accumulator) + product
                m.d.sync += accumulator.eq(total)
                with m.If(product_last):
                    m.d.sync += [self.o.payload.eq(total), self.o.valid.eq(1)]
        return m
