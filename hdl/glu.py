"""GLU in gateware: ``a * sigmoid(b)`` on vectors streamed in memory order, as golden's rule.

The numerics are :func:`gatework.golden.glu.glu_fixed`'s: ``b`` is rescaled to the
pre-activation format, its sigmoid comes from :class:`.activation.Activation`, and the product
with ``a`` is rescaled to the data format with :func:`.arith.rescale`.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.formats import DEFAULT_FORMATS
from .activation import Activation, Function, activation_signature
from .arith import multiply, rescale
from .memory import NO_RW_CHECK, read_data


__all__ = ["GLUUnit"]


class GLUUnit(wiring.Component):
    """Compute ``a * sigmoid(b)`` for vectors of ``2 * C`` data words: ``a`` first, then ``b``.

    A vector arrives as its ``a`` half, ``C`` words, then its ``b`` half, ``C`` words (the
    memory order of the last dimension of golden's ``glu_fixed``); ``C`` outputs leave,
    ``a[j] * sigmoid(b[j])``, the last one marked. Vectors follow each other without a gap.
    The ``a`` half waits in a RAM; each ``b[j]`` reads its ``a[j]`` back as it is taken in, so
    the next vector's ``a`` half can overwrite the RAM while the current outputs are still
    being computed.

    The channel count ``C`` is the ``channels`` port, sampled when the first word of a vector
    is taken, and used for the whole vector (later changes wait for the next vector). A count
    of 0 or above ``max_channels`` is refused: while it is presented at a vector's start no
    word is taken (``i.ready`` stays low) and nothing is output, and while a first word is
    offered under it ``error`` is high (one cycle later: it is a register). Nothing is
    consumed or cut; as soon as ``channels`` holds a count from 1 to ``max_channels``, the
    waiting word starts a vector of that count and ``error`` falls.

    Parameters
    ----------
    formats : NumberFormats
        ``data`` for inputs and outputs, ``preactivation``, ``activation`` and the table for
        the sigmoid.
    max_channels : int
        Largest ``C``: the depth of the RAM that holds an ``a`` half.
    lut_multipliers : bool
        Build the product and the activation's interpolation of shifts and adds in logic
        cells (:func:`.arith.multiply`) rather than as multiplications, which synthesis puts
        on DSP blocks. Same results, same cycles.
    shared_activation : bool
        Use an activation unit outside the block, through the ``activation`` member, rather
        than one of its own; the owner shares it with another block (see
        :class:`~.top.AcceleratorTop`).

    Members
    -------
    channels : In(unsigned(max_channels.bit_length() + 1))
        ``C`` of the next vector; one bit wider than ``max_channels`` needs, so that counts
        past it can be presented (and refused) rather than wrap.
    i : In(stream.Signature(signed(data bits)))
        The words of each vector in order; no end marker, ``channels`` frames the vectors.
    o : Out(stream.Signature(StructLayout({"data": signed(data bits), "last": 1})))
        One word per channel; ``last`` marks the last word of each vector.
    error : Out(1)
        High while a vector's first word is refused for its channel count.
    activation : Out(activation_signature(formats).flip())
        Only with ``shared_activation``: the activation unit's ports, driven as the GLU's own
        would be (``function`` is always sigmoid).

    One input word per cycle is sustained across vectors, so a vector takes ``2 * C``
    cycles, when ``o`` is never stalled. An output is offered 9 cycles after its ``b`` word
    is taken (:attr:`latency`): one to read ``a`` back and rescale ``b``, the activation's
    :attr:`~.Activation.latency`, one for the product and one for its rescale. Resources:
    a RAM of ``max_channels`` data words, the activation's ROM and multiplier, a
    ``data bits`` x ``activation bits`` multiplier (16 x 16 by default: one DSP block, or
    with ``lut_multipliers`` an adder tree) and a FIFO of
    :attr:`~.Activation.latency` + 1 entries of ``data bits + 1`` that keeps each ``a``
    beside its ``b`` while the sigmoid is computed.
    """

    def __init__(self, formats=DEFAULT_FORMATS, max_channels=64, *, lut_multipliers=False,
                 shared_activation=False):
        if not isinstance(max_channels, int) or max_channels < 1:
            raise ValueError(f"max_channels must be an int >= 1 (the depth of the RAM that "
                             f"holds a vector's first half), not {max_channels!r}")
        self._formats = formats
        self._max_channels = max_channels
        self._lut_multipliers = lut_multipliers
        self._shared_activation = shared_activation
        data_bits = formats.data.total_bits
        members = {
            "channels": In(unsigned(max_channels.bit_length() + 1)),
            "i": In(stream.Signature(signed(data_bits))),
            "o": Out(stream.Signature(data.StructLayout({"data": signed(data_bits),
                                                         "last": 1}))),
            "error": Out(1),
        }
        if shared_activation:
            members["activation"] = Out(activation_signature(formats).flip())
        super().__init__(members)

    @property
    def latency(self):
        """Cycles from taking a ``b`` word to offering its output."""
        return Activation.latency + 3

    def elaborate(self, platform):
        m = Module()
        formats = self._formats
        data_format = formats.data

        if self._shared_activation:
            activation = self.activation
        else:
            m.submodules.activation = activation = Activation(
                formats, lut_multipliers=self._lut_multipliers)
        # Block RAM even when small: in flip-flops it costs more logic cells than the GLU. An
        # a is read only after it was written, by its b.
        m.submodules.ram = ram = Memory(shape=signed(data_format.total_bits),
                                        depth=self._max_channels, init=[],
                                        attrs={"ram_style": "block", **NO_RW_CHECK})
        write = ram.write_port()
        read = ram.read_port(domain="sync")
        stored_a = read_data(m, read, write, platform=platform)
        # Each entry is an a and whether its b is the last of a vector; it is written as its b
        # enters the activation and read as the sigmoid leaves, so the FIFO holds no more
        # than the activation, its latency in values. One entry more because a SyncFIFO
        # refuses a write when full even if it is read in the same cycle.
        pending_layout = data.StructLayout({"a": signed(data_format.total_bits), "last": 1})
        m.submodules.pending = pending = SyncFIFO(width=pending_layout.size,
                                                  depth=Activation.latency + 1)
        pending_in = data.View(pending_layout, pending.w_data)
        pending_out = data.View(pending_layout, pending.r_data)

        # Where the input is in its vector: the half (a or b) and the index in it.
        in_b_half = Signal()
        index = Signal(range(self._max_channels))
        count = Signal(range(self._max_channels + 1))
        at_start = ~in_b_half & (index == 0)
        count_valid = (self.channels >= 1) & (self.channels <= self._max_channels)
        vector_count = Mux(at_start, self.channels, count)
        last_of_half = index == vector_count - 1

        # The b stage: b rescaled to the pre-activation format, beside its a read from the RAM.
        b_valid = Signal()
        b_value = Signal(signed(formats.preactivation.total_bits), reset_less=True)
        b_last = Signal()
        b_advance = ~b_valid | (activation.i.ready & pending.w_rdy)
        m.d.comb += [
            activation.i.valid.eq(b_valid & pending.w_rdy),
            activation.i.payload.value.eq(b_value),
            activation.i.payload.function.eq(Function.SIGMOID),
            pending.w_en.eq(b_valid & activation.i.ready),
            pending_in.a.eq(stored_a),
            pending_in.last.eq(b_last),
        ]

        with m.If(in_b_half):
            m.d.comb += self.i.ready.eq(b_advance)
        with m.Elif(at_start):
            m.d.comb += self.i.ready.eq(count_valid)
        with m.Else():
            m.d.comb += self.i.ready.eq(1)
        taken = self.i.valid & self.i.ready
        m.d.sync += self.error.eq(at_start & self.i.valid & ~count_valid)

        m.d.comb += [
            write.addr.eq(index),
            write.data.eq(self.i.payload),
            write.en.eq(taken & ~in_b_half),
            read.addr.eq(index),
            read.en.eq(b_advance),
        ]
        with m.If(b_advance):
            m.d.sync += [
                b_valid.eq(taken & in_b_half),
                b_value.eq(rescale(self.i.payload, data_format.fraction_bits,
                                   formats.preactivation)),
                b_last.eq(last_of_half),
            ]
        with m.If(taken):
            m.d.sync += index.eq(index + 1)
            with m.If(at_start):
                m.d.sync += count.eq(self.channels)
            with m.If(last_of_half):
                m.d.sync += [index.eq(0), in_b_half.eq(~in_b_half)]

        # Join each sigmoid with its a: multiply, then rescale to the data format. The a entered
        # the FIFO in the same transfer as its b entered the activation, so it is there
        # whenever the sigmoid is.
        product = Signal(signed(data_format.total_bits + formats.activation.total_bits),
                         reset_less=True)
        product_valid = Signal()
        product_last = Signal()
        advance = self.o.ready | ~self.o.valid
        m.d.comb += [
            activation.o.ready.eq(advance),
            pending.r_en.eq(advance & activation.o.valid),
        ]
        with m.If(advance):
            m.d.sync += [
                product.eq(multiply(pending_out.a, activation.o.payload,
                                    lut=self._lut_multipliers)),
                product_valid.eq(activation.o.valid),
                product_last.eq(pending_out.last),
                self.o.payload.data.eq(rescale(product, data_format.fraction_bits +
                                               formats.activation.fraction_bits,
                                               data_format)),
                self.o.payload.last.eq(product_last),
                self.o.valid.eq(product_valid),
            ]
        return m
