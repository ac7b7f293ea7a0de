"""An 8N1 UART in gateware: one start bit, 8 data bits least significant first, one stop bit.

The bit time is ``divisor`` clock cycles (the clock frequency over the baud rate), fixed when
the block is built. The line is high when idle.
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out


__all__ = ["UARTReceiver", "UARTTransmitter"]


# A start bit, the data bits, a stop bit.
_DATA_BITS = 8
_FRAME_BITS = 1 + _DATA_BITS + 1


class _UART(wiring.Component):
    """What both directions share: a bit time of ``divisor`` cycles, at least ``_smallest``."""

    _smallest = 1

    def __init__(self, divisor):
        if not isinstance(divisor, int) or divisor < self._smallest:
            raise ValueError(f"divisor must be an int >= {self._smallest} (clock cycles per "
                             f"bit: the clock frequency over the baud rate), not {divisor!r}")
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor


class UARTTransmitter(_UART):
    """Send bytes on a serial line, 8N1, ``divisor`` clock cycles per bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 1: the clock frequency over the baud rate, rounded.

    Members
    -------
    i : In(stream.Signature(unsigned(8)))
        Bytes to send.
    tx : Out(1)
        The serial line, straight from a flip-flop (no glitches); high when idle.

    Throughput: one byte per ``10 * divisor`` cycles; the next byte is taken in the last
    cycle of a stop bit, so bytes follow each other with no idle time. Latency: the start bit
    begins the cycle after a byte is taken. Resources: a 10-bit shift register, a bit counter
    and a cycle counter of ``divisor``: 32 LUT4 and 20 flip-flops on iCE40 at ``divisor=104``.
    """

    i: In(stream.Signature(unsigned(8)))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        # Bits still to send, the one on the line first; ones shift in behind, so an idle
        # line is high.
        bits = Signal(_FRAME_BITS, init=(1 << _FRAME_BITS) - 1)
        left = Signal(range(_FRAME_BITS + 1))
        timer = Signal(range(self._divisor))
        bit_done = timer == 0
        m.d.comb += [
            self.tx.eq(bits[0]),
            self.i.ready.eq((left == 0) | ((left == 1) & bit_done)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                bits.eq(Cat(0, self.i.payload, 1)),
                left.eq(_FRAME_BITS),
                timer.eq(self._divisor - 1),
            ]
        with m.Elif(left != 0):
            with m.If(bit_done):
                m.d.sync += [
                    bits.eq(Cat(bits[1:], 1)),
                    left.eq(left - 1),
                    timer.eq(self._divisor - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTReceiver(_UART):
    """Receive bytes from a serial line, 8N1, ``divisor`` clock cycles per bit.

    The line goes through a two flip-flop synchroniser. A falling edge starts a byte; every
    bit is sampled once, in its middle (``divisor // 2`` cycles after the edge, then every
    ``divisor``). A start bit that is high again in its middle was a glitch: it is ignored.
    A stop bit that is low is a framing error: the byte is dropped, ``error`` pulses, and the
    receiver waits for the line to go high before it looks for the next start bit. Sampling
    in the middle tolerates a baud rate mismatch of up to about ``50 / 9.5`` percent, less
    the synchroniser's uncertainty of one cycle in ``divisor``.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 2: the clock frequency over the baud rate, rounded.

    Members
    -------
    rx : In(1)
        The serial line, asynchronous to the clock; high when idle.
    o : Out(stream.Signature(unsigned(8)))
        Received bytes. A byte waits here until it is taken; a byte that arrives before that
        is dropped (``overrun``).
    error : Out(1)
        Pulses for one cycle at each framing error.
    overrun : Out(1)
        Pulses for one cycle at each byte dropped because ``o`` still held the one before.

    Throughput: one byte per ``10 * divisor`` cycles (a byte is taken in the middle of its
    stop bit, so the next start bit can follow it at once). Latency: a byte is offered
    ``divisor // 2 + 3`` cycles into its stop bit (synchroniser, edge, sampling register).
    Resources: 3 flip-flops at the line, an 8-bit shift register, a bit counter and a cycle
    counter of ``divisor``: 38 LUT4 and 34 flip-flops on iCE40 at ``divisor=104``.
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(unsigned(8)))
    error: Out(1)
    overrun: Out(1)

    # It samples a bit in its middle, divisor // 2 cycles in.
    _smallest = 2

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.synchroniser = FFSynchronizer(self.rx, line, init=1)
        previous = Signal(init=1)
        m.d.sync += previous.eq(line)

        timer = Signal(range(self._divisor))
        sample = timer == 0
        data_bits = Signal(_DATA_BITS)
        index = Signal(range(_DATA_BITS))
        with m.If(~sample):
            m.d.sync += timer.eq(timer - 1)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.error.eq(0), self.overrun.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(previous & ~line):
                    m.d.sync += timer.eq(self._divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(sample):
                    m.d.sync += [timer.eq(self._divisor - 1), index.eq(0)]
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(sample):
                    m.d.sync += [
                        timer.eq(self._divisor - 1),
                        data_bits.eq(Cat(data_bits[1:], line)),
                        index.eq(index + 1),
                    ]
                    with m.If(index == _DATA_BITS - 1):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(sample):
                    with m.If(~line):
                        m.d.sync += self.error.eq(1)
                    with m.Elif(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(data_bits)]
                    m.next = "IDLE"
        return m
