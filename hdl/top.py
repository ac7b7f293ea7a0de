"""The accelerator top: wire bytes in, protocol v1 responses out.

It puts the link (:class:`~.link.FrameReceiver`, :class:`~.link.FrameTransmitter`) in front
of the command decoder, which answers INFO, RESET, GLU, LOAD and RUN. Every answer, errors
included, is byte for byte what :class:`gatework.golden.device_model.DeviceModel` answers, which
the tests check.

The top reads a request's header (its bytes, by name through layouts made from golden's
protocol table: :mod:`.protocol`) and hands the command to its component, which carries it out
up to its answer: :class:`~.glu_command.GluCommand`, :class:`~.load_command.LoadCommand`, and
RUN's :class:`~.run.RunIntake` then :class:`~.run.LayerSequencer`. It sends the response's
header, then the payload: INFO's bytes, or the words of the GLU's or of
:class:`~.run.RunResults`.

The commands take turns at what they share, each driving a shared port only while under way
(:func:`~.share.share` ORs them): a :class:`~.request.RequestReader` (the request's words), a
:class:`~.response.ResponseWriter` (the response's), one size multiplier, the walk over RUN's
memories (:class:`~.walk.WalkReader`, along the transposer's
:class:`~.transposer.SequenceLayout`), the layer buffer's write port, the engine's load
register and the GLU. :class:`~.slots.WeightSlots` keeps what each LOAD put in a slot and
answers RUN's ``NOT_LOADED`` check; :class:`~.activation.SharedActivation` hands the one
activation unit to the engine or the GLU.

LOAD and RUN do not range-check codes against formats narrower than 16 bits, where the device
model answers ``MALFORMED``; the default formats are 16 bits wide.
"""

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from ..golden.protocol import (GLU_HEADER, LOAD_HEADER, RESPONSE_FLAG, RUN_HEADER,
                               Command, Status, info_payload)
