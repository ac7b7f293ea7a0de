"""Fixed-point arithmetic in gateware: golden's rescale rule, a multiply-accumulate unit, a
multiplication that can be kept out of DSP blocks, and a sequential multiplier for sizes.

The numerics are :mod:`gatework.golden.fixed`'s, bit for bit: products are exact, an
accumulator has :meth:`QFormat.accumulator`'s width, and narrowing rounds half up and
saturates.
"""

from amaranth.hdl import (Cat, ClockSignal, Const, Instance, Module, Mux, Signal, Value, signed,
                          unsigned)
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.fixed import QFormat


__all__ = ["rescale", "multiply", "pipelined_product", "Rescale", "MultiplyAccumulate",
           "SequentialMultiplier"]


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


def multiply(a, b, *, lut):
    """Expression for ``a * b``; with ``lut``, of shifts and adds that synthesis keeps in logic.

    Yosys puts every multiplication of more than a few bits on a DSP block (an SB_MAC16 on
    iCE40). With ``lut`` the product is a sum of one partial product per bit of the narrower
    operand, ``Mux(b[i], a << i, 0)`` (the sign bit of a signed operand weighs ``-2**i``),
    added in a balanced tree. Each addition takes the low bits of its less shifted operand
    past the adder, which then spans only the bits where both operands have some: about a
    quarter fewer LUTs on iCE40 than adding whole shifted terms. Either way the expression
    has the shape of ``a * b`` and, for every pair of operands, its value.
    """
    a, b = Value.cast(a), Value.cast(b)
    if not lut:
        return a * b
    shape = (a * b).shape()
    if len(b) > len(a):
        a, b = b, a
    # (value, shift) pairs: the partial product is value << shift.
    top = len(b) - 1
    terms = [(Mux(b[i], a, 0), i) for i in range(top)]
    terms.append((Mux(b[top], -a if b.shape().signed else a, 0), top))

    def add(low, high):
        (low, low_shift), (high, high_shift) = low, high
        passed = high_shift - low_shift
        total = (low >> passed) + high
        joined = Cat(low[:passed], total)
        return (joined.as_signed() if total.shape().signed else joined), low_shift

    while len(terms) > 1:
        terms = [add(terms[k], terms[k + 1]) if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
    total, _ = terms[0]
    # The product fits the shape of a * b: truncate, or sign- or zero-extend a narrow sum.
    if len(total) < shape.width:
        fill = total[-1] if total.shape().signed else 0
        total = Cat(total, Value.cast(fill).replicate(shape.width - len(total)))
    total = total[:shape.width]
    return total.as_signed() if shape.signed else total


def _ecp5(platform):
    return getattr(platform, "family", None) == "ecp5"


def pipelined_product(m, a, b, *, enable, platform, name):
    """``a * b`` (both signed), two clock edges later: ``a`` and ``b`` are taken into
    registers at one edge where ``enable`` is high, and their product at the next such edge.
    Returns the product register, ``len(a) + len(b)`` bits wide.

    On an ECP5 with operands of at most 18 bits the three registers are the MULT18X18D's own
    (input registers A and B, output register P, all enabled by ``enable``): nextpnr then
    times the multiplier from register to register inside the block, where a multiplier
    Yosys infers has no registers and its operands, its product and the routes to and from
    it all fall in one cycle. Anywhere else (simulation, iCE40, wider operands) three
    registers around ``a * b``, which iCE40 synthesis may take into an SB_MAC16.
    """
    a, b = Value.cast(a), Value.cast(b)
    width = len(a) + len(b)
    product = Signal(signed(width), name=f"{name}_product")
    if _ecp5(platform) and max(len(a), len(b)) <= 18:
        a_wide, b_wide = a.as_signed(), b.as_signed()
        p = Signal(36, name=f"{name}_p")
        ports = {f"i_A{i}": a_wide[min(i, len(a) - 1)] for i in range(18)}
        ports.update({f"i_B{i}": b_wide[min(i, len(b) - 1)] for i in range(18)})
        ports.update({f"i_C{i}": Const(0, 1) for i in range(18)})
        ports.update({f"o_P{i}": p[i] for i in range(36)})
        m.submodules[f"{name}_mult"] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
            i_CLK0=ClockSignal(), i_CE0=enable, i_RST0=Const(0, 1),
            i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            **ports)
        m.d.comb += product.eq(p[:width])
        return product
    a_register = Signal(signed(len(a)), name=f"{name}_a", reset_less=True)
    b_register = Signal(signed(len(b)), name=f"{name}_b", reset_less=True)
    product_register = Signal(signed(width), name=f"{name}_p", reset_less=True)
    with m.If(enable):
        m.d.sync += [a_register.eq(a), b_register.eq(b),
                     product_register.eq(a_register * b_register)]
    m.d.comb += product.eq(product_register)
    return product


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

    @staticmethod
    def user_signature(width):
        """A user's port of a shared multiplier of ``width`` bits (see :func:`~.share.share`):
        its members, flipped."""
        return wiring.Signature({
            "start": Out(1),
            "a": Out(unsigned(width)),
            "b": Out(unsigned(width)),
            "busy": In(1),
            "product": In(unsigned(width)),
            "overflow": In(1),
        })

    def __init__(self, width):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be an int >= 1 (bits of the operands and the "
                             f"product), not {width!r}")
        super().__init__(dict(self.user_signature(width).flip().members))

    def elaborate(self, platform):
        m = Module()
        multiplicand = Signal.like(self.a)      # a << i, for bit i of b
        multiplicand_lost = Signal()            # a << i has lost bits past the width
        multiplier = Signal.like(self.b)        # b >> i
        # busy is multiplier != 0, kept in a register of its own: what waits on the product
        # then starts from a flip-flop, not from a wide comparison.
        next_multiplier = Signal.like(self.b)
        m.d.comb += next_multiplier.eq(multiplier)
        m.d.sync += [multiplier.eq(next_multiplier), self.busy.eq(next_multiplier != 0)]
        with m.If(self.start):
            m.d.comb += next_multiplier.eq(self.b)
            m.d.sync += [multiplicand.eq(self.a), multiplicand_lost.eq(0),
                         self.product.eq(0), self.overflow.eq(0)]
        with m.Elif(self.busy):
            m.d.comb += next_multiplier.eq(multiplier >> 1)
            m.d.sync += [multiplicand.eq(multiplicand << 1),
                         multiplicand_lost.eq(multiplicand_lost | multiplicand[-1])]
            with m.If(multiplier[0]):
                total = self.product + multiplicand
                m.d.sync += [self.product.eq(total),
                             self.overflow.eq(self.overflow | multiplicand_lost |
                                              total[len(self.product)])]
        return m
