"""A request's payload, taken byte by byte as the accelerator's commands need it.

A command first reads its header (golden's :class:`~gatework.golden.protocol.Header`) into
field bytes, which the top reads by name through :func:`~.protocol.layout`; then words, each
two bytes low first; whatever is left over is dropped before the answer. :class:`RequestReader`
counts the bytes still to come, so a command sees a payload too short or too long for its
fields.
"""

from amaranth.hdl import Array, Cat, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.protocol import GLU_HEADER, LOAD_HEADER, RUN_HEADER
from .link import BYTE_LAYOUT
from .protocol import layout


__all__ = ["ANSWER", "RequestReader", "answer"]


#: The members by which a command's component gives its answer: ``done`` (a strobe) with the
#: ``status``, the response's payload ``length`` (0 unless ``OK``), and ``drain``: the
#: request's rest is to be read and dropped first.
ANSWER = {"done": Out(1), "status": Out(8), "length": Out(16), "drain": Out(1)}


def answer(m, command, code, *, length=0, drain=0):
    """Give ``command``'s answer (:data:`ANSWER`) ``code`` in this cycle, and go back to its
    state machine's ``IDLE``."""
    m.d.comb += [command.done.eq(1), command.status.eq(code), command.length.eq(length),
                 command.drain.eq(drain)]
    m.next = "IDLE"


#: The headers a command reads before its words.
_HEADERS = (GLU_HEADER, LOAD_HEADER, RUN_HEADER)


class RequestReader(wiring.Component):
    """Take a request's payload bytes: into header fields, paired into words, or dropped.

    Parameters
    ----------
    max_payload : int
        The largest payload a request carries (the receiver's buffer).

    Members
    -------
    payload : In(stream.Signature(BYTE_LAYOUT))
        The payload bytes of a good request (:class:`~.link.FrameReceiver`'s ``payload``).
    begin : In(1)
        A request's payload of ``length`` bytes follows; no header bytes or half word held.
    length : In(range(max_payload + 1))
    take : In(1)
        Take the next byte when it is there (``payload.ready``).
    to_fields : In(1)
        A byte taken goes to the header's next field byte, not into a word.
    taken : Out(1)
        A byte is taken this cycle.
    remaining : Out(range(max_payload + 1))
        Payload bytes not taken yet.
    field : Out(range(header bytes + 1))
        Header bytes taken.
    fields : Out(unsigned(8 * header bytes))
        The header bytes, the first at bit 0: see :meth:`header`.
    have_low : Out(1)
        A word's low byte is held.
    word : Out(signed(16))
        The word a byte taken now completes (the held low byte and this one).
    word_done : Out(1)
        A byte taken now completes ``word``.
    available : Out(1)
        A byte is there to take (``payload.valid``).

    Resources: the header's bytes in flip-flops, a byte of a word, and a counter.
    """

    def __init__(self, max_payload):
        self._field_bytes = max(header.size for header in _HEADERS)
        super().__init__({
            "payload": In(stream.Signature(BYTE_LAYOUT)),
            "begin": In(1),
            "length": In(range(max_payload + 1)),
            "take": In(1),
            "to_fields": In(1),
            "taken": Out(1),
            "remaining": Out(range(max_payload + 1)),
            "field": Out(range(self._field_bytes + 1)),
            "fields": Out(unsigned(8 * self._field_bytes)),
            "have_low": Out(1),
            "word": Out(signed(16)),
            "word_done": Out(1),
            "available": Out(1),
        })

    @staticmethod
    def words_signature(max_payload):
        """A command's port of a shared :class:`RequestReader` (see :func:`~.share.share`): it
        takes bytes (``take``, 0 while it is not the reader's user) and sees whether one is
        there, the words they make, the bytes left and whether a low byte is held."""
        return wiring.Signature({
            "take": Out(1),
            "available": In(1),
            "word": In(signed(16)),
            "word_done": In(1),
            "remaining": In(range(max_payload + 1)),
            "have_low": In(1),
        })

    def header(self, header):
        """A view of ``fields`` through golden's ``header``: its fields by name."""
        return layout(header)(self.fields[:8 * header.size])

    def elaborate(self, platform):
        m = Module()
        byte = self.payload.payload.data
        field_bytes = [Signal(8, name=f"field_{index}") for index in range(self._field_bytes)]
        fields = Array(field_bytes)
        low_byte = Signal(8)
        m.d.comb += [
            self.payload.ready.eq(self.take),
            self.taken.eq(self.payload.valid & self.take),
            self.available.eq(self.payload.valid),
            self.fields.eq(Cat(*field_bytes)),
            # An i16 travels low byte first.
            self.word.eq(Cat(low_byte, byte).as_signed()),
        ]
        with m.If(self.begin):
            m.d.sync += [self.remaining.eq(self.length), self.field.eq(0),
                         self.have_low.eq(0)]
        with m.Elif(self.taken):
            m.d.sync += self.remaining.eq(self.remaining - 1)
            with m.If(self.to_fields):
                m.d.sync += [self.field.eq(self.field + 1), fields[self.field].eq(byte)]
            with m.Else():
                m.d.sync += [self.have_low.eq(~self.have_low), low_byte.eq(byte)]
                m.d.comb += self.word_done.eq(self.have_low)
        return m