from .activation import Activation, SharedActivation
from .arith import SequentialMultiplier
from .glu import GLUUnit
from .glu_command import GluCommand
from .gru import GRUEngine
from .link import FrameReceiver, FrameTransmitter
from .load_command import LoadCommand
from .request import RequestReader
from .response import ResponseWriter
from .run import BufferLayout, LayerSequencer, RunIntake, RunMemories, RunResults
from .share import share
from .slots import WeightSlots
from .stream import StreamRegister
from .walk import WalkReader


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

    def _blocks(self, m):
        """The link, the GLU unit, the engine and their activation unit; the streams the
        commands drive and take."""
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
        # The streams the commands drive and take: the blocks' own, or register slices on
        # them. The GLU's ready runs back through the activation unit and the engine's would
        # reach the layer buffer's read enables.
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
        return (receiver, transmitter, glu, engine, activation_share, glu_input, glu_output,
                engine_input)

    def elaborate(self, platform):
        m = Module()
        config = self._config
        (receiver, transmitter, glu, engine, activation_share, glu_input, glu_output,
         engine_input) = self._blocks(m)

        # The request's payload: its header's bytes, read by name through golden's table of
        # headers (never by offset), then its words, which the commands take in turn.
        max_payload = self._max_payload
        m.submodules.request = request = RequestReader(max_payload)
        wiring.connect(m, receiver.payload, request.payload)
        # The response's payload: INFO's bytes, or words (a RUN's, a GLU's) two bytes each.
        m.submodules.response = response = ResponseWriter(self._info)
        wiring.connect(m, response.o, transmitter.payload)

        # The RUN's memories, and the walk its components read and write them along.
        two_cycle_reads = self._register_slices
        layout = BufferLayout(config)
        address_bits = layout.address_bits
        m.submodules.memories = memories = RunMemories(config, address_bits=address_bits,
                                                       two_cycle_reads=two_cycle_reads)
        # A good frame carries at most max_payload bytes, so no walk passes its words.
        count_range = layout.count_range(max_payload)
        m.submodules.walk = walk = WalkReader(count_range, address_bits,
                                              range(layout.state_words),
                                              two_cycle_reads=two_cycle_reads)
        walk_user = walk.user_signature
        # The products a command needs before its payload or its response goes by (a GLU's
        # words, a LOAD's least length, a RUN's response length and last step) take turns
        # at one sequential multiplier; every address is kept by adding strides.
        sizes_width = max(17, address_bits)
        m.submodules.sizes = sizes = SequentialMultiplier(sizes_width)
        m.submodules.slots = slots = WeightSlots(config)

        # The commands, each a component that drives what it shares only while under way.
        m.submodules.glu_command = glu_command = GluCommand(config, max_payload,
                                                            sizes_width=sizes_width)
        m.submodules.load = load = LoadCommand(config, max_payload, sizes_width=sizes_width,
                                               h0_address_bits=address_bits)
        m.submodules.intake = intake = RunIntake(config, max_payload, walk=walk_user,
                                                 address_bits=address_bits,
                                                 sizes_width=sizes_width)
        m.submodules.layers = layers = LayerSequencer(config, walk=walk_user,
                                                      address_bits=address_bits,
                                                      two_cycle_reads=two_cycle_reads)
        m.submodules.results = results = RunResults(
            config, walk=walk_user, address_bits=address_bits,
            output_bytes_width=len(intake.output_bytes))
        run_header = request.header(RUN_HEADER)
        m.d.comb += [
            glu_command.header.eq(request.header(GLU_HEADER)),
            load.header.eq(request.header(LOAD_HEADER)),
            *(part.header.eq(run_header) for part in (intake, layers, results)),
            *(part.lengths.eq(intake.lengths) for part in (layers, results)),
            layers.last_step.eq(intake.last_step),
            results.output_bytes.eq(intake.output_bytes),
            intake.not_loaded.eq(slots.not_loaded),
            results.sent.eq(response.sent),
            activation_share.engine_owns.eq(layers.engine_owns),
            # The memories are read along the walk, h0 at the run's slot.
            memories.read_en.eq(walk.advance), memories.buffer_address.eq(walk.address),
            memories.h0_address.eq(layers.h0_address), memories.h_n_address.eq(walk.address),
            layers.h0_data.eq(memories.h0_data), layers.buffer_data.eq(memories.buffer_data),
            results.buffer_data.eq(memories.buffer_data),
            results.h_n_data.eq(memories.h_n_data),
        ]
        for field in ("num_layers", "input_size", "hidden_size", "batch"):
            m.d.comb += getattr(slots.run, field).eq(getattr(run_header, field))
        for flag in ("bidirectional", "linear_before_reset", "use_h0"):
            m.d.comb += getattr(slots.run, flag).eq(getattr(run_header.flags, flag))
        share(m, slots, load.slots)
        share(m, sizes, glu_command.sizes, load.sizes, intake.sizes)
        share(m, walk, intake.walk, layers.walk, results.walk)
        share(m, memories.buffer_write, intake.buffer, layers.buffer)
        share(m, memories.h0_write, load.h0)
        share(m, memories.h_n_write, layers.h_n)
        own_request = RequestReader.words_signature(max_payload).create()
        share(m, request, own_request, glu_command.request, load.request, intake.request)
        response_users = SimpleNamespace(glu_input=glu_input, glu_output=glu_output,
                                         words=response.words, send=response.send)
        share(m, response_users, glu_command.response, results.response)
        wiring.connect(m, layers.command, engine.command)
        wiring.connect(m, layers.lengths_out, engine.lengths)
        wiring.connect(m, layers.x, engine_input)
        wiring.connect(m, engine.o, layers.o)
        wiring.connect(m, engine.status, layers.status)

        # The engine's load words (LOAD's weights, a RUN's h0), from a register that takes a
        # word only when empty.
        load_offer = SimpleNamespace(valid=Signal(), payload=Signal.like(engine.load.payload),
                                     ready=Signal())
        share(m, load_offer, load.load, layers.load)
        m.d.comb += load_offer.ready.eq(~engine.load.valid)
        with m.If(engine.load.ready):
            m.d.sync += engine.load.valid.eq(0)
        with m.If(load_offer.valid):
            m.d.sync += [engine.load.valid.eq(1), engine.load.payload.eq(load_offer.payload)]

        command = Signal(8)
        sequence = Signal(8)
        status = Signal(8)
        response_length = Signal(16)
        channels = Signal(16)
        m.d.comb += [
            glu.channels.eq(channels),
            transmitter.header.payload.command.eq(command | RESPONSE_FLAG),
            transmitter.header.payload.sequence.eq(sequence),
            transmitter.header.payload.length.eq(response_length),
            transmitter.header.payload.status.eq(status),
        ]
        # The response's last byte leaves.
        end = Signal()
        m.d.comb += end.eq(transmitter.payload.valid & transmitter.payload.ready &
                           (response.sent == response_length - 1))
        m.d.comb += [glu_command.end.eq(end), results.end.eq(end)]

        def answer(code, payload_bytes=0):
            m.d.sync += [status.eq(code), response_length.eq(payload_bytes)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [receiver.error.ready.eq(1),
                             receiver.header.ready.eq(~receiver.error.valid)]
                with m.If(receiver.error.valid):
                    # The receiver's command and sequence: the first body bytes as received.
                    m.d.sync += [command.eq(receiver.error.payload.command),
                                 sequence.eq(receiver.error.payload.sequence)]
                    m.d.comb += [request.begin.eq(1), request.length.eq(0)]
                    answer(receiver.error.payload.status)
                    m.next = "HEADER"
                with m.Elif(receiver.header.valid):
                    header = receiver.header.payload
                    m.d.sync += [command.eq(header.command), sequence.eq(header.sequence)]
                    m.d.comb += [request.begin.eq(1), request.length.eq(header.length),
                                 response.begin.eq(1)]
                    with m.Switch(header.command):
                        with m.Case(Command.INFO, Command.RESET):
                            with m.If(header.length != 0):
                                answer(Status.MALFORMED)
                            with m.Elif(header.command == Command.INFO):
                                answer(Status.OK, len(self._info))
                            with m.Else():
                                answer(Status.OK)
                                m.d.comb += slots.clear.eq(1)
                            m.next = "DRAIN"
                        for name in ("GLU", "LOAD", "RUN"):
                            with m.Case(Command[name]):
                                m.next = f"{name}_FIELDS"
                        with m.Default():
                            answer(Status.UNKNOWN_COMMAND)
                            m.next = "DRAIN"

            # A command's header, then its component up to the answer.
            for name, header, part in (("GLU", GLU_HEADER, glu_command),
                                       ("LOAD", LOAD_HEADER, load), ("RUN", RUN_HEADER, intake)):
                with m.State(f"{name}_FIELDS"):
                    with m.If(request.remaining == 0):
                        answer(Status.MALFORMED)
                        m.next = "DRAIN"
                    with m.Else():
                        m.d.comb += [request.to_fields.eq(1), own_request.take.eq(1)]
                        with m.If(request.taken & (request.field == header.size - 1)):
                            m.d.comb += part.start.eq(1)
                            m.next = name

                with m.State(name):
                    with m.If(part.done):
                        answer(part.status, part.length)
                        with m.If(part.drain):
                            m.next = "DRAIN"
                        with m.Else():
                            m.next = "HEADER"
                        if part is glu_command:
                            m.d.sync += channels.eq(glu_command.header.channels)
                        if part is intake:
                            with m.If(~part.drain & (part.status == Status.OK)):
                                # The layers run before the response's header goes.
                                m.d.comb += layers.start.eq(1)
                                m.d.sync += channels.eq(Mux(run_header.flags.bidirectional,
                                                            run_header.hidden_size,
                                                            run_header.hidden_size >> 1))
                                m.next = "RUN_LAYERS"

            with m.State("RUN_LAYERS"):
                with m.If(layers.done):
                    m.next = "HEADER"

            with m.State("DRAIN"):
                # Whatever the request still carries is read and dropped before the answer.
                m.d.comb += own_request.take.eq(request.remaining != 0)
                with m.If(request.remaining == 0):
                    m.next = "HEADER"

            with m.State("HEADER"):
                m.d.comb += transmitter.header.valid.eq(1)
                with m.If(transmitter.header.ready):
                    with m.If(response_length == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += [glu_command.respond.eq(command == Command.GLU),
                                     results.start.eq(command == Command.RUN)]
                        m.next = "RESPONSE"

            with m.State("RESPONSE"):
                # INFO's bytes from the ROM; a GLU's or a RUN's words from its component.
                m.d.comb += response.info.eq(command == Command.INFO)
                with m.If(end):
                    m.next = "IDLE"
        return m


class _AbsentGLU(GLUUnit):
    """A shared-activation :class:`~.glu.GLUUnit`'s ports with nothing behind them."""

    def elaborate(self, platform):
        return Module()
