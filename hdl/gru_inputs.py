"""The GRU engine's input buffer: two slots of one input vector each."""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .gru_layouts import command_layout
from .memory import NO_RW_CHECK, read_data


__all__ = ["InputBuffer"]


class InputBuffer(wiring.Component):
    """Take a run's input vectors into two slots while the lanes read the other.

    Vectors arrive in processing order, ``steps * batch`` of ``input_size`` words; a vector
    goes into the slot after the previous one's, and is read by the scheduler's jobs in the
    same order, one slot until it is freed, then the other. A slot takes a new vector once
    it is freed.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    x : In(stream.Signature(signed(data bits)))
        The engine's input words.
    command : In(command_layout(config))
        The run's command (``input_size``, ``batch``, ``steps``), steady through a run.
    start : In(1)
        A run starts: both slots empty, the first vector expected, slot 0 read first.
    accept : In(1)
        Take the run's vectors (ready while a slot is free and vectors are owed).
    drain : In(1)
        Take every word (a refused run's inputs: written, never read).
    vector_ready : Out(1)
        The slot being read holds its whole vector.
    free : In(1)
        The job reading the slot is done with it: it is freed and the other slot is read.
    term : In(range(config.max_terms + 1))
        The cycle of a pass to read, ``lane_width`` elements from ``term * lane_width``.
    read : In(1)
        Read this cycle (the words are on ``words`` in the next cycle, held until the next
        read).
    words : Out(signed(data bits)).array(lane_width)
    last_taken : Out(1)
        The run's last vector's last word is taken this cycle.

    Throughput: a word per cycle while a slot is free. Resources: a memory of two vectors,
    each padded to a multiple of the lane width.
    """

    def __init__(self, config):
        self._config = config
        data_bits = config.formats.data.total_bits
        super().__init__({
            "x": In(stream.Signature(signed(data_bits))),
            "command": In(command_layout(config)),
            "start": In(1),
            "accept": In(1),
            "drain": In(1),
            "vector_ready": Out(1),
            "free": In(1),
            "term": In(range(config.max_terms + 1)),
            "read": In(1),
            "words": Out(signed(data_bits)).array(config.lane_width),
            "last_taken": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        max_b, max_d = config.max_batch, config.max_input_size
        width, shift = config.lane_width, config.lane_width_log2
        command = self.command
        # Two slots of one input vector, each padded to a multiple of the lane width. A job
        # reads a complete slot only: no read uses a word written in its cycle.
        slot_words = config.padded_terms(max_d)
        m.submodules.inputs = input_memory = Memory(
            shape=signed(config.formats.data.total_bits), depth=2 * slot_words, init=[],
            attrs={"ram_style": "block", **NO_RW_CHECK})
        input_reads = [input_memory.read_port() for _ in range(width)]
        input_write = input_memory.write_port()

        slot_full = Signal(2)
        write_slot = Signal()
        write_index = Signal(range(max_d + 1))
        # Which vector arrives next, (step, sequence), and whether any is still expected.
        input_step = Signal(range(config.max_steps))
        input_sequence = Signal(range(max_b))
        inputs_left = Signal()
        m.d.comb += [
            input_write.addr.eq(Mux(write_slot, slot_words, 0) + write_index),
            input_write.data.eq(self.x.payload),
            self.x.ready.eq((self.accept & inputs_left & ~slot_full.bit_select(write_slot, 1)) |
                            self.drain),
            input_write.en.eq(self.x.valid & self.x.ready),
        ]
        read_slot = Signal()
        vector_taken = Signal()       # the last word of a vector is taken this cycle
        last_vector = ((input_step == command.steps - 1) &
                       (input_sequence == command.batch - 1))
        m.d.comb += [
            vector_taken.eq(self.x.valid & self.x.ready &
                            (write_index == command.input_size - 1)),
            self.last_taken.eq(vector_taken & last_vector),
        ]
        with m.If(self.x.valid & self.x.ready):
            m.d.sync += write_index.eq(write_index + 1)
        with m.If(vector_taken):
            m.d.sync += [write_index.eq(0), write_slot.eq(~write_slot)]
            with m.If(last_vector):
                m.d.sync += inputs_left.eq(0)
            with m.Elif(input_sequence == command.batch - 1):
                m.d.sync += [input_sequence.eq(0), input_step.eq(input_step + 1)]
            with m.Else():
                m.d.sync += input_sequence.eq(input_sequence + 1)
        fill = Signal(2)
        clear = Signal(2)
        with m.If(vector_taken):
            m.d.comb += fill.eq(Mux(write_slot, 0b10, 0b01))
        with m.If(self.free):
            m.d.comb += clear.eq(Mux(read_slot, 0b10, 0b01))
            m.d.sync += read_slot.eq(~read_slot)
        m.d.sync += slot_full.eq((slot_full | fill) & ~clear)
        m.d.comb += self.vector_ready.eq(slot_full.bit_select(read_slot, 1))

        for k, read in enumerate(input_reads):
            m.d.comb += [
                read.addr.eq(Mux(read_slot, slot_words, 0) + Cat(Const(k, shift), self.term)),
                read.en.eq(self.read),
                self.words[k].eq(read_data(m, read, input_write, platform=platform)),
            ]

        with m.If(self.start):
            m.d.sync += [slot_full.eq(0), write_slot.eq(0), write_index.eq(0),
                         read_slot.eq(0), input_step.eq(0), input_sequence.eq(0),
                         inputs_left.eq(1)]
        return m
