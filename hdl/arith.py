"""Fixed-point arithmetic in gateware: golden's rescale rule, a multiply-accumulate unit, and
a sequential multiplier for sizes.

The numerics are :mod:`gatework.golden.fixed`'s, bit for bit: products are exact, an
accumulator has :meth:`QFormat.accumulator`'s width, and narrowing rounds half up and
saturates.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.fixed import QFormat


__all__ = ["rescale", "Rescale", "MultiplyAccumulate", "SequentialMultiplier"]


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


class SequentialMultiplier(wiring.Component):
    """Multiply two unsigned integers by shift and add, one bit of ``b`` per cycle.

    For products a command needs once, such as the size of a payload or a response: one
    adder where a combinational multiplier would take a DSP block, and a few cycles.

    Parameters
    ----------
    width : int
        Bits of ``a``, ``b`` and the product.

    Members
    -------
    start : In(1)
        Takes ``a`` and ``b`` and starts their product (dropping any product under way).
    a, b : In(unsigned(width))
    busy : Out(1)
        High from the cycle after ``start`` until the product is ready.
    product : Out(unsigned(width))
        ``a * b`` once ``busy`` is low, held until the next ``start``; meaningful only while
        ``overflow`` is low.
    overflow : Out(1)
        The product does not fit ``width`` bits.

    A product started in cycle ``c`` is ready in cycle ``c + 1 + b.bit_length()``: the
    multiplier stops at the highest set bit of ``b``. Resources: three ``width``-bit
    registers and one ``width``-bit adder.
    """

    def __init__(self, width):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an int >= 1 (bits of the operands and the "
                             f"product), not {width!r}")
        super().__init__({
            "start": In(1),
            "a": In(unsigned(width)),
            "b": In(unsigned(width)),
            "busy": Out(1),
            "product": Out(unsigned(width)),
            "overflow": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        multiplicand = Signal.like(self.a)      # a << i, for bit i of b
        multiplicand_lost = Signal()            # a << i has lost bits past the width
        multiplier = Signal.like(self.b)        # b >> i
        m.d.comb += self.busy.eq(multiplier != 0)
        with m.If(self.start):
            m.d.sync += [multiplicand.eq(self.a), multiplicand_lost.eq(0),
                         multiplier.eq(self.b), self.product.eq(0), self.overflow.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += [multiplicand.eq(multiplicand << 1),
                         multiplicand_lost.eq(multiplicand_lost | multiplicand[-1]),
                         multiplier.eq(multiplier >> 1)]
            with m.If(multiplier[0]):
                total = self.product + multiplicand
                m.d.sync += [self.product.eq(total),
                             self.overflow.eq(self.overflow | multiplicand_lost |
                                              total[len(self.product)])]
        return m
