"""RUN: ragged inputs into the layer buffer, every layer on the engine, the results out.

A RUN is three components, one after another, sharing the accelerator's layer buffer and its
address walk (:class:`~.walk.WalkReader`):

- :class:`RunIntake` checks the header, takes the lengths and stores the ragged inputs
  time-major in bank 0 of the layer buffer (:class:`BufferLayout`), and decides the status
  once the whole payload is read;
- :class:`LayerSequencer` runs each layer and direction on the engine (the slot's ``h0``
  copied into the engine's state memory first): each run reads its layer's bank and writes
  its features into the other bank, and its final states into the ``h_n`` memory;
- :class:`RunResults` streams the last layer's bank ragged and batch-major (through the GLU
  when asked), then ``h_n``, as the response's words.

Each drives the ports it shares only while it is under way (0 otherwise), so that the top
joins them with :func:`~.share.share`.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from ..golden.protocol import MAX_PAYLOAD, RUN_HEADER, Status
from .arith import SequentialMultiplier
from .gru_layouts import (LoadRegion, command_layout, load_layout, output_layout,
                          status_layout)
from .memory import NO_RW_CHECK, BankedMemory, held_read, read_data
from .protocol import layout
from .request import ANSWER, RequestReader, answer
from .transposer import SequenceLayout
from .walk import AddressWalk


__all__ = ["BufferLayout", "LayerSequencer", "RunIntake", "RunMemories", "RunResults"]


class BufferLayout:
    """Where a RUN's sequences and states lie in the accelerator's memories.

    The layer buffer has two banks of ``bank_words`` (a layer reads one and writes the other);
    in a bank, word ``d`` of step ``t`` of sequence ``b`` lies at ``t * step_stride + b *
    features + d``, time-major: the transposer's :class:`~.transposer.SequenceLayout`
    (``sequences``) with room for the build's largest batch and features. ``h0`` and ``h_n``
    hold ``state_words`` a slot, ``b * max_hidden_size + j``.
    """

    def __init__(self, config):
        self.features = max(config.max_input_size, config.directions * config.max_hidden_size)
        self.step_stride = config.max_batch * self.features
        self.bank_words = config.max_steps * self.step_stride
        self.state_words = config.max_batch * config.max_hidden_size
        self.sequences = SequenceLayout(self.features, self.step_stride)
        #: The width of a walk's addresses: the layer buffer's two banks, or every weight
        #: set's slot of ``h0`` or ``h_n``.
        self.address_bits = max(2 * self.bank_words,
                                config.weight_sets * self.state_words).bit_length()
        # The counts a walk's loops take: sizes, steps and weight sets (and a request's words,
        # see count_range).
        self._largest_count = max(config.max_batch, config.max_hidden_size,
                                  config.max_input_size, config.max_steps, config.weight_sets)

    def count_range(self, max_payload=0):
        """The range of a walk's counts, for requests of up to ``max_payload`` bytes."""
        return range(max(max_payload // 2, self._largest_count) + 1)


def _ports(config, walk, address_bits):
    """The members every RUN component has, and those several share."""
    data_bits = config.formats.data.total_bits
    return {
        "start": In(1),
        "header": In(layout(RUN_HEADER)),
        "walk": Out(walk),
        "buffer": In(WritePort.Signature(addr_width=address_bits, shape=signed(data_bits))),
        "lengths": In(data.ArrayLayout(range(config.max_steps + 1), config.max_batch)),
    }


class RunIntake(wiring.Component):
    """Take a RUN whose header has been read, up to its answer.

    Parameters
    ----------
    config, max_payload, sizes_width :
        As :class:`~.load_command.LoadCommand`'s.
    walk : WalkUser
        The shared walk's signature.
    address_bits : int
        The layer buffer's address width.

    Members
    -------
    start : In(1)
        The header is read: begin.
    header : In(layout(RUN_HEADER))
        Its fields, held until the RUN's results are sent.
    request : Out(RequestReader.words_signature(max_payload))
        The payload's words after the header: the lengths, then the inputs.
    sizes : Out(SequentialMultiplier.user_signature(sizes_width))
        The response's length and the last step's address.
    walk : Out(walk)
        Stores the inputs in the layer buffer's bank 0, ragged batch-major in, time-major.
    buffer : In(WritePort.Signature)
        The layer buffer's write port.
    not_loaded : In(1)
        :class:`~.slots.WeightSlots`' check of the header.
    lengths : Out(ArrayLayout(range(max_steps + 1), max_batch))
        The lengths, once the inputs are taken.
    last_step : Out(unsigned(address_bits))
        ``(steps - 1) * step_stride``: the last step's address in a bank.
    output_bytes : Out(unsigned)
        The bytes of the response's outputs (the ``h_n`` after them).
    done, status, length, drain : Out
        The RUN's answer (:data:`~.request.ANSWER`).

    Takes two cycles a payload word, then a few per operand bit of three products.
    """

    def __init__(self, config=BuildConfig(), max_payload=1024, *, walk, address_bits,
                 sizes_width):
        self._config = config
        self._max_payload = max_payload
        ports = _ports(config, walk, address_bits)
        ports["lengths"] = ports["lengths"].flip()
        super().__init__({
            **ports,
            "request": Out(RequestReader.words_signature(max_payload)),
            "sizes": Out(SequentialMultiplier.user_signature(sizes_width)),
            "not_loaded": In(1),
            "last_step": Out(unsigned(address_bits)),
            "output_bytes": Out(sizes_width + 1),
            **ANSWER,
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        max_b = config.max_batch
        buffer_layout = BufferLayout(config)
        header, request, sizes, walk = self.header, self.request, self.sizes, self.walk
        flags, batch, steps, inputs = header.flags, header.batch, header.steps, header.input_size
        hidden, num_layers = header.hidden_size, header.num_layers
        run_features = Mux(flags.bidirectional, hidden << 1, hidden)
        payload_words = self._max_payload // 2
        count_range = range(max(payload_words, max_b, config.max_steps) + 1)

        vector = Signal(count_range)    # the index of a length, then of an input vector
        word = Signal(count_range)      # a vector's word
        # The sum of the lengths, saturated past any count of input vectors.
        total_steps = Signal((payload_words + 1).bit_length())
        bad_length = Signal()
        storing = Signal()
        size_overflow = Signal()
        response_length = Signal(16)
        # The checks, a cycle before the answer.
        malformed, beyond, not_loaded, too_large = Signal(), Signal(), Signal(), Signal()

        def product(a, b):
            m.d.comb += [sizes.start.eq(1), sizes.a.eq(a), sizes.b.eq(b)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "CHECK"

            with m.State("CHECK"):
                with m.If((flags.reserved != 0) | (flags.bidirectional & flags.reverse) |
                          (num_layers == 0) | (batch == 0) | (steps == 0) | (inputs == 0) |
                          (hidden == 0) | (flags.glu & (flags.final_only | run_features[0])) |
                          (request.remaining < (batch << 1))):
                    answer(m, self, Status.MALFORMED, drain=1)
                with m.Else():
                    m.d.sync += [storing.eq((batch <= max_b) & (steps <= config.max_steps) &
                                            (inputs <= config.max_input_size)),
                                 total_steps.eq(0), bad_length.eq(0), vector.eq(0)]
                    m.next = "LENGTHS"

            with m.State("LENGTHS"):
                m.d.comb += request.take.eq(1)
                value = request.word.as_unsigned()
                with m.If(request.word_done):
                    steps_sum = total_steps + value
                    m.d.sync += [total_steps.eq(Mux(steps_sum[len(total_steps):] != 0,
                                                    (1 << len(total_steps)) - 1, steps_sum)),
                                 vector.eq(vector + 1),
                                 bad_length.eq(bad_length | (value == 0) | (value > steps))]
                    with m.If(vector < max_b):
                        m.d.sync += self.lengths[vector].eq(value)
                    with m.If(vector == batch - 1):
                        m.d.comb += walk.start.eq(1)
                        m.d.sync += [vector.eq(0), word.eq(0)]
                        m.next = "INPUTS"

            with m.State("INPUTS"):
                # Ragged batch-major in, time-major out: (b, t, d) = (outer, middle, inner).
                m.d.comb += [request.take.eq(1),
                             *buffer_layout.sequences.batch_major(
                                 walk, batch, self.lengths[walk.outer], inputs),
                             self.buffer.addr.eq(walk.address),
                             self.buffer.data.eq(request.word)]
                with m.If(request.word_done & ~walk.done):
                    m.d.comb += [self.buffer.en.eq(storing & ~bad_length), walk.step.eq(1)]
                with m.If(request.word_done):
                    with m.If(word == inputs - 1):
                        m.d.sync += [word.eq(0), vector.eq(vector + 1)]
                    with m.Else():
                        m.d.sync += word.eq(word + 1)
                with m.If(request.remaining == 0):
                    product(buffer_layout.step_stride, steps - 1)
                    m.next = "LAST_STEP"

            # The response's length and the address of the last step, each a product.
            with m.State("LAST_STEP"):
                with m.If(~sizes.busy):
                    m.d.sync += self.last_step.eq(sizes.product)
                    out_features = Mux(flags.glu, run_features >> 1, run_features)
                    product(total_steps, Mux(flags.final_only, 0, out_features))
                    m.next = "OUTPUT_SIZE"

            with m.State("OUTPUT_SIZE"):
                with m.If(~sizes.busy):
                    m.d.sync += [self.output_bytes.eq(sizes.product << 1),
                                 size_overflow.eq(sizes.overflow)]
                    product(batch, num_layers)
                    m.next = "SEQUENCES_SIZE"

            with m.State("SEQUENCES_SIZE"):
                # h_n: N * L sequences of directions * H words.
                with m.If(~sizes.busy):
                    m.d.sync += size_overflow.eq(size_overflow | sizes.overflow)
                    product(run_features, sizes.product)
                    m.next = "DECIDE"

            with m.State("DECIDE"):
                total = self.output_bytes + (sizes.product << 1)
                # The payload's length is exact when the inputs held sum(lengths) vectors of
                # D words and nothing more.
                inputs_exact = ~request.have_low & (vector == total_steps) & (word == 0)
                # The checks go to registers and the answer is picked from them a cycle
                # later, so that no path runs from the request's fields to the state.
                with m.If(~sizes.busy):
                    m.d.sync += [
                        malformed.eq(bad_length | ~inputs_exact),
                        beyond.eq((num_layers > config.max_layers) |
                                  (Mux(flags.bidirectional, 2, 1) > config.directions) |
                                  (batch > max_b) | (steps > config.max_steps) |
                                  (inputs > config.max_input_size) |
                                  (hidden > config.max_hidden_size) |
                                  ((num_layers > 1) & (run_features > config.max_input_size)) |
                                  (flags.glu & (not config.glu))),
                        not_loaded.eq(self.not_loaded),
                        too_large.eq(size_overflow | sizes.overflow | (total > MAX_PAYLOAD)),
                        response_length.eq(total),
                    ]
                    m.next = "ANSWER"

            with m.State("ANSWER"):
                # The first refusal that applies, in the protocol's order.
                refusals = [(malformed, Status.MALFORMED), (beyond, Status.BEYOND_MAXIMA),
                            (not_loaded, Status.NOT_LOADED), (too_large, Status.TOO_LARGE)]
                for index, (refused, code) in enumerate(refusals):
                    with (m.If if index == 0 else m.Elif)(refused):
                        answer(m, self, code)
                with m.Else():
                    answer(m, self, Status.OK, length=response_length)
        return m


class LayerSequencer(wiring.Component):
    """Run a RUN's layers and directions on the engine, one after another.

    Parameters
    ----------
    config : BuildConfig
    walk : WalkUser
        The shared walk's signature.
    address_bits : int
        The layer buffer's, ``h0``'s and ``h_n``'s address width.
    two_cycle_reads : bool
        The walk's reads take two cycles: the outputs' walk keeps its address in a register
        of its own too (see :class:`~.walk.AddressWalk`).

    Members
    -------
    start : In(1)
        The RUN was answered OK: begin.
    header : In(layout(RUN_HEADER))
    lengths : In(ArrayLayout(range(max_steps + 1), max_batch))
    last_step : In(unsigned(address_bits))
        :class:`RunIntake`'s.
    walk : Out(walk)
        Reads the slot's ``h0`` into the engine's state memory, then the layer's bank into
        the engine (time-major, backward in a reverse run).
    h0_address : Out(unsigned(address_bits))
        The ``h0`` memory's read address.
    h0_data, buffer_data : In(signed(data bits))
        The words ``h0`` and the layer buffer read.
    load : Out(stream.Signature(load_layout(config)))
        The ``h0`` words for the engine, as :class:`~.load_command.LoadCommand`'s.
    buffer : In(WritePort.Signature)
        The layer buffer's write port: the engine's outputs.
    h_n : In(WritePort.Signature)
        The ``h_n`` memory's write port: the engine's final states.
    command, lengths_out, x : Out(stream.Signature)
    o, status : In(stream.Signature)
        The engine's (:class:`~.gru.GRUEngine`) ports.
    engine_owns : Out(1)
        From the first ``h0`` word to the last run's status: the engine is running (its
        activation unit is its own), in a register.
    done : Out(1)
        The last run's status has come.

    The engine's outputs are written as they come: it is never stalled, so its element-wise
    stage needs no enable (an enable decoded from a state machine reached a thousand
    flip-flops).
    """

    def __init__(self, config=BuildConfig(), *, walk, address_bits, two_cycle_reads=False):
        self._config = config
        self._address_bits = address_bits
        self._two_cycle_reads = two_cycle_reads
        data_bits = config.formats.data.total_bits
        ports = _ports(config, walk, address_bits)
        super().__init__({
            **ports,
            "last_step": In(unsigned(address_bits)),
            "h0_address": Out(unsigned(address_bits)),
            "h0_data": In(signed(data_bits)),
            "buffer_data": In(signed(data_bits)),
            "load": Out(stream.Signature(load_layout(config))),
            "h_n": ports["buffer"],
            "command": Out(stream.Signature(command_layout(config))),
            "lengths_out": Out(stream.Signature(range(config.max_steps + 1))),
            "x": Out(stream.Signature(signed(data_bits))),
            "o": In(stream.Signature(output_layout(config))),
            "status": In(stream.Signature(status_layout())),
            "engine_owns": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        directions, max_b, max_h = config.directions, config.max_batch, config.max_hidden_size
        buffer_layout = BufferLayout(config)
        bank_words, state_words = buffer_layout.bank_words, buffer_layout.state_words
        header, walk, load = self.header, self.walk, self.load
        flags, batch, steps, hidden = header.flags, header.batch, header.steps, header.hidden_size
        run_directions = Mux(flags.bidirectional, 2, 1)
        run_features = Mux(flags.bidirectional, hidden << 1, hidden)

        layer = Signal(range(config.max_layers + 1))
        direction = Signal()
        reverse = Mux(flags.bidirectional, direction, flags.reverse)
        inputs = Mux(layer == 0, header.input_size, run_features)
        # The run's h0 slot and its final states' place in h_n.
        h0_base = Signal(range(config.weight_sets * state_words + 1))
        hn_base = Signal(range(config.weight_sets * state_words + 1))
        # The engine's outputs: per step, sequence and unit, (outer, middle, inner) of their
        # walk in the layer buffer; then the final states, at final_row + final_unit in h_n.
        m.submodules.output_walk = output_walk = AddressWalk(
            range(max(max_b, max_h, config.max_steps) + 1), self._address_bits,
            registered_address=self._two_cycle_reads)
        final_unit = Signal(range(max_h))
        final_row = Signal(self._address_bits)
        lengths_sent = Signal(range(max_b + 1))
        # Steps follow each other forward, or backward in a reverse run.
        steps_in_order = SequenceLayout(
            buffer_layout.features,
            Mux(reverse, -buffer_layout.step_stride, buffer_layout.step_stride))

        m.d.comb += [self.h0_address.eq(h0_base + walk.address), self.o.ready.eq(1)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [walk.start.eq(1), walk.start_done.eq(~flags.use_h0)]
                    m.d.sync += [layer.eq(0), direction.eq(0), h0_base.eq(0), hn_base.eq(0),
                                 self.engine_owns.eq(1)]
                    m.next = "H0"

            with m.State("H0"):
                # The slot's h0 into the engine's state memory: (b, j) = (middle, inner).
                m.d.comb += [walk.read.eq(1), walk.taken.eq(load.ready),
                             walk.tag.eq(walk.address), *walk.last_of(1, batch, hidden),
                             walk.strides.middle.eq(max_h)]
                with m.If(walk.valid & load.ready):
                    m.d.comb += [load.valid.eq(1), load.payload.region.eq(LoadRegion.STATE),
                                 load.payload.address.eq(walk.data_tag),
                                 load.payload.data.eq(self.h0_data)]
                with m.If(walk.done & ~walk.pending & load.ready):
                    m.next = "COMMAND"

            with m.State("COMMAND"):
                command = self.command.payload
                m.d.comb += [
                    self.command.valid.eq(1),
                    command.input_size.eq(inputs), command.hidden_size.eq(hidden),
                    command.batch.eq(batch), command.steps.eq(steps),
                    command.weight_set.eq((layer << (directions - 1)) + direction),
                    command.linear_before_reset.eq(flags.linear_before_reset),
                    command.reverse.eq(reverse), command.initial_state.eq(flags.use_h0),
                    command.emit_steps.eq(1),
                ]
                with m.If(self.command.ready):
                    input_bank = layer[0]
                    first_step = Mux(reverse, self.last_step, 0)
                    m.d.comb += [walk.start.eq(1),
                                 walk.base.eq(Mux(input_bank, bank_words, 0) + first_step),
                                 output_walk.start.eq(1),
                                 output_walk.base.eq(Mux(input_bank, 0, bank_words) +
                                                     first_step + Mux(direction, hidden, 0))]
                    m.d.sync += [final_unit.eq(0), final_row.eq(hn_base), lengths_sent.eq(0)]
                    m.next = "ENGINE"

            with m.State("ENGINE"):
                m.d.comb += [self.lengths_out.valid.eq(lengths_sent < batch),
                             self.lengths_out.payload.eq(self.lengths[lengths_sent])]
                with m.If(self.lengths_out.valid & self.lengths_out.ready):
                    m.d.sync += lengths_sent.eq(lengths_sent + 1)
                # Inputs in processing order: (step, b, d) = (outer, middle, inner).
                m.d.comb += [walk.read.eq(1), walk.taken.eq(self.x.ready),
                             *steps_in_order.time_major(walk, steps, batch, inputs),
                             self.x.valid.eq(walk.valid), self.x.payload.eq(self.buffer_data)]
                # Outputs: each step's states to the other bank, the final ones to h_n.
                output = self.o.payload
                m.d.comb += [
                    self.status.ready.eq(1),
                    *steps_in_order.time_major(output_walk, steps, batch, hidden),
                    self.buffer.addr.eq(output_walk.address), self.buffer.data.eq(output.data),
                    self.h_n.addr.eq(final_row + final_unit), self.h_n.data.eq(output.data),
                ]
                with m.If(self.o.valid & output.final):
                    m.d.comb += self.h_n.en.eq(1)
                    with m.If(final_unit == hidden - 1):
                        m.d.sync += [final_unit.eq(0), final_row.eq(final_row + max_h)]
                    with m.Else():
                        m.d.sync += final_unit.eq(final_unit + 1)
                with m.Elif(self.o.valid):
                    m.d.comb += [self.buffer.en.eq(1), output_walk.step.eq(1)]
                with m.If(self.status.valid):
                    last_direction = direction == run_directions - 1
                    # The next run's h0 slot is the next one, except after a lone direction
                    # in a bidirectional build, which skips the reverse slot.
                    m.d.sync += [h0_base.eq(h0_base + Mux(last_direction & ~direction,
                                                          directions * state_words,
                                                          state_words)),
                                 hn_base.eq(hn_base + state_words)]
                    with m.If(last_direction):
                        m.d.sync += [direction.eq(0), layer.eq(layer + 1)]
                    with m.Else():
                        m.d.sync += direction.eq(1)
                    with m.If(last_direction & (layer == header.num_layers - 1)):
                        m.d.comb += self.done.eq(1)
                        m.d.sync += self.engine_owns.eq(0)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += [walk.start.eq(1), walk.start_done.eq(~flags.use_h0)]
                        m.next = "H0"
        return m


class RunResults(wiring.Component):
    """Send a RUN's results as the response's words: the outputs, then ``h_n``.

    Parameters
    ----------
    config, walk, address_bits :
        As :class:`LayerSequencer`'s.
    output_bytes_width : int
        :class:`RunIntake`'s ``output_bytes``' width.

    Members
    -------
    start : In(1)
        The response's header is sent: begin.
    header : In(layout(RUN_HEADER))
    lengths : In(ArrayLayout(range(max_steps + 1), max_batch))
    output_bytes : In(unsigned)
        :class:`RunIntake`'s.
    walk : Out(walk)
        Reads the last layer's bank ragged and batch-major, then ``h_n`` row by row.
    buffer_data, h_n_data : In(signed(data bits))
        The words the layer buffer and ``h_n`` read.
    response : Out(response_signature(data bits))
        The GLU unit's streams (for a RUN with its ``glu`` flag), the response's words
        (:class:`~.response.ResponseWriter`'s ``words``) and ``send``.
    sent : In(17)
        The response's bytes sent.
    end : In(1)
        The response's last byte leaves: stop.
    """

    def __init__(self, config=BuildConfig(), *, walk, address_bits, output_bytes_width):
        self._config = config
        data_bits = config.formats.data.total_bits
        ports = _ports(config, walk, address_bits)
        del ports["buffer"]
        super().__init__({
            **ports,
            "output_bytes": In(output_bytes_width),
            "buffer_data": In(signed(data_bits)),
            "h_n_data": In(signed(data_bits)),
            "response": Out(response_signature(data_bits)),
            "sent": In(17),
            "end": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        buffer_layout = BufferLayout(config)
        header, walk = self.header, self.walk
        flags, batch, hidden, num_layers = (header.flags, header.batch, header.hidden_size,
                                            header.num_layers)
        run_features = Mux(flags.bidirectional, hidden << 1, hidden)
        response = self.response
        glu_input, glu_output, words = response.glu_input, response.glu_output, response.words

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [walk.start.eq(1), walk.start_done.eq(flags.final_only),
                                 walk.base.eq(Mux(num_layers[0], buffer_layout.bank_words, 0))]
                    m.next = "OUTPUTS"

            with m.State("OUTPUTS"):
                # The last layer's outputs, ragged batch-major: (b, t, f) = (outer, middle,
                # inner), through the GLU when asked.
                m.d.comb += [walk.read.eq(1), response.send.eq(1),
                             *buffer_layout.sequences.batch_major(
                                 walk, batch, self.lengths[walk.outer], run_features)]
                with m.If(flags.glu):
                    m.d.comb += [walk.taken.eq(glu_input.ready),
                                 glu_input.valid.eq(walk.valid),
                                 glu_input.payload.eq(self.buffer_data),
                                 words.valid.eq(glu_output.valid),
                                 words.payload.eq(glu_output.payload.data),
                                 glu_output.ready.eq(words.ready)]
                with m.Else():
                    m.d.comb += [walk.taken.eq(words.ready), words.valid.eq(walk.valid),
                                 words.payload.eq(self.buffer_data)]
                with m.If(self.sent == self.output_bytes):
                    m.d.comb += walk.start.eq(1)
                    m.next = "FINALS"

            with m.State("FINALS"):
                # h_n: (layer * directions + direction, b, j) = (outer, middle, inner).
                m.d.comb += [walk.read.eq(1), response.send.eq(1), walk.taken.eq(words.ready),
                             *walk.last_of(Mux(flags.bidirectional, num_layers << 1,
                                               num_layers), batch, hidden),
                             walk.strides.outer.eq(buffer_layout.state_words),
                             walk.strides.middle.eq(config.max_hidden_size),
                             words.valid.eq(walk.valid), words.payload.eq(self.h_n_data)]
                with m.If(self.end):
                    m.next = "IDLE"
        return m


def response_signature(data_bits):
    """A port of a command that sends words in its response, through the GLU unit or not
    (see :func:`~.share.share`): the GLU's streams, the response's words and ``send``."""
    return wiring.Signature({
        "glu_input": Out(stream.Signature(signed(data_bits))),
        "glu_output": In(stream.Signature(data.StructLayout({"data": signed(data_bits),
                                                             "last": 1}))),
        "words": Out(stream.Signature(unsigned(16))),
        "send": Out(1),
    })


class RunMemories(wiring.Component):
    """The memories a RUN's components share: the layer buffer, ``h0`` and ``h_n``.

    They are block RAMs even when small: in flip-flops they would cost hundreds of logic
    cells. No read uses a word written in its cycle (a layer reads one bank and writes the
    other, ``h0`` is written by LOAD and ``h_n`` read by the response only), so they are built
    with :data:`~.memory.NO_RW_CHECK`.

    Parameters
    ----------
    config : BuildConfig
    address_bits : int
    two_cycle_reads : bool
        Read in two cycles: the layer buffer, whose RAMs lie all over a large chip, each bank
        into a register beside it first (a :class:`~.memory.BankedMemory`), ``h0`` and
        ``h_n`` into a register; no RAM's output crosses the chip before a flip-flop.
        Otherwise in one.

    Members
    -------
    buffer_write, h0_write, h_n_write : Out(WritePort.Signature)
        The write ports.
    read_en : In(1)
        The read ports move on (every memory's).
    buffer_address, h0_address, h_n_address : In(unsigned(address_bits))
        The read addresses.
    buffer_data, h0_data, h_n_data : Out(signed(data bits))
        The words read: one or two cycles after their ``read_en``, held until the next.
    """

    def __init__(self, config=BuildConfig(), *, address_bits, two_cycle_reads=False):
        self._config = config
        self._two_cycle_reads = two_cycle_reads
        word = signed(config.formats.data.total_bits)
        write = WritePort.Signature(addr_width=address_bits, shape=word)
        super().__init__({
            "buffer_write": Out(write), "h0_write": Out(write), "h_n_write": Out(write),
            "read_en": In(1),
            "buffer_address": In(address_bits), "h0_address": In(address_bits),
            "h_n_address": In(address_bits),
            "buffer_data": Out(word), "h0_data": Out(word), "h_n_data": Out(word),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        word = self.buffer_data.shape()
        buffer_words = 2 * BufferLayout(config).bank_words
        state_words = config.weight_sets * BufferLayout(config).state_words
        block = {"ram_style": "block", **NO_RW_CHECK}
        if self._two_cycle_reads:
            m.submodules.buffer = buffer = BankedMemory(word, buffer_words, bank_depth=1024)
            m.d.comb += [buffer.r_addr.eq(self.buffer_address), buffer.r_en.eq(self.read_en),
                         buffer.w_addr.eq(self.buffer_write.addr),
                         buffer.w_data.eq(self.buffer_write.data),
                         buffer.w_en.eq(self.buffer_write.en),
                         self.buffer_data.eq(buffer.r_data)]
        else:
            m.submodules.buffer = buffer = Memory(shape=word, depth=buffer_words, init=[],
                                                  attrs=block)
            buffer_read, buffer_write = buffer.read_port(), buffer.write_port()
            m.d.comb += _write(buffer_write, self.buffer_write)
            m.d.comb += [buffer_read.addr.eq(self.buffer_address),
                         buffer_read.en.eq(self.read_en),
                         self.buffer_data.eq(read_data(m, buffer_read, buffer_write,
                                                       platform=platform))]
        for name in ("h0", "h_n"):
            m.submodules[name] = memory = Memory(shape=word, depth=state_words, init=[],
                                                 attrs=block)
            read, write = memory.read_port(), memory.write_port()
            m.d.comb += _write(write, getattr(self, f"{name}_write"))
            m.d.comb += [read.addr.eq(getattr(self, f"{name}_address")),
                         read.en.eq(self.read_en)]
            data = held_read(m, self.read_en, read_data(m, read, write, platform=platform),
                             registered=self._two_cycle_reads)
            m.d.comb += getattr(self, f"{name}_data").eq(data)
        return m


def _write(port, source):
    return [port.addr.eq(source.addr), port.data.eq(source.data), port.en.eq(source.en)]
