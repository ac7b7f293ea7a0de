"""The link layer in gateware: COBS frames on a byte stream, checked by CRC-16, as golden's rules.

The byte rules are :mod:`gatework.golden.protocol`'s: a frame on the wire is
``cobs_encode(body) + b"\\x00"``, the last two body bytes are the little-endian
:func:`~gatework.golden.protocol.crc16` of the bytes before them, and a request body is
``command | sequence | length u16 | payload | crc``, a response body
``command | sequence | length u16 | status | payload | crc``, ``length`` counting payload bytes
only.

:class:`FrameReceiver` decodes, buffers and checks a request and releases it only when it is
good; :class:`FrameTransmitter` frames a response. Both compute the CRC on the fly with
:class:`Crc16`, whose byte step is derived from golden's :func:`~gatework.golden.protocol.crc16`
itself, and :class:`CobsEncoder` is the transmitter's encoder.
"""

from functools import reduce
from operator import xor

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.protocol import (CRC, MAX_PAYLOAD, REQUEST_HEADER, RESPONSE_HEADER, Status,
                               cobs_encode, crc16)
from .memory import NO_RW_CHECK, BankedMemory, read_data
from .protocol import layout
from .stream import StreamRegister


__all__ = ["CRC_INITIAL", "crc16_update", "Crc16", "CobsEncoder", "FrameReceiver",
           "FrameTransmitter", "REQUEST_HEADER_LAYOUT", "RESPONSE_HEADER_LAYOUT",
           "FRAME_ERROR_LAYOUT", "BYTE_LAYOUT"]


#: The CRC register before the first byte of a body.
CRC_INITIAL = crc16(b"")
# CRC-16 without a final xor is linear over GF(2): one byte step maps ``crc ^ byte << 8``
# through a fixed 16 x 16 bit matrix, whose columns are golden's step applied to each unit
# vector. So the gateware's XOR network is read off golden's function, not written again.
_CRC_COLUMNS = [crc16(b"\x00", 1 << bit) for bit in range(16)]

#: A byte with a marker on the last one of a frame or body.
BYTE_LAYOUT = data.StructLayout({"data": unsigned(8), "last": 1})
#: What :class:`FrameReceiver` releases before a good request's payload.
REQUEST_HEADER_LAYOUT = layout(REQUEST_HEADER)
#: What :class:`FrameTransmitter` takes before a response's payload.
RESPONSE_HEADER_LAYOUT = layout(RESPONSE_HEADER)
#: What :class:`FrameReceiver` reports for a bad frame, so that the device can answer it.
FRAME_ERROR_LAYOUT = data.StructLayout({
    "status": unsigned(8), "command": unsigned(8), "sequence": unsigned(8)})

# Body bytes around the payload: command, sequence and length (and status in a response)
# before it, the CRC after it.
_REQUEST_HEADER_BYTES = REQUEST_HEADER.size
_RESPONSE_HEADER_BYTES = RESPONSE_HEADER.size
_CRC_BYTES = CRC.size
# COBS: a block holds at most 254 bytes; its code byte is its length plus one.
_COBS_BLOCK = 254


def crc16_update(crc, byte):
    """Return the CRC-16/CCITT-FALSE after one more ``byte``: a combinational expression.

    Parameters
    ----------
    crc : Value, 16 bits
        The CRC so far; :data:`CRC_INITIAL` before the first byte.
    byte : Value, 8 bits

    The expression is a flat XOR network (each bit the parity of at most 16 input bits), the
    same function as golden's :func:`~gatework.golden.protocol.crc16` of one byte.
    """
    state = crc ^ Cat(Const(0, 8), byte)
    return Cat(*(reduce(xor, [state[source] for source in range(16)
                              if _CRC_COLUMNS[source] >> bit & 1], Const(0, 1))
                 for bit in range(16)))


