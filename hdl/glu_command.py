"""GLU: a request's words through the GLU unit, at the link's byte rate."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from ..golden.protocol import GLU_HEADER, Status
from .arith import SequentialMultiplier
from .protocol import layout
from .request import ANSWER, RequestReader, answer
from .run import response_signature


__all__ = ["GluCommand"]


class GluCommand(wiring.Component):
    """Check a GLU whose header has been read; once its response's header is sent, stream its
    words through the GLU unit.

    Parameters
    ----------
    config, max_payload, sizes_width :
        As :class:`~.load_command.LoadCommand`'s.

    Members
    -------
    start : In(1)
        The header is read: check it.
    header : In(layout(GLU_HEADER))
    request : Out(RequestReader.words_signature(max_payload))
        The payload's words after the header.
    sizes : Out(SequentialMultiplier.user_signature(sizes_width))
        ``channels * count``, the words the payload must hold.
    done, status, length, drain : Out
        The GLU's answer (:data:`~.request.ANSWER`).
    respond : In(1)
        The response's header is sent: stream the words.
    response : Out(response_signature(data bits))
        The GLU unit's streams and the response's words (see :class:`~.run.RunResults`).
    end : In(1)
        The response's last byte leaves: stop.

    Request bytes pair up into words for the GLU unit, and its results leave as two bytes
    each, as a RUN's words do.
    """

    def __init__(self, config=BuildConfig(), max_payload=1024, *, sizes_width):
        self._config = config
        super().__init__({
            "start": In(1),
            "header": In(layout(GLU_HEADER)),
            "request": Out(RequestReader.words_signature(max_payload)),
            "sizes": Out(SequentialMultiplier.user_signature(sizes_width)),
            **ANSWER,
            "respond": In(1),
            "response": Out(response_signature(config.formats.data.total_bits)),
            "end": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        header, request, sizes = self.header, self.request, self.sizes

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "SIZE"
                with m.If(self.respond):
                    m.next = "STREAM"

            with m.State("SIZE"):
                m.d.comb += [sizes.start.eq(1), sizes.a.eq(header.channels),
                             sizes.b.eq(header.count)]
                m.next = "CHECK"

            with m.State("CHECK"):
                # The checks in the protocol's order.
                words = sizes.product
                with m.If(~sizes.busy):
                    with m.If((header.channels == 0) | (header.count == 0) | sizes.overflow |
                              ((words << 2) != request.remaining)):
                        answer(m, self, Status.MALFORMED, drain=1)
                    with m.Elif((header.channels > config.max_hidden_size) |
                                (not config.glu)):
                        answer(m, self, Status.BEYOND_MAXIMA, drain=1)
                    with m.Else():
                        answer(m, self, Status.OK, length=words << 1)

            with m.State("STREAM"):
                response = self.response
                glu_input, glu_output = response.glu_input, response.glu_output
                words = response.words
                m.d.comb += [request.take.eq(~request.have_low | glu_input.ready),
                             glu_input.valid.eq(request.have_low & request.available),
                             glu_input.payload.eq(request.word),
                             words.valid.eq(glu_output.valid),
                             words.payload.eq(glu_output.payload.data),
                             glu_output.ready.eq(words.ready),
                             response.send.eq(1)]
                with m.If(self.end):
                    m.next = "IDLE"
        return m
