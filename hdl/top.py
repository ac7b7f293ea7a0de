"""The accelerator top: wire bytes in, protocol v1 responses out.

It puts the link (:class:`~.link.FrameReceiver`, :class:`~.link.FrameTransmitter`) in front
of the command decoder, which answers INFO, RESET, GLU, LOAD and RUN. Every answer, errors
included, is byte for byte what :class:`gatework.golden.device_model.DeviceModel` answers, which
the tests check.

LOAD writes the weights into the engine's banks as they arrive, walking the engine's layout
with counters (gate, unit, lane, term), and the initial states into a per-slot memory. Its
``h0`` batch sits after the weights, so the status is decided at the frame's end; a refused
LOAD that had sizes within the build leaves its slot empty, as the protocol allows.

RUN stores the ragged inputs time-major in one bank of a two-bank layer buffer, decides its
status once the whole payload is read, then runs each layer and direction on the engine (the
slot's ``h0`` copied into the engine's state memory first): each run reads its layer's bank
and writes its features into the other bank, and its final states into an ``h_n`` memory.
The response streams the last layer's bank ragged and batch-major (through the GLU when
asked), then ``h_n``.

Its parts: a :class:`~.request.RequestReader` takes a request's payload, its header fields
read by name through layouts made from golden's protocol table (:mod:`.protocol`); a
:class:`~.response.ResponseWriter` sends a response's payload; every walk over a memory is an
:class:`~.walk.AddressWalk`; :class:`~.slots.WeightSlots` keeps what each LOAD put in a slot
and answers RUN's ``NOT_LOADED`` check; :class:`~.activation.SharedActivation` hands the one
activation unit to the engine or the GLU.

LOAD and RUN do not range-check codes against formats narrower than 16 bits, where the device
model answers ``MALFORMED``; the default formats are 16 bits wide.
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from ..golden.protocol import (GLU_HEADER, LOAD_HEADER, MAX_PAYLOAD, RESPONSE_FLAG, RUN_HEADER,
                               Command, Status, info_payload)
from .activation import Activation, SharedActivation
from .arith import SequentialMultiplier
from .glu import GLUUnit
from .gru import GRUEngine, LoadRegion, lane_cycles
from .link import FrameReceiver, FrameTransmitter
from .memory import NO_RW_CHECK, BankedMemory, read_data
from .request import RequestReader
from .response import ResponseWriter
from .slots import WeightSlots
from .stream import StreamRegister
from .walk import AddressWalk


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
    lut_multipliers : bool
        Build every multiplier but the engine's lanes of shifts and adds in logic cells (see
        :class:`~.gru.GRUEngine` and :class:`~.glu.GLUUnit`), so that the DSP blocks serve
        the lanes alone: an iCE40UP5K's eight SB_MAC16 are eight lanes. Same answers, same
        cycles.
    register_slices : bool
        Build for a high clock: put :class:`~.stream.StreamRegister` slices on the engine's
        input stream and the GLU's streams (each cuts a ready path that would otherwise run
        from one block through this state machine to the layer buffer's block RAMs), read
        the layer buffer, h0 and h_n in two cycles, keep the walks' addresses in registers
        of their own, and write the receiver's payload RAM from registers. Each costs logic
        cells and a cycle of latency here and there. Same answers; a build short of logic
        cells rather than of clock (the iCEBreaker's) leaves them out.

    Members
    -------
    i : In(stream.Signature(unsigned(8)))
        Wire bytes from the host (a UART or any byte pipe).
    o : Out(stream.Signature(unsigned(8)))
        Wire bytes to the host.

    A response starts a few cycles after its request's last byte has been checked; a GLU
    streams one input word per two payload bytes, so it runs at the link's byte rate. A LOAD
    takes about two cycles per weight; a RUN the engine's cycles of every layer and
    direction (see :mod:`.gru`) plus two cycles per response byte. The sizes a command needs
    before its payload or its response (a GLU's word count, a LOAD's least length, a RUN's
    response length) take a few cycles each, one per bit of an operand.
    Resources: the link's buffers, a 32-byte INFO ROM, the GLU unit, the GRU engine, a layer
    buffer of ``2 * max_steps * max_batch * max(max_input_size, directions *
    max_hidden_size)`` words, ``h0`` and ``h_n`` memories of ``weight_sets * max_batch *
    max_hidden_size`` words each, a :class:`~.arith.SequentialMultiplier` for those sizes,
    and the state machine. Outside the engine's and the GLU's datapaths there is no
    multiplier: addresses advance by their strides as their counters do. DSP blocks: one
    per lane, and unless ``lut_multipliers`` those of the engine's element-wise stage and
    activation and of the GLU.
    """

    def __init__(self, config=BuildConfig(), max_payload=1024, clock_hz=0, *,
                 lut_multipliers=False, register_slices=True, simulated=False):
        self._config = config
        self._max_payload = max_payload
        self._lut_multipliers = lut_multipliers
        self._register_slices = register_slices
        self._info = info_payload(config, max_payload, clock_hz, simulated=simulated)
        super().__init__({
            "i": In(stream.Signature(unsigned(8))),
            "o": Out(stream.Signature(unsigned(8))),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        m.submodules.receiver = receiver = FrameReceiver(
            self._max_payload, register_writes=self._register_slices)
        m.submodules.transmitter = transmitter = FrameTransmitter()
        if config.glu:
            m.submodules.glu = glu = GLUUnit(config.formats,
                                             max_channels=config.max_hidden_size,
                                             lut_multipliers=self._lut_multipliers,
                                             shared_activation=True)
        else:
            # A build without a GLU answers BEYOND_MAXIMA before any GLU work: only the
            # ports remain, idle.
            m.submodules.glu = glu = _AbsentGLU(config.formats, config.max_hidden_size,
                                                shared_activation=True)
        m.submodules.engine = engine = GRUEngine(config, lut_multipliers=self._lut_multipliers,
                                                 shared_activation=True)
        # The streams this state machine drives and takes: the blocks' own, or register slices
        # on them. The GLU's ready runs back through the activation unit and the engine's
        # would reach the layer buffer's read enables.
        glu_input, glu_output, engine_input = glu.i, glu.o, engine.x
        if self._register_slices:
            m.submodules.engine_x = engine_slice = StreamRegister(engine.x.payload.shape())
            wiring.connect(m, engine_slice.o, engine.x)
            engine_input = engine_slice.i
            if config.glu:
                m.submodules.glu_in = glu_in = StreamRegister(glu.i.payload.shape())
                m.submodules.glu_out = glu_out = StreamRegister(glu.o.payload.shape())
                wiring.connect(m, glu_in.o, glu.i)
                wiring.connect(m, glu.o, glu_out.i)
                glu_input, glu_output = glu_in.i, glu_out.o
        # The engine and the GLU never run at the same time: they share one activation unit.
        m.submodules.activation = activation = Activation(
            config.formats, lut_multipliers=self._lut_multipliers)
        m.submodules.activation_share = activation_share = SharedActivation(config.formats)
        wiring.connect(m, activation_share.unit, activation)
        wiring.connect(m, engine.activation, activation_share.engine)
        wiring.connect(m, glu.activation, activation_share.glu)
        wiring.connect(m, wiring.flipped(self.i), receiver.i)
        wiring.connect(m, transmitter.o, wiring.flipped(self.o))

        lanes, directions = config.lanes, config.directions
        max_b, max_h, max_d = config.max_batch, config.max_hidden_size, config.max_input_size
        data_bits = config.formats.data.total_bits
        # Layer buffers: time-major words at t * step_stride + b * features + f, two banks
        # (a layer reads one and writes the other).
        features = max(max_d, directions * max_h)
        step_stride = max_b * features
        bank_words = config.max_steps * step_stride
        state_words = max_b * max_h
        # Block RAM even when small: in flip-flops they cost hundreds of logic cells. No read
        # uses a word written in its cycle: a layer reads one bank and writes the other, h0
        # is written by LOAD and h_n read by the response only.
        block = {"ram_style": "block", **NO_RW_CHECK}
        # With register slices (a build for a higher clock) the layer buffer, whose RAMs lie
        # all over a large chip, is read in two cycles, each bank into a register beside it
        # first (a BankedMemory), and so are h0 and h_n: no RAM's output crosses the chip
        # before a flip-flop. Without them, in one.
        two_cycle_reads = self._register_slices
        if two_cycle_reads:
            m.submodules.buffer = buffer = BankedMemory(signed(data_bits), 2 * bank_words,
                                                        bank_depth=1024)
            buffer_read = SimpleNamespace(addr=buffer.r_addr, en=buffer.r_en)
            buffer_write = SimpleNamespace(addr=buffer.w_addr, data=buffer.w_data,
                                           en=buffer.w_en)
        else:
            m.submodules.buffer = buffer = Memory(shape=signed(data_bits),
                                                  depth=2 * bank_words, init=[], attrs=block)
            buffer_read, buffer_write = buffer.read_port(), buffer.write_port()
        m.submodules.h0 = h0_memory = Memory(shape=signed(data_bits),
                                             depth=config.weight_sets * state_words, init=[],
                                             attrs=block)
        m.submodules.h_n = hn_memory = Memory(shape=signed(data_bits),
                                              depth=config.weight_sets * state_words, init=[],
                                              attrs=block)
        h0_read, h0_write = h0_memory.read_port(), h0_memory.write_port()
        hn_read, hn_write = hn_memory.read_port(), hn_memory.write_port()
        h0_data = read_data(m, h0_read, h0_write, platform=platform)
        hn_data = read_data(m, hn_read, hn_write, platform=platform)
        read_advance = Signal()         # the walk's reads move on (see read_walk)
        if two_cycle_reads:
            buffer_data = buffer.r_data
            h0_word, hn_word = Signal.like(h0_data), Signal.like(hn_data)
            with m.If(read_advance):
                m.d.sync += [h0_word.eq(h0_data), hn_word.eq(hn_data)]
            h0_data, hn_data = h0_word, hn_word
        else:
            buffer_data = read_data(m, buffer_read, buffer_write, platform=platform)
        address_bits = max(2 * bank_words, config.weight_sets * state_words).bit_length()

        # The products a command needs before its payload or its response goes by (a GLU's
        # words, a LOAD's least length, a RUN's response length and last step) take turns
        # at one sequential multiplier; every address is kept by adding strides.
        m.submodules.sizes = sizes = SequentialMultiplier(max(17, address_bits))

        def start_product(m, a, b):
            m.d.comb += [sizes.start.eq(1), sizes.a.eq(a), sizes.b.eq(b)]

        # A good frame carries at most max_payload bytes, so a counter of request words (a
        # walk, a vector's words, a LOAD's rows) never passes payload_words; sizes from the
        # wire stay 16 bits wide where they are compared with the build's maxima.
        payload_words = self._max_payload // 2
        count_range = range(max(payload_words, max_b, max_h, max_d, config.max_steps,
                                config.weight_sets) + 1)
        command = Signal(8)
        sequence = Signal(8)
        length = Signal(range(self._max_payload + 1))
        status = Signal(8)
        response_length = Signal(16)
        channels = Signal(16)
        # The request's payload: its header's bytes, read by name through golden's table of
        # headers (never by offset), then its words.
        m.submodules.request = request = RequestReader(self._max_payload)
        wiring.connect(m, receiver.payload, request.payload)
        remaining, have_low = request.remaining, request.have_low
        cell_bytes = Signal(len(sizes.product) + 4)     # a LOAD's least length
        cell_sized = Signal()                           # ... is in cell_bytes
        # A RUN's checks, a cycle before its answer.
        run_malformed, run_beyond = Signal(), Signal()
        run_not_loaded, run_too_large = Signal(), Signal()

        def padded(size):
            """``size`` rounded up to a multiple of the engine's lane width."""
            if config.lane_width == 1:
                return size
            return lane_cycles(size, config) << config.lane_width_log2

        # What LOAD put in each slot, for RUN's NOT_LOADED check.
        slots = config.weight_sets
        m.submodules.slots = weight_slots = WeightSlots(config)

        # GLU's fields.
        glu_header = request.header(GLU_HEADER)
        glu_channels, glu_count = glu_header.channels, glu_header.count

        # LOAD's fields and its walk over the engine's layout.
        load = request.header(LOAD_HEADER)
        load_layer, load_direction = load.layer, load.direction
        load_inputs, load_hidden, load_flags = load.input_size, load.hidden_size, load.flags
        has_bias, has_h0 = load_flags.has_bias, load_flags.has_h0
        # h0's batch, saturated: past max_b and past any count of rows is all that matters.
        load_batch = Signal(count_range.stop.bit_length())
        in_build = Signal()
        slot = Signal(range(slots))
        phase = Signal(2)               # weight_ih, weight_hh, bias_ih, bias_hh
        # LOAD's walk: term k and unit j, then h0's j and b. RUN: the index of a length, then
        # the input words of a vector (term) and the vectors (unit) as they arrive.
        term = Signal(count_range)
        unit = Signal(count_range)
        lane = Signal(range(lanes))
        gate = Signal(2)
        pass_base = Signal.like(engine.load.payload.address)
        load_valid = Signal()
        load_word = Signal.like(engine.load.payload)
        # The slot's bases in the engine's banks and in the h0 memory, counted up from 0 one
        # slot per cycle while the LOAD's sizes are multiplied.
        slots_to_skip = Signal(range(slots))
        weight_base = Signal(range(slots * config.weight_set_words))
        bias_base = Signal(range(slots * config.bias_set_words))
        h0_row = Signal(address_bits)   # slot * state_words, then + b * max_h in LOAD_REST
        with m.If(slots_to_skip != 0):
            m.d.sync += [slots_to_skip.eq(slots_to_skip - 1),
                         weight_base.eq(weight_base + config.weight_set_words),
                         bias_base.eq(bias_base + config.bias_set_words),
                         h0_row.eq(h0_row + state_words)]

        # RUN's fields.
        run = request.header(RUN_HEADER)
        num_layers, run_flags = run.num_layers, run.flags
        batch, steps, inputs, hidden = run.batch, run.steps, run.input_size, run.hidden_size
        bidirectional, reverse, linear = (run_flags.bidirectional, run_flags.reverse,
                                          run_flags.linear_before_reset)
        final_only, use_h0, run_glu = run_flags.final_only, run_flags.use_h0, run_flags.glu
        run_directions = Mux(bidirectional, 2, 1)
        run_features = Mux(bidirectional, hidden << 1, hidden)
        # A length is used only when all are within steps and steps within the build.
        lengths = Array(Signal(range(config.max_steps + 1), name=f"length_{b}")
                        for b in range(max_b))
        # The sum of the lengths, saturated past any count of input vectors.
        total_steps = Signal((payload_words + 1).bit_length())
        bad_length = Signal()
        storing = Signal()
        last_step_base = Signal(range(bank_words))      # (steps - 1) * step_stride
        output_bytes = Signal(len(sizes.product) + 1)
        size_overflow = Signal()
        run_layer = Signal(range(config.max_layers + 1))
        run_direction = Signal()
        run_reverse = Mux(bidirectional, run_direction, reverse)
        run_slot = (run_layer << (directions - 1)) + run_direction
        run_inputs = Mux(run_layer == 0, inputs, run_features)
        input_bank = run_layer[0]
        m.d.comb += [
            weight_slots.slot.eq(slot),
            weight_slots.run.num_layers.eq(num_layers),
            weight_slots.run.bidirectional.eq(bidirectional),
            weight_slots.run.input_size.eq(inputs),
            weight_slots.run.hidden_size.eq(hidden),
            weight_slots.run.linear_before_reset.eq(linear),
            weight_slots.run.use_h0.eq(use_h0),
            weight_slots.run.batch.eq(batch),
        ]
        # The run's h0 slot and its final states' place in h_n.
        h0_base = Signal(range(config.weight_sets * state_words + 1))
        hn_base = Signal(range(config.weight_sets * state_words + 1))

        # The walks: inputs into the layer buffer, h0 into the engine, the buffer into the
        # engine and out as the response, h_n out (one at a time), and the engine's outputs
        # into the other bank (while the engine reads its inputs). With register slices their
        # addresses are registers of their own: no adder lies between them and the RAMs.
        m.submodules.walk = walk = AddressWalk(count_range, address_bits,
                                               registered_address=two_cycle_reads)
        outer, walk_address, walk_done = walk.outer, walk.address, walk.done
        read_valid = Signal()           # a read port's data is a word for the consumer
        read_tag = Signal(range(state_words))
        # With two-cycle reads, the word read a cycle ago, still in the RAMs' registers.
        read_valid_1 = Signal()
        read_tag_1 = Signal.like(read_tag)
        reads_pending = read_valid | read_valid_1

        def start_walk(m, done=0, base=0):
            m.d.comb += [walk.start.eq(1), walk.start_done.eq(done), walk.base.eq(base)]
            m.d.sync += [read_valid.eq(0), read_valid_1.eq(0)]

        def walk_step(m, limits, strides):
            m.d.comb += [walk.step.eq(1), *walk.last_of(*limits),
                         walk.strides.outer.eq(strides[0]), walk.strides.middle.eq(strides[1])]

        def read_walk(m, taken, limits, strides, tag=0):
            """Issue reads at the walk's address; ``taken``: the consumer takes the word."""
            advance = ~read_valid | taken
            m.d.comb += [read_advance.eq(advance), buffer_read.en.eq(advance),
                         h0_read.en.eq(advance), hn_read.en.eq(advance)]
            with m.If(advance):
                if two_cycle_reads:
                    m.d.sync += [read_valid.eq(read_valid_1), read_tag.eq(read_tag_1),
                                 read_valid_1.eq(~walk_done), read_tag_1.eq(tag)]
                else:
                    m.d.sync += [read_valid.eq(~walk_done), read_tag.eq(tag)]
                with m.If(~walk_done):
                    walk_step(m, limits, strides)

        # The response's payload: INFO's bytes, or words (a RUN's, a GLU's) two bytes each.
        m.submodules.response = response = ResponseWriter(self._info)
        wiring.connect(m, response.o, transmitter.payload)
        sent = response.sent
        word_valid, word_data = response.words.valid, response.words.payload
        word_ready = response.words.ready

        # The engine's outputs: per step, sequence and unit, (outer, middle, inner) of their
        # walk in the layer buffer; then the final states, at final_row + final_unit in h_n.
        m.submodules.output_walk = output_walk = AddressWalk(
            range(max(max_b, max_h, config.max_steps) + 1), address_bits,
            registered_address=two_cycle_reads)
        final_unit = Signal(range(max_h))
        final_row = Signal(address_bits)
        lengths_sent = Signal(range(max_b + 1))
        # Steps follow each other forward, or backward in a reverse run.
        step_move = Mux(run_reverse, -step_stride, step_stride)

        m.d.comb += [
            transmitter.header.payload.command.eq(command | RESPONSE_FLAG),
            transmitter.header.payload.sequence.eq(sequence),
            transmitter.header.payload.length.eq(response_length),
            transmitter.header.payload.status.eq(status),
            glu.channels.eq(channels),
            engine.load.valid.eq(load_valid),
            engine.load.payload.eq(load_word),
        ]
        with m.If(load_valid & engine.load.ready):
            m.d.sync += load_valid.eq(0)

        def answer(m, code, payload_bytes=0):
            m.d.sync += [status.eq(code), response_length.eq(payload_bytes)]

        def take_word(m, ready):
            """Take request bytes while ``ready``; the word, and whether it completes now."""
            m.d.comb += request.take.eq(ready)
            return request.word_done, request.word

        def read_fields(m, count, next_state):
            with m.If(remaining == 0):
                answer(m, Status.MALFORMED)
                m.next = "DRAIN"
            with m.Else():
                m.d.comb += [request.take.eq(1), request.to_fields.eq(1)]
                with m.If(request.taken & (request.field == count - 1)):
                    m.next = next_state

        # The engine's outputs come only while a RUN waits for them in RUN_ENGINE, which
        # writes each one as it comes: the engine is never stalled, so its element-wise stage
        # needs no enable (an enable decoded from this FSM's state reached a thousand
        # flip-flops). Its activation unit is its own from a RUN's first h0 word to the last
        # run's status (RUN_H0, RUN_COMMAND, RUN_ENGINE), held in a register for the same
        # reason.
        m.d.comb += engine.o.ready.eq(1)
        engine_owns = Signal()

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [receiver.error.ready.eq(1),
                             receiver.header.ready.eq(~receiver.error.valid)]
                with m.If(receiver.error.valid):
                    # The receiver's command and sequence: the first body bytes as received.
                    m.d.sync += [command.eq(receiver.error.payload.command),
                                 sequence.eq(receiver.error.payload.sequence)]
                    m.d.comb += [request.begin.eq(1), request.length.eq(0)]
                    answer(m, receiver.error.payload.status)
                    m.next = "HEADER"
                with m.Elif(receiver.header.valid):
                    header = receiver.header.payload
                    m.d.sync += [command.eq(header.command), sequence.eq(header.sequence),
                                 length.eq(header.length)]
                    m.d.comb += [request.begin.eq(1), request.length.eq(header.length),
                                 response.begin.eq(1)]
                    with m.Switch(header.command):
                        with m.Case(Command.INFO, Command.RESET):
                            with m.If(header.length != 0):
                                answer(m, Status.MALFORMED)
                            with m.Elif(header.command == Command.INFO):
                                answer(m, Status.OK, len(self._info))
                            with m.Else():
                                answer(m, Status.OK)
                                m.d.comb += weight_slots.clear.eq(1)
                            m.next = "DRAIN"
                        with m.Case(Command.GLU):
                            m.next = "GLU_FIELDS"
                        with m.Case(Command.LOAD):
                            m.next = "LOAD_FIELDS"
                        with m.Case(Command.RUN):
                            m.next = "RUN_FIELDS"
                        with m.Default():
                            answer(m, Status.UNKNOWN_COMMAND)
                            m.next = "DRAIN"

            with m.State("GLU_FIELDS"):
                # GLU_HEADER, then the checks in the protocol's order.
                read_fields(m, GLU_HEADER.size, "GLU_SIZE")

            with m.State("GLU_SIZE"):
                start_product(m, glu_channels, glu_count)
                m.d.sync += channels.eq(glu_channels)
                m.next = "GLU_CHECK"

            with m.State("GLU_CHECK"):
                words = sizes.product
                with m.If(~sizes.busy):
                    with m.If((glu_channels == 0) | (glu_count == 0) | sizes.overflow |
                              ((words << 2) != length - 4)):
                        answer(m, Status.MALFORMED)
                        m.next = "DRAIN"
                    with m.Elif((glu_channels > config.max_hidden_size) | (not config.glu)):
                        answer(m, Status.BEYOND_MAXIMA)
                        m.next = "DRAIN"
                    with m.Else():
                        answer(m, Status.OK, words << 1)
                        m.next = "HEADER"

            # ---- LOAD: weights to the engine as they arrive, h0 to its slot's memory ------
            with m.State("LOAD_FIELDS"):
                read_fields(m, LOAD_HEADER.size, "LOAD_SIZE")

            with m.State("LOAD_SIZE"):
                # H * (D + H) for the least length; the slot's bases meanwhile.
                start_product(m, load_inputs + load_hidden, load_hidden)
                index = (load_layer << (directions - 1)) + load_direction
                m.d.sync += [slot.eq(index), slots_to_skip.eq(index), weight_base.eq(0),
                             bias_base.eq(0), h0_row.eq(0), cell_sized.eq(0)]
                m.next = "LOAD_CHECK"

            with m.State("LOAD_CHECK"):
                # The h0 batch sits after the weights: the exact length is checked at the end.
                # The least length goes to a register a cycle before it is compared.
                cell_words = sizes.product
                m.d.sync += [
                    cell_bytes.eq((cell_words << 2) + (cell_words << 1) +
                                  Mux(has_bias, (load_hidden << 3) + (load_hidden << 2), 0) +
                                  Mux(has_h0, 2, 0)),
                    cell_sized.eq(~sizes.busy),
                ]
                with m.If(cell_sized & (slots_to_skip == 0)):
                    with m.If((load_flags.reserved != 0) | (load_inputs == 0) |
                              (load_hidden == 0) | sizes.overflow | (remaining < cell_bytes)):
                        answer(m, Status.MALFORMED)
                        m.next = "DRAIN"
                    with m.Else():
                        fits = ((load_layer < config.max_layers) & (load_direction < directions) &
                                (load_inputs <= max_d) & (load_hidden <= max_h))
                        m.d.sync += [in_build.eq(fits), phase.eq(0), term.eq(0), unit.eq(0),
                                     lane.eq(0), gate.eq(0), load_batch.eq(0),
                                     pass_base.eq(weight_base)]
                        with m.If(fits):
                            # Its weights are overwritten from now on, whatever the answer.
                            m.d.comb += weight_slots.forget.eq(1)
                        m.next = "LOAD_WEIGHTS"

            with m.State("LOAD_WEIGHTS"):
                # A row of unit j of gate G is pass G * ceil(H / lanes) + j // lanes at lane
                # j % lanes: the lane and the pass advance together as j does.
                zero_bias = (phase >= 2) & ~has_bias
                byte_done, byte_word = take_word(m, ~zero_bias & ~load_valid)
                done = Signal()
                word = Signal(16)
                with m.If(zero_bias):
                    m.d.comb += [done.eq(~load_valid), word.eq(0)]
                with m.Else():
                    m.d.comb += [done.eq(byte_done), word.eq(byte_word)]
                row_terms = Mux(phase == 0, load_inputs, Mux(phase == 1, load_hidden, 1))
                # A row's input and recurrent weights each take a multiple of the engine's
                # lane width in its bank (BuildConfig.padded_terms).
                input_words, hidden_words = padded(load_inputs), padded(load_hidden)
                pass_step = Mux(phase < 2, input_words + hidden_words, 2)
                address = pass_base + Mux(phase == 1, input_words, 0) + term + (phase == 3)
                with m.If(done):
                    m.d.sync += [load_valid.eq(in_build),
                                 load_word.region.eq(Mux(phase < 2, LoadRegion.WEIGHT,
                                                         LoadRegion.BIAS)),
                                 load_word.lane.eq(lane), load_word.address.eq(address),
                                 load_word.data.eq(word)]
                    with m.If(term == row_terms - 1):
                        m.d.sync += term.eq(0)
                        end_of_gate = unit == load_hidden - 1
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
                                    m.next = "LOAD_BATCH"
                        with m.Else():
                            m.d.sync += unit.eq(unit + 1)
                    with m.Else():
                        m.d.sync += term.eq(term + 1)

            with m.State("LOAD_BATCH"):
                with m.If(~has_h0):
                    m.next = "LOAD_REST"
                with m.Else():
                    batch_done, batch_word = take_word(m, 1)
                    with m.If(batch_done):
                        saturated = (1 << len(load_batch)) - 1
                        m.d.sync += load_batch.eq(Mux(batch_word.as_unsigned() > saturated,
                                                      saturated, batch_word.as_unsigned()))
                        m.next = "LOAD_REST"

            with m.State("LOAD_REST"):
                # h0, word by word at (b = unit, j = term); anything else is drained.
                h0_done, h0_word = take_word(m, 1)
                m.d.comb += [h0_write.addr.eq(h0_row + term), h0_write.data.eq(h0_word)]
                with m.If(h0_done):
                    m.d.comb += h0_write.en.eq(has_h0 & in_build & (unit < load_batch) &
                                               (unit < max_b))
                    with m.If(term == load_hidden - 1):
                        m.d.sync += [term.eq(0), unit.eq(unit + 1), h0_row.eq(h0_row + max_h)]
                    with m.Else():
                        m.d.sync += term.eq(term + 1)
                with m.If(remaining == 0):
                    m.next = "LOAD_END"

            with m.State("LOAD_END"):
                # The length is exact when the rest held N rows of H words and nothing more
                # (no rows and no odd byte without h0).
                rest_exact = ~have_low & (unit == load_batch) & (term == 0)
                with m.If((has_h0 & (load_batch == 0)) | ~rest_exact):
                    answer(m, Status.MALFORMED)
                with m.Elif(~in_build | (has_h0 & (load_batch > max_b))):
                    answer(m, Status.BEYOND_MAXIMA)
                with m.Else():
                    answer(m, Status.OK)
                    m.d.comb += [weight_slots.record.eq(1),
                                 weight_slots.entry.input_size.eq(load_inputs),
                                 weight_slots.entry.hidden_size.eq(load_hidden),
                                 weight_slots.entry.linear_before_reset.eq(
                                     load_flags.linear_before_reset),
                                 weight_slots.entry.has_h0.eq(has_h0),
                                 weight_slots.entry.batch.eq(load_batch)]
                m.next = "HEADER"

            # ---- RUN: inputs to the buffer, layers on the engine, then the response ------
            with m.State("RUN_FIELDS"):
                read_fields(m, RUN_HEADER.size, "RUN_CHECK")

            with m.State("RUN_CHECK"):
                with m.If((run_flags.reserved != 0) | (bidirectional & reverse) |
                          (num_layers == 0) | (batch == 0) | (steps == 0) | (inputs == 0) |
                          (hidden == 0) | (run_glu & (final_only | run_features[0])) |
                          (remaining < (batch << 1))):
                    answer(m, Status.MALFORMED)
                    m.next = "DRAIN"
                with m.Else():
                    m.d.sync += [storing.eq((batch <= max_b) & (steps <= config.max_steps) &
                                            (inputs <= max_d)),
                                 total_steps.eq(0), bad_length.eq(0), unit.eq(0)]
                    m.next = "RUN_LENGTHS"

            with m.State("RUN_LENGTHS"):
                length_done, length_word = take_word(m, 1)
                value = length_word.as_unsigned()
                with m.If(length_done):
                    steps_sum = total_steps + value
                    m.d.sync += [total_steps.eq(Mux(steps_sum[len(total_steps):] != 0,
                                                    (1 << len(total_steps)) - 1, steps_sum)),
                                 unit.eq(unit + 1),
                                 bad_length.eq(bad_length | (value == 0) | (value > steps))]
                    with m.If(unit < max_b):
                        m.d.sync += lengths[unit].eq(value)
                    with m.If(unit == batch - 1):
                        start_walk(m)
                        m.d.sync += [unit.eq(0), term.eq(0)]
                        m.next = "RUN_INPUTS"

            with m.State("RUN_INPUTS"):
                # Ragged batch-major in, time-major out: (b, t, d) = (outer, middle, inner).
                input_done, input_word = take_word(m, 1)
                m.d.comb += [buffer_write.addr.eq(walk_address),
                             buffer_write.data.eq(input_word)]
                with m.If(input_done & ~walk_done):
                    m.d.comb += buffer_write.en.eq(storing & ~bad_length)
                    walk_step(m, (batch, lengths[outer], inputs), (features, step_stride))
                with m.If(input_done):
                    with m.If(term == inputs - 1):
                        m.d.sync += [term.eq(0), unit.eq(unit + 1)]
                    with m.Else():
                        m.d.sync += term.eq(term + 1)
                with m.If(remaining == 0):
                    start_product(m, step_stride, steps - 1)
                    m.next = "RUN_LAST_STEP"

            # The response's length and the address of the last step, each a product.
            with m.State("RUN_LAST_STEP"):
                with m.If(~sizes.busy):
                    m.d.sync += last_step_base.eq(sizes.product)
                    out_features = Mux(run_glu, run_features >> 1, run_features)
                    start_product(m, total_steps, Mux(final_only, 0, out_features))
                    m.next = "RUN_OUTPUT_SIZE"

            with m.State("RUN_OUTPUT_SIZE"):
                with m.If(~sizes.busy):
                    m.d.sync += [output_bytes.eq(sizes.product << 1),
                                 size_overflow.eq(sizes.overflow)]
                    start_product(m, batch, num_layers)
                    m.next = "RUN_SEQUENCES_SIZE"

            with m.State("RUN_SEQUENCES_SIZE"):
                # h_n: N * L sequences of directions * H words.
                with m.If(~sizes.busy):
                    m.d.sync += size_overflow.eq(size_overflow | sizes.overflow)
                    start_product(m, run_features, sizes.product)
                    m.next = "RUN_DECIDE"

            with m.State("RUN_DECIDE"):
                total = output_bytes + (sizes.product << 1)
                # The payload's length is exact when the inputs held sum(lengths) vectors of
                # D words and nothing more.
                inputs_exact = ~have_low & (unit == total_steps) & (term == 0)
                # The checks go to registers; RUN_ANSWER picks the answer from them a cycle
                # later, so that no path runs from the request's fields to the state.
                with m.If(~sizes.busy):
                    m.d.sync += [
                        run_malformed.eq(bad_length | ~inputs_exact),
                        run_beyond.eq((num_layers > config.max_layers) |
                                      (run_directions > directions) | (batch > max_b) |
                                      (steps > config.max_steps) | (inputs > max_d) |
                                      (hidden > max_h) |
                                      ((num_layers > 1) & (run_features > max_d)) |
                                      (run_glu & (not config.glu))),
                        run_not_loaded.eq(weight_slots.not_loaded),
                        run_too_large.eq(size_overflow | sizes.overflow | (total > MAX_PAYLOAD)),
                        response_length.eq(total),
                    ]
                    m.next = "RUN_ANSWER"

            with m.State("RUN_ANSWER"):
                # The first refusal that applies, in the protocol's order.
                refusals = [(run_malformed, Status.MALFORMED),
                            (run_beyond, Status.BEYOND_MAXIMA),
                            (run_not_loaded, Status.NOT_LOADED),
                            (run_too_large, Status.TOO_LARGE)]
                for index, (refused, code) in enumerate(refusals):
                    with (m.If if index == 0 else m.Elif)(refused):
                        answer(m, code)
                        m.next = "HEADER"
                with m.Else():
                    # OK, with the response's length already in place.
                    m.d.sync += [status.eq(Status.OK), run_layer.eq(0), run_direction.eq(0),
                                 h0_base.eq(0), hn_base.eq(0),
                                 channels.eq(Mux(bidirectional, hidden, hidden >> 1)),
                                 engine_owns.eq(1)]
                    start_walk(m, ~use_h0)
                    m.next = "RUN_H0"

            with m.State("RUN_H0"):
                # The slot's h0 into the engine's state memory: (b, j) = (middle, inner).
                m.d.comb += h0_read.addr.eq(h0_base + walk_address)
                read_walk(m, ~load_valid, (1, batch, hidden), (0, max_h), walk_address)
                with m.If(read_valid & ~load_valid):
                    m.d.sync += [load_valid.eq(1), load_word.region.eq(LoadRegion.STATE),
                                 load_word.lane.eq(0), load_word.address.eq(read_tag),
                                 load_word.data.eq(h0_data)]
                with m.If(walk_done & ~reads_pending & ~load_valid):
                    m.next = "RUN_COMMAND"

            with m.State("RUN_COMMAND"):
                m.d.comb += [
                    engine.command.valid.eq(1),
                    engine.command.payload.input_size.eq(run_inputs),
                    engine.command.payload.hidden_size.eq(hidden),
                    engine.command.payload.batch.eq(batch),
                    engine.command.payload.steps.eq(steps),
                    engine.command.payload.weight_set.eq(run_slot),
                    engine.command.payload.linear_before_reset.eq(linear),
                    engine.command.payload.reverse.eq(run_reverse),
                    engine.command.payload.initial_state.eq(use_h0),
                    engine.command.payload.emit_steps.eq(1),
                ]
                with m.If(engine.command.ready):
                    first_step = Mux(run_reverse, last_step_base, 0)
                    start_walk(m, base=Mux(input_bank, bank_words, 0) + first_step)
                    first_output = (Mux(input_bank, 0, bank_words) + first_step +
                                    Mux(run_direction, hidden, 0))
                    m.d.comb += [output_walk.start.eq(1), output_walk.base.eq(first_output)]
                    m.d.sync += [final_unit.eq(0), final_row.eq(hn_base), lengths_sent.eq(0)]
                    m.next = "RUN_ENGINE"

            with m.State("RUN_ENGINE"):
                m.d.comb += [engine.lengths.valid.eq(lengths_sent < batch),
                             engine.lengths.payload.eq(lengths[lengths_sent])]
                with m.If(engine.lengths.valid & engine.lengths.ready):
                    m.d.sync += lengths_sent.eq(lengths_sent + 1)
                # Inputs in processing order: (step, b, d) = (outer, middle, inner).
                m.d.comb += buffer_read.addr.eq(walk_address)
                read_walk(m, engine_input.ready, (steps, batch, run_inputs),
                          (step_move, features))
                m.d.comb += [engine_input.valid.eq(read_valid),
                             engine_input.payload.eq(buffer_data)]
                # Outputs: each step's states to the other bank, the final ones to h_n.
                m.d.comb += engine.status.ready.eq(1)
                output = engine.o.payload
                m.d.comb += [
                    *output_walk.last_of(steps, batch, hidden),
                    output_walk.strides.outer.eq(step_move),
                    output_walk.strides.middle.eq(features),
                    buffer_write.addr.eq(output_walk.address),
                    buffer_write.data.eq(output.data),
                    hn_write.addr.eq(final_row + final_unit),
                    hn_write.data.eq(output.data),
                ]
                with m.If(engine.o.valid & output.final):
                    m.d.comb += hn_write.en.eq(1)
                    with m.If(final_unit == hidden - 1):
                        m.d.sync += [final_unit.eq(0), final_row.eq(final_row + max_h)]
                    with m.Else():
                        m.d.sync += final_unit.eq(final_unit + 1)
                with m.Elif(engine.o.valid):
                    m.d.comb += [buffer_write.en.eq(1), output_walk.step.eq(1)]
                with m.If(engine.status.valid):
                    last_direction = run_direction == run_directions - 1
                    # The next run's h0 slot is the next one, except after a lone direction
                    # in a bidirectional build, which skips the reverse slot.
                    m.d.sync += [h0_base.eq(h0_base + Mux(last_direction & ~run_direction,
                                                          directions * state_words,
                                                          state_words)),
                                 hn_base.eq(hn_base + state_words)]
                    with m.If(last_direction):
                        m.d.sync += [run_direction.eq(0), run_layer.eq(run_layer + 1)]
                    with m.Else():
                        m.d.sync += run_direction.eq(1)
                    start_walk(m, ~use_h0)
                    with m.If(last_direction & (run_layer == num_layers - 1)):
                        start_walk(m, final_only, base=Mux(num_layers[0], bank_words, 0))
                        m.d.sync += engine_owns.eq(0)
                        m.next = "HEADER"
                    with m.Else():
                        m.next = "RUN_H0"

            with m.State("RUN_OUTPUTS"):
                # The last layer's outputs, ragged batch-major: (b, t, f) = (outer, middle,
                # inner), through the GLU when asked.
                m.d.comb += buffer_read.addr.eq(walk_address)
                output_strides = (features, step_stride)
                with m.If(run_glu):
                    read_walk(m, glu_input.ready, (batch, lengths[outer], run_features),
                              output_strides)
                    m.d.comb += [glu_input.valid.eq(read_valid),
                                 glu_input.payload.eq(buffer_data),
                                 word_valid.eq(glu_output.valid),
                                 word_data.eq(glu_output.payload.data),
                                 glu_output.ready.eq(word_ready)]
                with m.Else():
                    read_walk(m, word_ready, (batch, lengths[outer], run_features),
                              output_strides)
                    m.d.comb += [word_valid.eq(read_valid), word_data.eq(buffer_data)]
                m.d.comb += response.send.eq(1)
                with m.If(sent == output_bytes):
                    start_walk(m)
                    m.next = "RUN_FINALS"

            with m.State("RUN_FINALS"):
                # h_n: (layer * directions + direction, b, j) = (outer, middle, inner).
                m.d.comb += hn_read.addr.eq(walk_address)
                read_walk(m, word_ready, (Mux(bidirectional, num_layers << 1, num_layers),
                                          batch, hidden), (state_words, max_h))
                m.d.comb += [word_valid.eq(read_valid), word_data.eq(hn_data)]
                m.d.comb += response.send.eq(1)
                with m.If(transmitter.payload.valid & transmitter.payload.ready &
                          (sent == response_length - 1)):
                    m.next = "IDLE"

            with m.State("DRAIN"):
                # Whatever the request still carries is read and dropped before the answer.
                m.d.comb += request.take.eq(remaining != 0)
                with m.If(remaining == 0):
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += transmitter.header.valid.eq(1)
                with m.If(transmitter.header.ready):
                    with m.If(response_length == 0):
                        m.next = "IDLE"
                    with m.Elif(command == Command.INFO):
                        m.next = "INFO"
                    with m.Elif(command == Command.RUN):
                        m.next = "RUN_OUTPUTS"
                    with m.Else():
                        m.next = "GLU"

            with m.State("INFO"):
                m.d.comb += response.info.eq(1)
                with m.If(transmitter.payload.ready):
                    with m.If(sent == len(self._info) - 1):
                        m.next = "IDLE"

            with m.State("GLU"):
                # Request bytes pair up into words for the GLU unit, and its results leave as
                # two bytes each, as a RUN's words do.
                _, word = take_word(m, ~have_low | glu_input.ready)
                m.d.comb += [glu_input.valid.eq(have_low & receiver.payload.valid),
                             glu_input.payload.eq(word),
                             word_valid.eq(glu_output.valid),
                             word_data.eq(glu_output.payload.data),
                             glu_output.ready.eq(word_ready)]
                m.d.comb += response.send.eq(1)
                with m.If(transmitter.payload.valid & transmitter.payload.ready &
                          (sent == response_length - 1)):
                    m.next = "IDLE"

        m.d.comb += activation_share.engine_owns.eq(engine_owns)
        return m


class _AbsentGLU(GLUUnit):
    """A shared-activation :class:`~.glu.GLUUnit`'s ports with nothing behind them."""

    def elaborate(self, platform):
        return Module()