class Crc16(wiring.Component):
    """Compute CRC-16/CCITT-FALSE over bytes, one per cycle, as golden's ``crc16``.

    Members
    -------
    data : In(8)
        The byte to add.
    enable : In(1)
        Add ``data`` this cycle.
    clear : In(1)
        Start a new CRC: with ``enable``, ``data`` is its first byte; alone, ``value`` returns
        to :data:`CRC_INITIAL`.
    value : Out(16)
        The CRC of the bytes added since the last ``clear`` (a register, :data:`CRC_INITIAL`
        after reset).

    Latency: ``value`` includes a byte the cycle after it is added. Throughput: one byte per
    cycle. Resources: 16 flip-flops and 16 XOR trees of at most 16 inputs: 54 LUT4 on iCE40,
    37 LUT4 on ECP5.
    """

    data: In(8)
    enable: In(1)
    clear: In(1)
    value: Out(16, init=CRC_INITIAL)

    def elaborate(self, platform):
        m = Module()
        start = Mux(self.clear, CRC_INITIAL, self.value)
        with m.If(self.enable):
            m.d.sync += self.value.eq(crc16_update(start, self.data))
        with m.Elif(self.clear):
            m.d.sync += self.value.eq(CRC_INITIAL)
        return m


class CobsEncoder(wiring.Component):
    """COBS-encode frames and end each with a zero byte, as golden ``cobs_encode(body) + 0``.

    A COBS block's code byte (its length plus one) goes before its bytes, so each block is
    held until it closes: at a zero byte, at 254 non-zero bytes or at the frame's last byte.
    Block bytes wait in a ring of 512 bytes; each closed block leaves a descriptor (its
    length and what follows it) in a queue of :data:`BLOCKS_QUEUED`. The ring holds a block
    being sent and a full one being filled, so the input stops only while the output is
    busy, and the output idles only while the next block has not closed.

    Members
    -------
    i : In(stream.Signature(BYTE_LAYOUT))
        The bytes of each frame (any values), ``last`` on the last; a frame has at least one
        byte.
    o : Out(stream.Signature(unsigned(8)))
        The encoding of each frame, then ``0x00``.

    Throughput: one byte per cycle in and one per cycle out; a frame of ``n`` bytes gives
    ``len(cobs_encode(frame)) + 1`` bytes: ``n + 2``, one more per full block (254 non-zero
    bytes in a row). Latency: a block's code byte is
    offered 2 cycles after the byte that closes the block is taken, so up to 255 cycles
    after its first byte. Resources: a RAM of 512 bytes, a queue of :data:`BLOCKS_QUEUED`
    descriptors of 10 bits, two 10-bit ring pointers, an 8-bit count and index: on iCE40
    one EBR, 205 LUT4 and 122 flip-flops (Yosys, no place and route).
    """

    #: Closed blocks that may wait to be sent. More only helps runs of zero bytes (a block
    #: each) behind a long block, when the output is busy anyway.
    BLOCKS_QUEUED = 4

    i: In(stream.Signature(BYTE_LAYOUT))
    o: Out(stream.Signature(unsigned(8)))

    def elaborate(self, platform):
        m = Module()
        ring_bytes = 512
        # The reader reads only bytes of closed blocks, which the writer has passed.
        m.submodules.ring = ring = Memory(shape=unsigned(8), depth=ring_bytes, init=[],
                                          attrs=NO_RW_CHECK)
        write = ring.write_port()
        read = ring.read_port()
        read_byte = read_data(m, read, write, platform=platform)
        # A closed block: its byte count, and what follows it when it ends the frame (a
        # frame ending on a zero or on a full block has an empty final block, code 0x01).
        descriptor = data.StructLayout({"count": range(_COBS_BLOCK + 1), "extra_one": 1,
                                        "delimiter": 1})
        m.submodules.blocks = blocks = SyncFIFO(width=descriptor.size,
                                                depth=self.BLOCKS_QUEUED)
        closed = data.View(descriptor, blocks.w_data)
        block = data.View(descriptor, blocks.r_data)
        # One bit more than the ring's addresses, so that a full ring differs from an empty one.
        write_pointer = Signal(range(2 * ring_bytes))
        read_pointer = Signal(range(2 * ring_bytes))
        ring_full = (write_pointer - read_pointer)[:len(write_pointer)] == ring_bytes

        # Writer: bytes of the open block go into the ring; a closing byte queues it.
        count = Signal(range(_COBS_BLOCK))
        byte, last = self.i.payload.data, self.i.payload.last
        zero = byte == 0
        filled = count == _COBS_BLOCK - 1
        taken = self.i.valid & self.i.ready
        m.d.comb += [
            self.i.ready.eq(~ring_full & blocks.w_rdy),
            write.addr.eq(write_pointer),
            write.data.eq(byte),
            write.en.eq(taken & ~zero),
            closed.count.eq(Mux(zero, count, count + 1)),
            closed.extra_one.eq(last & (zero | filled)),
            closed.delimiter.eq(last),
            blocks.w_en.eq(taken & (zero | filled | last)),
        ]
        with m.If(taken):
            with m.If(~zero):
                m.d.sync += write_pointer.eq(write_pointer + 1)
            with m.If(zero | filled | last):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + 1)

        # Reader: offer the code byte, the block's bytes, then 0x01 and 0x00 where the
        # descriptor says, to an output register; ring data arrives with that register.
        index = Signal(range(_COBS_BLOCK))
        advance = ~self.o.valid | self.o.ready
        offer_valid = Signal()
        offer_is_data = Signal()
        offer_byte = Signal(8)
        output_is_data = Signal()
        output_byte = Signal(8)
        m.d.comb += [
            read.addr.eq(read_pointer),
            read.en.eq(advance),
            self.o.payload.eq(Mux(output_is_data, read_byte, output_byte)),
        ]
        with m.If(advance):
            m.d.sync += [
                self.o.valid.eq(offer_valid),
                output_is_data.eq(offer_is_data),
                output_byte.eq(offer_byte),
            ]

        def after_bytes():
            with m.If(block.extra_one):
                m.next = "ONE"
            with m.Elif(block.delimiter):
                m.next = "DELIMITER"
            with m.Else():
                m.d.comb += blocks.r_en.eq(1)
                m.next = "CODE"

        with m.FSM(name="reader"):
            with m.State("CODE"):
                m.d.comb += [offer_valid.eq(blocks.r_rdy), offer_byte.eq(block.count + 1)]
                with m.If(advance & blocks.r_rdy):
                    m.d.sync += index.eq(0)
                    with m.If(block.count != 0):
                        m.next = "DATA"
                    with m.Else():
                        after_bytes()
            with m.State("DATA"):
                m.d.comb += [offer_valid.eq(1), offer_is_data.eq(1)]
                with m.If(advance):
                    m.d.sync += [index.eq(index + 1), read_pointer.eq(read_pointer + 1)]
                    with m.If(index == block.count - 1):
                        after_bytes()
            with m.State("ONE"):
                m.d.comb += [offer_valid.eq(1), offer_byte.eq(1)]
                with m.If(advance):
                    m.next = "DELIMITER"
            with m.State("DELIMITER"):
                m.d.comb += [offer_valid.eq(1), offer_byte.eq(0)]
                with m.If(advance):
                    m.d.comb += blocks.r_en.eq(1)
                    m.next = "CODE"
        return m


