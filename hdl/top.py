"""The accelerator top: wire bytes in, protocol v1 responses out.

It puts the link (:class:`~.link.FrameReceiver`, :class:`~.link.FrameTransmitter`) in front
of the command decoder. It answers INFO, RESET and GLU today; LOAD and RUN, which need the
sequencer that drives the GRU engine layer by layer, are answered ``UNKNOWN_COMMAND`` until
it lands. Every answer, errors included, is byte for byte what
:class:`gatework.host.device_model.DeviceModel` answers, which the tests check.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from ..golden.protocol import RESPONSE_FLAG, Command, Status, info_payload
from .glu import GLUUnit
from .link import FrameReceiver, FrameTransmitter


__all__ = ["AcceleratorTop"]


class AcceleratorTop(wiring.Component):
    """Answer protocol v1 frames arriving on a byte stream.

    Parameters
    ----------
    config : BuildConfig
        The build's maxima and formats, reported by INFO; the GLU unit holds
        ``config.max_hidden_size`` channels.
    max_payload : int
        Largest request payload the receiver buffers, reported by INFO.
    clock_hz : int
        The clock, reported by INFO (0: unknown).

    Members
    -------
    i : In(stream.Signature(unsigned(8)))
        Wire bytes from the host (a UART or any byte pipe).
    o : Out(stream.Signature(unsigned(8)))
        Wire bytes to the host.

    A response starts a few cycles after its request's last byte has been checked; a GLU
    streams one input word per two payload bytes, so it runs at the link's byte rate.
    Resources: the link's buffers, a 32-byte INFO ROM, the GLU unit and a small state
    machine.
    """

    def __init__(self, config=BuildConfig(), max_payload=1024, clock_hz=0):
        self._config = config
        self._max_payload = max_payload
        self._info = info_payload(config, max_payload, clock_hz)
        super().__init__({
            "i": In(stream.Signature(unsigned(8))),
            "o": Out(stream.Signature(unsigned(8))),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        m.submodules.receiver = receiver = FrameReceiver(self._max_payload)
        m.submodules.transmitter = transmitter = FrameTransmitter()
        m.submodules.glu = glu = GLUUnit(config.formats, max_channels=config.max_hidden_size)
        wiring.connect(m, wiring.flipped(self.i), receiver.i)
        wiring.connect(m, transmitter.o, wiring.flipped(self.o))

        command = Signal(8)
        sequence = Signal(8)
        length = Signal(16)
        status = Signal(8)
        response_length = Signal(16)
        remaining = Signal(16)          # request payload bytes still to take
        sent = Signal(17)               # response payload bytes sent
        channels = Signal(16)
        count = Signal(16)
        field = Signal(range(4))
        info = Array(Const(byte, 8) for byte in self._info)
        low_byte = Signal(8)
        have_low = Signal()
        high_half = Signal()

        m.d.comb += [
            transmitter.header.payload.command.eq(command | RESPONSE_FLAG),
            transmitter.header.payload.sequence.eq(sequence),
            transmitter.header.payload.length.eq(response_length),
            transmitter.header.payload.status.eq(status),
            glu.channels.eq(channels),
        ]

        def answer(m, code, payload_bytes=0):
            m.d.sync += [status.eq(code), response_length.eq(payload_bytes)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [receiver.error.ready.eq(1),
                             receiver.header.ready.eq(~receiver.error.valid)]
                with m.If(receiver.error.valid):
                    # The receiver's command and sequence: the first body bytes as received.
                    m.d.sync += [command.eq(receiver.error.payload.command),
                                 sequence.eq(receiver.error.payload.sequence),
                                 remaining.eq(0)]
                    answer(m, receiver.error.payload.status)
                    m.next = "HEADER"
                with m.Elif(receiver.header.valid):
                    header = receiver.header.payload
                    m.d.sync += [command.eq(header.command), sequence.eq(header.sequence),
                                 length.eq(header.length), remaining.eq(header.length),
                                 field.eq(0), sent.eq(0)]
                    with m.Switch(header.command):
                        with m.Case(Command.INFO, Command.RESET):
                            with m.If(header.length != 0):
                                answer(m, Status.MALFORMED)
                            with m.Elif(header.command == Command.INFO):
                                answer(m, Status.OK, len(self._info))
                            with m.Else():
                                answer(m, Status.OK)
                            m.next = "DRAIN"
                        with m.Case(Command.GLU):
                            m.next = "GLU_FIELDS"
                        with m.Default():
                            answer(m, Status.UNKNOWN_COMMAND)
                            m.next = "DRAIN"

            with m.State("GLU_FIELDS"):
                # channels u16 | count u16, then the checks in the protocol's order.
                with m.If(remaining == 0):
                    answer(m, Status.MALFORMED)
                    m.next = "DRAIN"
                with m.Else():
                    m.d.comb += receiver.payload.ready.eq(1)
                    with m.If(receiver.payload.valid):
                        byte = receiver.payload.payload.data
                        m.d.sync += [remaining.eq(remaining - 1), field.eq(field + 1)]
                        with m.Switch(field):
                            with m.Case(0):
                                m.d.sync += channels.eq(byte)
                            with m.Case(1):
                                m.d.sync += channels.eq(channels | (byte << 8))
                            with m.Case(2):
                                m.d.sync += count.eq(byte)
                            with m.Case(3):
                                m.d.sync += count.eq(count | (byte << 8))
                                m.next = "GLU_CHECK"

            with m.State("GLU_CHECK"):
                words = channels * count
                with m.If((channels == 0) | (count == 0) | (4 * words != length - 4)):
                    answer(m, Status.MALFORMED)
                    m.next = "DRAIN"
                with m.Elif(channels > config.max_hidden_size):
                    answer(m, Status.BEYOND_MAXIMA)
                    m.next = "DRAIN"
                with m.Else():
                    answer(m, Status.OK, 2 * words)
                    m.d.sync += [have_low.eq(0), high_half.eq(0)]
                    m.next = "HEADER"

            with m.State("DRAIN"):
                # Whatever the request still carries is read and dropped before the answer.
                m.d.comb += receiver.payload.ready.eq(1)
                with m.If(remaining == 0):
                    m.next = "HEADER"
                with m.Elif(receiver.payload.valid):
                    m.d.sync += remaining.eq(remaining - 1)

            with m.State("HEADER"):
                m.d.comb += transmitter.header.valid.eq(1)
                with m.If(transmitter.header.ready):
                    with m.If(response_length == 0):
                        m.next = "IDLE"
                    with m.Elif(command == Command.INFO):
                        m.next = "INFO"
                    with m.Else():
                        m.next = "GLU"

            with m.State("INFO"):
                m.d.comb += [transmitter.payload.valid.eq(1),
                             transmitter.payload.payload.eq(info[sent[:6]])]
                with m.If(transmitter.payload.ready):
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(sent == len(self._info) - 1):
                        m.next = "IDLE"

            with m.State("GLU"):
                # Request bytes pair up into words for the GLU unit (little-endian)...
                m.d.comb += receiver.payload.ready.eq(~have_low | glu.i.ready)
                m.d.comb += [glu.i.valid.eq(have_low & receiver.payload.valid),
                             # An i16 travels low byte first.
                             glu.i.payload.eq(Cat(low_byte,
                                                  receiver.payload.payload.data).as_signed())]
                with m.If(receiver.payload.valid & receiver.payload.ready):
                    m.d.sync += [remaining.eq(remaining - 1), have_low.eq(~have_low),
                                 low_byte.eq(receiver.payload.payload.data)]
                # ... and its results leave as two bytes each.
                result = glu.o.payload.data.as_unsigned()
                m.d.comb += [
                    transmitter.payload.valid.eq(glu.o.valid),
                    transmitter.payload.payload.eq(Mux(high_half, result[8:16], result[0:8])),
                    glu.o.ready.eq(high_half & transmitter.payload.ready),
                ]
                with m.If(transmitter.payload.valid & transmitter.payload.ready):
                    m.d.sync += [high_half.eq(~high_half), sent.eq(sent + 1)]
                    with m.If(sent == response_length - 1):
                        m.next = "IDLE"
        return m

