"""Sigmoid and tanh in gateware: golden's interpolated tanh table, bit for bit.

The numerics are :class:`gatework.golden.activations.ActivationTable`'s, step for step; the
ROM holds the table's own integer arrays, so nothing here re-derives a table entry.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.formats import DEFAULT_FORMATS
from .arith import multiply


__all__ = ["Function", "Activation", "SharedActivation", "activation_signature"]


class Function(enum.Enum, shape=1):
    """Which function an :class:`Activation` input asks for."""

    SIGMOID = 0
    TANH = 1


def activation_signature(formats=DEFAULT_FORMATS):
    """The :class:`Activation`'s signature for ``formats``; flipped, that of a block using one.

    A block that can share one activation unit with another (they never use it at the same
    time) takes it as a member ``activation: Out(activation_signature(formats).flip())``.
    """
    return wiring.Signature({
        "i": In(stream.Signature(data.StructLayout({
            "value": signed(formats.preactivation.total_bits),
            "function": Function}))),
        "o": Out(stream.Signature(signed(formats.activation.total_bits))),
    })


class Activation(wiring.Component):
    """Compute sigmoid or tanh of a stream of pre-activation codes, as golden's table does.

    Each input names its function; sigmoid and tanh can alternate freely from one cycle to
    the next. The steps are those of :class:`~gatework.golden.activations.ActivationTable`:
    magnitude and sign of the input, segment index (clamped to the table's end entry),
    interpolation ``value + ((slope * offset + 2**(s-1)) >> s)`` with ``s`` offset bits
    (``k`` for tanh, ``k + 1`` for sigmoid), the sign put back, and for sigmoid
    ``(2**F + t + 1) >> 1`` saturated to the largest code.

    Parameters
    ----------
    formats : NumberFormats
        Supplies the input format (``preactivation``), the output format (``activation``) and
        the table (``formats.table``).
    lut_multipliers : bool
        Build the interpolation's multiplier of shifts and adds in logic cells
        (:func:`.arith.multiply`) rather than as a multiplication, which synthesis puts on a
        DSP block. Same results, same cycles.

    Members
    -------
    i : In(stream.Signature(StructLayout({"value", "function"})))
        ``value``: a pre-activation code, ``signed(preactivation bits)``; ``function``: a
        :class:`Function`, the one to apply to it.
    o : Out(stream.Signature(signed(activation bits)))
        The result, in the activation format.

    A value accepted in cycle ``c`` is offered on ``o`` in cycle ``c + 6`` (:attr:`latency`);
    one result per cycle is sustained. The pipeline moves only when its output register is
    empty or being read, so ``i.ready`` is low exactly while a full output waits. Resources:
    one ROM of ``segments + 1`` entries of ``activation bits + slope_bits`` bits, the table
    and its end entry (:attr:`rom_bits`; 513 x 27 = 13 851 bits by default; the depth is one
    past a power of two, which block RAM mapping may round up to twice the table's), one
    multiplier of a ``slope_bits`` by a ``k + 1`` bit unsigned offset (11 x 8 by default: one
    DSP block, or with ``lut_multipliers`` an adder tree of ``k + 1`` partial products), and
    a handful of adders and comparators.
    """

    latency = 6
    """Cycles from accepting an input to offering its result; also the most values the
    pipeline holds at once (one per register stage)."""

    def __init__(self, formats=DEFAULT_FORMATS, *, lut_multipliers=False):
        self._table = formats.table
        self._lut_multipliers = lut_multipliers
        super().__init__(activation_signature(formats))

    @property
    def _entry_layout(self):
        return data.StructLayout({
            "value": signed(self._table.output_format.total_bits),
            "slope": signed(self._table.slope_bits)})

    @property
    def rom_bits(self):
        """Bits of ROM the block uses: the table's entries and the end entry."""
        return (self._table.segments + 1) * self._entry_layout.size

    def elaborate(self, platform):
        m = Module()
        table = self._table
        output_format = table.output_format

        # The end entry (end_value, slope 0) is golden's: every segment index past the table
        # is clamped to it, which gives the saturated result without a select.
        entries = [{"value": int(value), "slope": int(slope)}
                   for value, slope in zip(table.values, table.slopes)]
        entries.append({"value": table.end_value, "slope": 0})
        m.submodules.rom = rom = Memory(shape=self._entry_layout, depth=table.segments + 1,
                                        init=entries)
        read = rom.read_port(domain="sync")

        # The pipeline advances whenever the output register is free or being emptied; the
        # ROM's read port holds its data with the stage registers.
        advance = self.o.ready | ~self.o.valid
        m.d.comb += [self.i.ready.eq(advance), read.en.eq(advance)]

        # Sigmoid reads the table with k + 1 offset bits, tanh with k. Doubling the tanh
        # magnitude lets both use k + 1: the segment index is the same, the offset doubles
        # and so do the product and the rounding constant, and the shift by one more bit
        # takes the doubling back out exactly. One multiplier width and no shift select.
        shift = table.offset_bits + 1
        value = self.i.payload.value
        is_tanh = self.i.payload.function == Function.TANH
        magnitude = Mux(value < 0, -value, value).as_unsigned()
        scaled = Signal(unsigned(len(value) + 1))
        m.d.comb += scaled.eq(Mux(is_tanh, magnitude << 1, magnitude))
        segment = scaled >> shift
        m.d.comb += read.addr.eq(Mux(segment > table.segments, table.segments, segment))

        # Stage 1: the ROM entry is read; the offset and sign wait beside it.
        # Datapath registers have no reset: they are only read beside a valid bit.
        offset_1 = Signal(unsigned(shift), reset_less=True)
        negative_1 = Signal()
        tanh_1 = Signal()
        valid_1 = Signal()
        # Stage 2: the entry in a register of its own, as a block RAM's data arrives late in
        # its cycle.
        slope_2 = Signal.like(read.data.slope, reset_less=True)
        value_2 = Signal.like(read.data.value, reset_less=True)
        offset_2 = Signal.like(offset_1, reset_less=True)
        negative_2 = Signal()
        tanh_2 = Signal()
        valid_2 = Signal()
        # Stage 3: the slope times the offset, beside the value scaled to the product's
        # fraction bits with the rounding constant added, so that stage 4 is one addition:
        # value + ((product + 2**(s-1)) >> s) == ((value << s) + 2**(s-1) + product) >> s.
        product_3 = Signal(signed(table.slope_bits + shift), reset_less=True)
        base_3 = Signal(signed(output_format.total_bits + shift + 1), reset_less=True)
        negative_3 = Signal()
        tanh_3 = Signal()
        valid_3 = Signal()
        # Stage 4: the interpolated magnitude of tanh; it lies between two table points, so
        # it never exceeds the output format and its negation never wraps.
        magnitude_4 = Signal(unsigned(output_format.total_bits), reset_less=True)
        negative_4 = Signal()
        tanh_4 = Signal()
        valid_4 = Signal()
        # Stage 5: tanh, the sign put back.
        tanh_value_5 = Signal(signed(output_format.total_bits), reset_less=True)
        tanh_5 = Signal()
        valid_5 = Signal()

        with m.If(advance):
            m.d.sync += [
                offset_1.eq(scaled[:shift]),
                negative_1.eq(value < 0),
                tanh_1.eq(is_tanh),
                valid_1.eq(self.i.valid),

                slope_2.eq(read.data.slope),
                value_2.eq(read.data.value),
                offset_2.eq(offset_1),
                negative_2.eq(negative_1),
                tanh_2.eq(tanh_1),
                valid_2.eq(valid_1),

                product_3.eq(multiply(slope_2, offset_2, lut=self._lut_multipliers)),
                base_3.eq((value_2 << shift) + (1 << (shift - 1))),
                negative_3.eq(negative_2),
                tanh_3.eq(tanh_2),
                valid_3.eq(valid_2),

                magnitude_4.eq((base_3 + product_3) >> shift),
                negative_4.eq(negative_3),
                tanh_4.eq(tanh_3),
                valid_4.eq(valid_3),

                tanh_value_5.eq(Mux(negative_4, -magnitude_4, magnitude_4)),
                tanh_5.eq(tanh_4),
                valid_5.eq(valid_4),
            ]
            sigmoid = ((1 << output_format.fraction_bits) + tanh_value_5 + 1) >> 1
            sigmoid = Mux(sigmoid > output_format.max_int, output_format.max_int, sigmoid)
            m.d.sync += [
                self.o.payload.eq(Mux(tanh_5, tanh_value_5, sigmoid)),
                self.o.valid.eq(valid_5),
            ]
        return m


class SharedActivation(wiring.Component):
    """One :class:`Activation` unit shared by two blocks that never use it at once.

    The accelerator's GRU engine and GLU unit take turns at one unit (a ROM and a multiplier
    fewer). The engine has it while ``engine_owns`` is set; the GLU from :attr:`Activation.
    latency` cycles after ``engine_owns`` falls, once the engine's last values have left the
    unit, so that no value reaches the wrong block.

    Parameters
    ----------
    formats : NumberFormats

    Members
    -------
    engine_owns : In(1)
        The engine has the unit; its requests are dropped otherwise.
    engine, glu : In(activation_signature(formats).flip())
        The two blocks' ``activation`` members: each sees an :class:`Activation`'s ports.
    unit : Out(activation_signature(formats).flip())
        The shared :class:`Activation`'s ports.

    Resources: a counter of :attr:`Activation.latency` cycles and the multiplexers.
    """

    def __init__(self, formats=DEFAULT_FORMATS):
        signature = activation_signature(formats).flip()
        super().__init__({
            "engine_owns": In(1),
            "engine": In(signature),
            "glu": In(signature),
            "unit": Out(signature),
        })

    def elaborate(self, platform):
        m = Module()
        unit, engine, glu = self.unit, self.engine, self.glu
        settling = Signal(range(Activation.latency + 1))
        with m.If(self.engine_owns):
            m.d.sync += settling.eq(Activation.latency)
        with m.Elif(settling != 0):
            m.d.sync += settling.eq(settling - 1)
        glu_owns = ~self.engine_owns & (settling == 0)
        m.d.comb += [
            unit.i.valid.eq(Mux(glu_owns, glu.i.valid, self.engine_owns & engine.i.valid)),
            unit.i.payload.eq(Mux(glu_owns, glu.i.payload, engine.i.payload)),
            unit.o.ready.eq(Mux(glu_owns, glu.o.ready, engine.o.ready)),
            glu.i.ready.eq(glu_owns & unit.i.ready),
            glu.o.valid.eq(glu_owns & unit.o.valid),
            glu.o.payload.eq(unit.o.payload),
            engine.i.ready.eq(unit.i.ready),
            engine.o.valid.eq(unit.o.valid),
            engine.o.payload.eq(unit.o.payload),
        ]
        return m