def _check_max_payload(max_payload):
    if not isinstance(max_payload, int) or not 1 <= max_payload <= MAX_PAYLOAD:
        raise ValueError(f"max_payload must be an int from 1 to {MAX_PAYLOAD} (payload bytes the "
                         f"length field can count), not {max_payload!r}")


class FrameReceiver(wiring.Component):
    """Decode COBS request frames, check them, and release only the good ones.

    Wire bytes are decoded as they arrive; the payload goes to a RAM, the CRC is computed
    two bytes behind the decoder (the last two bytes turn out to be the CRC), and at the
    frame's zero byte the checks of ``docs/protocol.md`` decide, in its order:

    * ``TOO_LARGE``: the frame is longer than the COBS encoding of any body of
      ``max_payload + 6`` bytes (one with no zero byte).
    * ``BAD_FRAME``: the COBS encoding ends inside a block (a truncated frame).
    * ``TOO_LARGE``: the body is longer than ``max_payload + 6`` bytes.
    * ``BAD_FRAME``: the body is shorter than 6 bytes (header and CRC).
    * ``BAD_CRC``: the CRC does not match.
    * ``MALFORMED``: the CRC matches but ``length`` is not the number of payload bytes.

    Bytes past the buffer are dropped up to the zero, and each bad frame is reported once,
    at its zero. A good frame is released on ``header`` and then ``payload``; a bad one gives
    one ``error`` instead. An empty frame (two zeros in a row) is ignored without a report,
    so a host may send a zero before each frame to end whatever garbage preceded it.
    Garbage with no zero after it joins the next frame and spoils it (an error report); the
    frame after that is received again.

    Parameters
    ----------
    max_payload : int
        Largest payload accepted, 1 to 65535 bytes: the depth of the payload RAM.
    register_writes : bool
        Write the payload RAM from registers, a cycle late (see
        :class:`~.memory.BankedMemory`): for a high clock on a large buffer, at the cost of
        a few flip-flops a bank. Same behaviour either way.

    Members
    -------
    i : In(stream.Signature(unsigned(8)))
        Wire bytes: COBS-encoded frames, each ended by ``0x00``.
    header : Out(stream.Signature(REQUEST_HEADER_LAYOUT))
        ``command``, ``sequence`` and ``length`` of a good frame.
    payload : Out(stream.Signature(BYTE_LAYOUT))
        Then its ``length`` payload bytes, ``last`` on the last (nothing for length 0).
    error : Out(stream.Signature(FRAME_ERROR_LAYOUT))
        A bad frame's golden ``Status`` (``TOO_LARGE``, ``BAD_FRAME``, ``BAD_CRC`` or
        ``MALFORMED``) and the ``command`` and ``sequence`` its answer carries: the first
        two body bytes as received (0 where the body is shorter), but 0 for ``BAD_FRAME``,
        whose bytes cannot be told apart from garbage.

    Throughput: one wire byte per cycle while receiving. Releasing a frame takes ``i`` out
    of service (``i.ready`` low) for ``length + 2`` cycles when the consumer never stalls
    (``1`` for an empty payload): one for the header, one to start the buffer's two-cycle
    reads, one per payload byte; an error takes one cycle. Payload bytes leave through a
    :class:`~.memory.BankedMemory` and a :class:`~.stream.StreamRegister`, so no RAM's output
    meets logic before a flip-flop, and the last one or two may still be on offer when ``i``
    is ready again. Upstream of a wire, put a FIFO in front
    that holds the bytes arriving meanwhile. Latency: the header (or error) is offered the
    cycle after the zero byte is taken. Resources: a :class:`~.memory.BankedMemory` of
    ``max_payload`` bytes, a :class:`Crc16`, a 16-bit comparator for each of CRC and length,
    counters of wire and body bytes, 48 flip-flops of header and CRC bytes: for
    ``max_payload=1024`` on iCE40 2 EBR, 285 LUT4 and 140 flip-flops (Yosys, no place and
    route).
    """

    def __init__(self, max_payload=1024, *, register_writes=True):
        _check_max_payload(max_payload)
        self._max_payload = max_payload
        self._register_writes = register_writes
        super().__init__({
            "i": In(stream.Signature(unsigned(8))),
            "header": Out(stream.Signature(REQUEST_HEADER_LAYOUT)),
            "payload": Out(stream.Signature(BYTE_LAYOUT)),
            "error": Out(stream.Signature(FRAME_ERROR_LAYOUT)),
        })

    @property
    def max_payload(self):
        return self._max_payload

    def elaborate(self, platform):
        m = Module()
        max_payload = self._max_payload
        largest_body = max_payload + _REQUEST_HEADER_BYTES + _CRC_BYTES
        # The longest encoding of a body that fits is that of one with no zero byte.
        largest_frame = len(cobs_encode(b"\x01" * largest_body))

        m.submodules.crc = crc = Crc16()
        # A large buffer's RAMs lie all over the chip: it is read in two cycles, each bank
        # into a register beside it first. The chosen byte goes to a register slice, not
        # straight to the consumer's logic.
        m.submodules.buffer = buffer = BankedMemory(unsigned(8), max_payload,
                                                    register_writes=self._register_writes)
        m.submodules.payload_register = payload_register = StreamRegister(BYTE_LAYOUT)
        wiring.connect(m, payload_register.o, wiring.flipped(self.payload))
        payload = payload_register.i

        command = Signal(8)
        sequence = Signal(8)
        length = Signal(16)
        status = Signal(8)

        # COBS decoding: bytes left in the current block (0: the next byte is a code), and
        # whether a zero is due before the next block (its code was below 255).
        remaining = Signal(8)
        zero_due = Signal()
        started = Signal()
        # Wire bytes so far (up to one past the largest frame), decoded body bytes so far,
        # and whether the body outgrew the buffer.
        wire_count = Signal(range(largest_frame + 2))
        count = Signal(range(largest_body + 1))
        overflow = Signal()
        # The two newest body bytes: the CRC if the frame ends here. Older bytes move on to
        # the CRC and the RAM.
        newer = Signal(8)
        older = Signal(8)

        wire = self.i.payload
        taken = self.i.valid & self.i.ready
        is_code = remaining == 0
        decoded_valid = Signal()
        decoded = Signal(8)
        m.d.comb += [
            decoded_valid.eq(taken & (wire != 0) & (~is_code | zero_due) & ~overflow),
            decoded.eq(Mux(is_code, 0, wire)),
        ]

        settled_index = count - _CRC_BYTES
        settles = decoded_valid & (count >= _CRC_BYTES)
        m.d.comb += [
            crc.data.eq(older),
            crc.enable.eq(settles),
            buffer.w_addr.eq(settled_index - _REQUEST_HEADER_BYTES),
            buffer.w_data.eq(older),
            buffer.w_en.eq(settles & (settled_index >= _REQUEST_HEADER_BYTES)),
        ]

        received_crc = Cat(older, newer)
        payload_bytes = count - _REQUEST_HEADER_BYTES - _CRC_BYTES
        end_status = Signal(8)
        with m.If(wire_count > largest_frame):
            m.d.comb += end_status.eq(Status.TOO_LARGE)
        with m.Elif(remaining != 0):
            m.d.comb += end_status.eq(Status.BAD_FRAME)
        with m.Elif(overflow):
            m.d.comb += end_status.eq(Status.TOO_LARGE)
        with m.Elif(count < _REQUEST_HEADER_BYTES + _CRC_BYTES):
            m.d.comb += end_status.eq(Status.BAD_FRAME)
        with m.Elif(crc.value != received_crc):
            m.d.comb += end_status.eq(Status.BAD_CRC)
        with m.Elif(length != payload_bytes):
            m.d.comb += end_status.eq(Status.MALFORMED)
        with m.Else():
            m.d.comb += end_status.eq(Status.OK)

        index = Signal(range(max_payload))
        last = index == length - 1
        m.d.comb += [
            self.header.payload.command.eq(command),
            self.header.payload.sequence.eq(sequence),
            self.header.payload.length.eq(length),
            payload.payload.data.eq(buffer.r_data),
            payload.payload.last.eq(last),
            self.error.payload.status.eq(status),
            self.error.payload.command.eq(command),
            self.error.payload.sequence.eq(sequence),
        ]

        with m.FSM():
            with m.State("RECEIVE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(taken & (wire == 0)):
                    m.d.sync += [
                        remaining.eq(0), zero_due.eq(0), started.eq(0),
                        wire_count.eq(0), count.eq(0), overflow.eq(0), status.eq(end_status),
                    ]
                    m.d.comb += crc.clear.eq(1)
                    with m.If(end_status == Status.BAD_FRAME):
                        m.d.sync += [command.eq(0), sequence.eq(0)]
                    with m.If(started & (end_status == Status.OK)):
                        m.next = "HEADER"
                    with m.Elif(started):
                        m.next = "ERROR"
                with m.Elif(taken):
                    m.d.sync += started.eq(1)
                    with m.If(wire_count <= largest_frame):
                        m.d.sync += wire_count.eq(wire_count + 1)
                    with m.If(~started):
                        m.d.sync += [command.eq(0), sequence.eq(0)]
                    with m.If(is_code):
                        m.d.sync += [remaining.eq(wire - 1), zero_due.eq(wire != 0xFF)]
                    with m.Else():
                        m.d.sync += remaining.eq(remaining - 1)
                    with m.If(decoded_valid):
                        with m.If(count == largest_body):
                            m.d.sync += overflow.eq(1)
                        with m.Else():
                            m.d.sync += [count.eq(count + 1), newer.eq(decoded),
                                         older.eq(newer)]
                        with m.Switch(count):
                            with m.Case(0):
                                m.d.sync += command.eq(decoded)
                            with m.Case(1):
                                m.d.sync += sequence.eq(decoded)
                            with m.Case(2):
                                m.d.sync += length[:8].eq(decoded)
                            with m.Case(3):
                                m.d.sync += length[8:].eq(decoded)

            with m.State("HEADER"):
                m.d.comb += [
                    self.header.valid.eq(1),
                    buffer.r_addr.eq(0),
                    buffer.r_en.eq(1),
                ]
                with m.If(self.header.ready):
                    m.d.sync += index.eq(0)
                    with m.If(length == 0):
                        m.next = "RECEIVE"
                    with m.Else():
                        m.next = "PRIME"

            with m.State("PRIME"):
                # Byte 0 moves on to the banks' registers while byte 1 is read.
                m.d.comb += [buffer.r_addr.eq(1), buffer.r_en.eq(1)]
                m.next = "PAYLOAD"

            with m.State("PAYLOAD"):
                # The reads run two addresses ahead; while the consumer stalls they hold.
                m.d.comb += [
                    payload.valid.eq(1),
                    buffer.r_addr.eq(index + 2),
                    buffer.r_en.eq(payload.ready),
                ]
                with m.If(payload.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(last):
                        m.next = "RECEIVE"

            with m.State("ERROR"):
                m.d.comb += self.error.valid.eq(1)
                with m.If(self.error.ready):
                    m.next = "RECEIVE"
        return m


class FrameTransmitter(wiring.Component):
    """Frame responses: body ``command | sequence | length | status | payload | crc``, COBS.

    The body is put together one byte per cycle, its CRC computed on the way, and encoded by
    a :class:`CobsEncoder`: ``o`` carries ``cobs_encode(body) + b"\\x00"`` exactly. Only COBS
    blocks wait (in the encoder's ring of 512 bytes), not whole bodies, so any ``length``
    the 16-bit field can count is sent, and the next response's header is taken while the
    previous one is still going out.

    Members
    -------
    header : In(stream.Signature(RESPONSE_HEADER_LAYOUT))
        ``command`` (the response code, with ``RESPONSE_FLAG`` already set), ``sequence``,
        ``length`` and ``status`` of a response.
    payload : In(stream.Signature(unsigned(8)))
        Then exactly ``length`` payload bytes.
    o : Out(stream.Signature(unsigned(8)))
        Wire bytes: each response's COBS encoding, then ``0x00``.

    Throughput: one body byte per cycle in and one wire byte per cycle out: a response of
    ``length`` payload bytes is ``length + 9`` wire bytes (one more per full COBS block),
    back to back with the next, except that the output waits for a long block to close
    (up to 254 cycles) when it has caught up with the input. Latency: the first wire byte
    is offered 2 cycles after the body byte that closes the first COBS block: for a
    response with status ``OK`` (a zero byte at offset 4) at most 6 cycles after the
    header is taken; payload bytes pass a :class:`~.stream.StreamRegister` first (one cycle).
    Resources: a :class:`CobsEncoder` (512 bytes of RAM), a :class:`Crc16`, a 16-bit
    payload counter and 40 flip-flops of header: on iCE40 one EBR, 357 LUT4 and 191
    flip-flops in all (Yosys, no place and route).
    """

    header: In(stream.Signature(RESPONSE_HEADER_LAYOUT))
    payload: In(stream.Signature(unsigned(8)))
    o: Out(stream.Signature(unsigned(8)))

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = Crc16()
        m.submodules.encoder = encoder = CobsEncoder()
        wiring.connect(m, encoder.o, wiring.flipped(self.o))
        # Payload bytes pass a register slice before the CRC and the encoder.
        m.submodules.payload_register = payload_register = StreamRegister(unsigned(8))
        wiring.connect(m, wiring.flipped(self.payload), payload_register.i)
        payload = payload_register.o

        fields = Signal(RESPONSE_HEADER_LAYOUT)
        field = Signal(range(_RESPONSE_HEADER_BYTES - 1))
        remaining = Signal(16)
        body = encoder.i
        sent = body.valid & body.ready
        m.d.comb += crc.data.eq(body.payload.data)

        with m.FSM():
            with m.State("HEADER"):
                # The command goes out as the header is taken: no gap between responses.
                m.d.comb += [
                    body.valid.eq(self.header.valid),
                    body.payload.data.eq(self.header.payload.command),
                    self.header.ready.eq(body.ready),
                    crc.enable.eq(sent),
                    crc.clear.eq(sent),
                ]
                with m.If(sent):
                    m.d.sync += [fields.eq(self.header.payload), field.eq(0),
                                 remaining.eq(self.header.payload.length)]
                    m.next = "FIELDS"
            with m.State("FIELDS"):
                # The layout holds the header's fields in wire order, bytes little-endian.
                bytes_after_command = fields.as_value()[len(fields.command):]
                m.d.comb += [
                    body.valid.eq(1),
                    body.payload.data.eq(bytes_after_command.word_select(field, 8)),
                    crc.enable.eq(sent),
                ]
                with m.If(sent):
                    m.d.sync += field.eq(field + 1)
                    with m.If(field == _RESPONSE_HEADER_BYTES - 2):
                        with m.If(fields.length == 0):
                            m.next = "CRC_LOW"
                        with m.Else():
                            m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [
                    body.valid.eq(payload.valid),
                    body.payload.data.eq(payload.payload),
                    payload.ready.eq(body.ready),
                    crc.enable.eq(sent),
                ]
                with m.If(sent):
                    m.d.sync += remaining.eq(remaining - 1)
                    with m.If(remaining == 1):
                        m.next = "CRC_LOW"
            with m.State("CRC_LOW"):
                m.d.comb += [body.valid.eq(1), body.payload.data.eq(crc.value[:8])]
                with m.If(sent):
                    m.next = "CRC_HIGH"
            with m.State("CRC_HIGH"):
                m.d.comb += [
                    body.valid.eq(1),
                    body.payload.data.eq(crc.value[8:]),
                    body.payload.last.eq(1),
                ]
                with m.If(sent):
                    m.next = "HEADER"
        return m
