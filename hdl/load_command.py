"""LOAD: a layer and direction's weights into the engine's banks, its initial states into h0.

The weights go to the engine as they arrive, walking the engine's layout with counters (gate,
unit, lane, term), and the initial states into the slot's rows of the accelerator's ``h0``
memory. The ``h0`` batch sits after the weights, so the status is decided at the frame's end;
a refused LOAD that had sizes within the build leaves its slot empty, as the protocol allows
(``docs/protocol.md``).
"""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from ..golden.protocol import LOAD_HEADER, Status
from .arith import SequentialMultiplier
from .gru import LoadRegion, lane_cycles
from .gru_layouts import load_layout
from .protocol import layout
from .request import ANSWER, RequestReader, answer
from .slots import WeightSlots


__all__ = ["LoadCommand"]


class LoadCommand(wiring.Component):
    """Carry out a LOAD whose header has been read, up to its answer.

    Parameters
    ----------
    config : BuildConfig
    max_payload : int
        The largest request payload (the receiver's buffer).
    sizes_width : int
        The width of the :class:`~.arith.SequentialMultiplier` the commands share.
    h0_address_bits : int
        The ``h0`` memory's address width; a slot's rows lie ``max_batch * max_hidden_size``
        words apart, ``max_hidden_size`` words a row.

    Members
    -------
    start : In(1)
        The header is read: begin.
    header : In(layout(LOAD_HEADER))
        Its fields, held until ``done``.
    request : Out(RequestReader.words_signature(max_payload))
        The payload's words after the header.
    sizes : Out(SequentialMultiplier.user_signature(sizes_width))
        ``H * (D + H)``, for the least length.
    load : Out(stream.Signature(load_layout(config)))
        Words for the engine's banks, into a register: a word is offered (``valid``, for one
        cycle) only while ``ready`` says the register is empty, and it is taken then.
    h0 : In(WritePort.Signature)
        The ``h0`` memory's write port.
    slots : Out(WeightSlots.loader_signature(config))
    done, status, length, drain : Out
        The LOAD's answer (:data:`~.request.ANSWER`; ``length`` is 0).

    Every port but ``start``, ``header``, ``done`` and its answer is 0 while the LOAD is not
    under way, so that the ports may be shared (:func:`~.share.share`). A LOAD takes about two
    cycles per weight (a word per two payload bytes), plus a few per operand bit of the
    least length's product and one per slot skipped to find the slot's bases.
    """

    def __init__(self, config=BuildConfig(), max_payload=1024, *, sizes_width=17,
                 h0_address_bits=16):
        self._config = config
        self._max_payload = max_payload
        super().__init__({
            "start": In(1),
            "header": In(layout(LOAD_HEADER)),
            "request": Out(RequestReader.words_signature(max_payload)),
            "sizes": Out(SequentialMultiplier.user_signature(sizes_width)),
            "load": Out(stream.Signature(load_layout(config))),
            "h0": In(WritePort.Signature(addr_width=h0_address_bits,
                                         shape=signed(config.formats.data.total_bits))),
            "slots": Out(WeightSlots.loader_signature(config)),
            **ANSWER,
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes, directions = config.lanes, config.directions
        max_b, max_h = config.max_batch, config.max_hidden_size
        header, request, sizes, load = self.header, self.request, self.sizes, self.load
        inputs, hidden, flags = header.input_size, header.hidden_size, header.flags
        has_bias, has_h0 = flags.has_bias, flags.has_h0

        # A good frame carries at most max_payload bytes: no count of words passes its words.
        count_range = range(max(self._max_payload // 2, max_b, max_h, config.max_input_size,
                                config.max_steps, config.weight_sets) + 1)
        # h0's batch, saturated: past max_b and past any count of rows is all that matters.
        batch = Signal(count_range.stop.bit_length())
        in_build = Signal()
        slot = Signal(range(config.weight_sets))
        phase = Signal(2)               # weight_ih, weight_hh, bias_ih, bias_hh
        term = Signal(count_range)      # the weights' term k, then h0's j
        unit = Signal(count_range)      # the weights' unit j, then h0's b
        lane = Signal(range(lanes))
        gate = Signal(2)
        pass_base = Signal.like(load.payload.address)
        least_bytes = Signal(len(sizes.product) + 4)
        least_sized = Signal()          # least_bytes holds the least length
        # The slot's bases in the engine's banks and in the h0 memory, counted up from 0 one
        # slot per cycle while the sizes are multiplied.
        slots_to_skip = Signal(range(config.weight_sets))
        weight_base = Signal(range(config.weight_sets * config.weight_set_words))
        bias_base = Signal(range(config.weight_sets * config.bias_set_words))
        h0_row = Signal(len(self.h0.addr))      # the slot's first row, then each row's
        with m.If(slots_to_skip != 0):
            m.d.sync += [slots_to_skip.eq(slots_to_skip - 1),
                         weight_base.eq(weight_base + config.weight_set_words),
                         bias_base.eq(bias_base + config.bias_set_words),
                         h0_row.eq(h0_row + max_b * max_h)]
        m.d.comb += self.slots.slot.eq(slot)

        def padded(size):
            """``size`` rounded up to a multiple of the engine's lane width."""
            if config.lane_width == 1:
                return size
            return lane_cycles(size, config) << config.lane_width_log2

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "SIZE"

            with m.State("SIZE"):
                # H * (D + H) for the least length; the slot's bases meanwhile.
                m.d.comb += [sizes.start.eq(1), sizes.a.eq(inputs + hidden), sizes.b.eq(hidden)]
                index = (header.layer << (directions - 1)) + header.direction
                m.d.sync += [slot.eq(index), slots_to_skip.eq(index), weight_base.eq(0),
                             bias_base.eq(0), h0_row.eq(0), least_sized.eq(0)]
                m.next = "CHECK"

            with m.State("CHECK"):
                # The h0 batch sits after the weights: the exact length is checked at the end.
                # The least length goes to a register a cycle before it is compared.
                cell_words = sizes.product
                m.d.sync += [
                    least_bytes.eq((cell_words << 2) + (cell_words << 1) +
                                   Mux(has_bias, (hidden << 3) + (hidden << 2), 0) +
                                   Mux(has_h0, 2, 0)),
                    least_sized.eq(~sizes.busy),
                ]
                with m.If(least_sized & (slots_to_skip == 0)):
                    with m.If((flags.reserved != 0) | (inputs == 0) | (hidden == 0) |
                              sizes.overflow | (request.remaining < least_bytes)):
                        answer(m, self, Status.MALFORMED, drain=1)
                    with m.Else():
                        fits = ((header.layer < config.max_layers) &
                                (header.direction < directions) &
                                (inputs <= config.max_input_size) & (hidden <= max_h))
                        m.d.sync += [in_build.eq(fits), phase.eq(0), term.eq(0), unit.eq(0),
                                     lane.eq(0), gate.eq(0), batch.eq(0),
                                     pass_base.eq(weight_base)]
                        with m.If(fits):
                            # Its weights are overwritten from now on, whatever the answer.
                            m.d.comb += self.slots.forget.eq(1)
                        m.next = "WEIGHTS"

            with m.State("WEIGHTS"):
                # A row of unit j of gate G is pass G * ceil(H / lanes) + j // lanes at lane
                # j % lanes: the lane and the pass advance together as j does.
                zero_bias = (phase >= 2) & ~has_bias
                m.d.comb += request.take.eq(~zero_bias & load.ready)
                done = Mux(zero_bias, load.ready, request.word_done)
                word = Mux(zero_bias, 0, request.word)
                row_terms = Mux(phase == 0, inputs, Mux(phase == 1, hidden, 1))
                # A row's input and recurrent weights each take a multiple of the engine's
                # lane width in its bank (BuildConfig.padded_terms).
                input_words, hidden_words = padded(inputs), padded(hidden)
                pass_step = Mux(phase < 2, input_words + hidden_words, 2)
                address = pass_base + Mux(phase == 1, input_words, 0) + term + (phase == 3)
                with m.If(done):
                    m.d.comb += [load.valid.eq(in_build),
                                 load.payload.region.eq(Mux(phase < 2, LoadRegion.WEIGHT,
                                                            LoadRegion.BIAS)),
                                 load.payload.lane.eq(lane), load.payload.address.eq(address),
                                 load.payload.data.eq(word)]
                    with m.If(term == row_terms - 1):
                        m.d.sync += term.eq(0)
                        end_of_gate = unit == hidden - 1
                        with m.If(end_of_gate | (lane == lanes - 1)):
                            m.d.sync += [pass_base.eq(pass_base + pass_step), lane.eq(0)]
                        with m.Else():
                            m.d.sync += lane.eq(lane + 1)
                        with m.If(end_of_gate):
                            m.d.sync += [unit.eq(0), gate.eq(gate + 1)]
                            with m.If(gate == 2):
                                m.d.sync += [gate.eq(0), phase.eq(phase + 1)]
                                with m.If(phase == 0):
                                    m.d.sync += pass_base.eq(weight_base)
                                with m.Else():
                                    m.d.sync += pass_base.eq(bias_base)
                                with m.If(phase == 3):
                                    m.d.sync += [unit.eq(0), term.eq(0)]
                                    m.next = "BATCH"
                        with m.Else():
                            m.d.sync += unit.eq(unit + 1)
                    with m.Else():
                        m.d.sync += term.eq(term + 1)

            with m.State("BATCH"):
                with m.If(~has_h0):
                    m.next = "REST"
                with m.Else():
                    m.d.comb += request.take.eq(1)
                    with m.If(request.word_done):
                        value = request.word.as_unsigned()
                        saturated = (1 << len(batch)) - 1
                        m.d.sync += batch.eq(Mux(value > saturated, saturated, value))
                        m.next = "REST"

            with m.State("REST"):
                # h0, word by word at (b = unit, j = term); anything else is drained.
                m.d.comb += [request.take.eq(1), self.h0.addr.eq(h0_row + term),
                             self.h0.data.eq(request.word)]
                with m.If(request.word_done):
                    m.d.comb += self.h0.en.eq(has_h0 & in_build & (unit < batch) &
                                              (unit < max_b))
                    with m.If(term == hidden - 1):
                        m.d.sync += [term.eq(0), unit.eq(unit + 1), h0_row.eq(h0_row + max_h)]
                    with m.Else():
                        m.d.sync += term.eq(term + 1)
                with m.If(request.remaining == 0):
                    m.next = "END"

            with m.State("END"):
                # The length is exact when the rest held N rows of H words and nothing more
                # (no rows and no odd byte without h0).
                rest_exact = ~request.have_low & (unit == batch) & (term == 0)
                with m.If((has_h0 & (batch == 0)) | ~rest_exact):
                    answer(m, self, Status.MALFORMED)
                with m.Elif(~in_build | (has_h0 & (batch > max_b))):
                    answer(m, self, Status.BEYOND_MAXIMA)
                with m.Else():
                    answer(m, self, Status.OK)
                    entry = self.slots.entry
                    m.d.comb += [self.slots.record.eq(1),
                                 entry.input_size.eq(inputs), entry.hidden_size.eq(hidden),
                                 entry.linear_before_reset.eq(flags.linear_before_reset),
                                 entry.has_h0.eq(has_h0), entry.batch.eq(batch)]
        return m
