"""A register slice for ``lib.stream`` interfaces: full throughput, every output registered.

Between two blocks a chain of combinational ``valid``/``payload`` forward and ``ready``
backward can cross several modules (a RAM's output through a decoder into an encoder, say)
and set the clock. :class:`StreamRegister` cuts both: ``o.valid`` and ``o.payload`` come from
flip-flops, and so does ``i.ready``; a word that arrives while the output stalls waits in a
second (skid) register, so one word per cycle still passes.
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


__all__ = ["StreamRegister"]


class StreamRegister(wiring.Component):
    """One pipeline stage on a stream of ``shape``.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))

    Throughput: one word per cycle. Latency: a word taken in cycle ``c`` is offered in
    cycle ``c + 1``. Resources: two registers of ``shape`` and two flip-flops.
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self._shape)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.ready | ~self.o.valid):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
