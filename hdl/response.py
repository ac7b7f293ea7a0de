"""A response's payload bytes: the INFO ROM's, or words two bytes each, low byte first."""

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .stream import StreamRegister


__all__ = ["ResponseWriter"]


class ResponseWriter(wiring.Component):
    """Send a response's payload: INFO's bytes from a ROM, or a stream of 16-bit words.

    Words pass a :class:`~.stream.StreamRegister` first, so that the block RAMs they are read
    from meet no logic before a flip-flop; each leaves as two bytes, low byte first, as the
    protocol carries an ``i16``.

    Parameters
    ----------
    info : bytes
        INFO's payload (:func:`gatework.golden.protocol.info_payload`), held in a ROM.

    Members
    -------
    begin : In(1)
        A response begins: no byte sent, the next word's low byte first.
    words : In(stream.Signature(unsigned(16)))
        The payload's words, while ``send``.
    send : In(1)
        Send ``words``' bytes on ``o``.
    info : In(1)
        Send the INFO ROM's bytes on ``o``, from byte ``sent``.
    o : Out(stream.Signature(unsigned(8)))
        Payload bytes, to the frame transmitter; only while ``send`` or ``info``.
    sent : Out(17)
        Payload bytes sent since ``begin``.

    Resources: the words' register slice, the ROM, a byte multiplexer and the counter.
    """

    def __init__(self, info):
        self._info = bytes(info)
        super().__init__({
            "begin": In(1),
            "words": In(stream.Signature(unsigned(16))),
            "send": In(1),
            "info": In(1),
            "o": Out(stream.Signature(unsigned(8))),
            "sent": Out(17),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.words = words = StreamRegister(unsigned(16))
        wiring.connect(m, wiring.flipped(self.words), words.i)
        high_half = Signal()
        rom = Array(Const(byte, 8) for byte in self._info)
        with m.If(self.info):
            m.d.comb += [self.o.valid.eq(1),
                         self.o.payload.eq(rom[self.sent[:(len(rom) - 1).bit_length()]])]
        with m.Elif(self.send):
            m.d.comb += [self.o.valid.eq(words.o.valid),
                         self.o.payload.eq(Mux(high_half, words.o.payload[8:16],
                                               words.o.payload[0:8])),
                         words.o.ready.eq(high_half & self.o.ready)]
        with m.If(self.begin):
            m.d.sync += [self.sent.eq(0), high_half.eq(0)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += self.sent.eq(self.sent + 1)
            with m.If(~self.info):
                m.d.sync += high_half.eq(~high_half)
        return m
