"""What the command tests' harnesses do as the accelerator top does (``hdl/top.py``).

A harness holds a :class:`~gatework.hdl.request.RequestReader` shared with the command under
test, and reads a request as the top reads it: the header's bytes into the reader's fields,
the command started on the last of them, and whatever a refused request still carries read
and dropped.
"""

from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gatework.hdl.link import BYTE_LAYOUT
from gatework.hdl.request import RequestReader
from gatework.hdl.share import share


def harness_members(max_payload, **members):
    """A harness's members: a request's bytes, its start and length as the top's link gives
    them, ``members``, and ``idle``."""
    return {"payload": In(stream.Signature(BYTE_LAYOUT)), "begin": In(1),
            "length": In(range(max_payload + 1)), **members, "idle": Out(1)}


def shared_request(m, harness, request, command, max_payload):
    """Feed the harness's bytes to ``request`` and share it with ``command``, as the top
    does; return the harness's own port of it."""
    wiring.connect(m, wiring.flipped(harness.payload), request.payload)
    own_request = RequestReader.words_signature(max_payload).create()
    share(m, request, own_request, command.request)
    return own_request


def header_states(m, harness, request, own_request, command, header):
    """The harness's ``IDLE``, ``FIELDS`` and ``DRAIN`` states.

    ``IDLE`` raises ``harness.idle`` and takes a request of ``harness.length`` bytes on
    ``harness.begin``; ``FIELDS`` reads ``header`` (golden's) and starts ``command`` on its
    last byte, then goes to the harness's own ``COMMAND`` state; ``DRAIN`` drops the rest and
    goes back to ``IDLE``. ``own_request`` is the harness's port of the shared ``request``.
    """
    with m.State("IDLE"):
        m.d.comb += harness.idle.eq(1)
        with m.If(harness.begin):
            m.d.comb += [request.begin.eq(1), request.length.eq(harness.length)]
            m.next = "FIELDS"
    with m.State("FIELDS"):
        m.d.comb += [request.to_fields.eq(1), own_request.take.eq(1)]
        with m.If(request.taken & (request.field == header.size - 1)):
            m.d.comb += command.start.eq(1)
            m.next = "COMMAND"
    with m.State("DRAIN"):
        m.d.comb += own_request.take.eq(request.remaining != 0)
        with m.If(request.remaining == 0):
            m.next = "IDLE"
