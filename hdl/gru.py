"""The GRU layer engine: lanes of multiply-accumulate, weights in block RAM, golden's numerics.

One :class:`GRUEngine` runs one layer in one direction over a batch of sequences; a model of
several layers and directions is run by time-multiplexing it over its weight banks (one bank
per layer and direction, chosen per run), each run's outputs feeding the next. One engine and
many banks costs block RAM only, where an engine per layer and direction would multiply the
lanes, the element-wise stage and the state memory as well.

How a step is computed (the "job" of one sequence at one step)
----------------------------------------------------------------

The ``3H`` rows of ``[W_i | W_h]`` are cut into passes: for each gate ``r``, ``z``, ``n`` in
turn, ``ceil(H / lanes)`` groups of ``lanes`` rows, lane ``l`` of group ``g`` owning hidden
unit ``j = g * lanes + l``. A pass takes ``D + H`` cycles: in cycle ``k`` one element of the
vector ``[x; h]`` (``[x; r * h]`` for the ``n`` rows of the original form) is broadcast to
every lane, and each lane multiplies it by the weight of its own row, read from its own weight
bank, so the lanes never wait for weights. The biases enter the accumulators at ``k = 0``
(``b_i``) and ``k = D`` (``b_h``); for the ``n`` rows of PyTorch's form the accumulator is
taken aside at ``k = D`` (``W_in x + b_in``) and restarted for ``W_hn h + b_hn``.

With a lane width ``w`` above 1 (:attr:`BuildConfig.lane_width`) every lane has ``w``
multipliers and a cycle broadcasts ``w`` elements: a pass takes ``D' + H'`` cycles, where
``D' = ceil(D / w)`` and ``H' = ceil(H / w)``, the input and the recurrent terms each padded
to whole cycles. A padding element is taken as zero, whatever its weight word holds. Below,
read ``D'`` and ``H'`` for ``D`` and ``H`` where cycles are counted.

When a pass ends its sums move to a holding register, and an element-wise pipeline takes them
one unit per cycle while the lanes start the next pass: sigmoid of ``r`` and ``z``, tanh of
``n``, the update ``h' = n + z (h - n)`` and, for the original form, ``r * h`` for the ``n``
passes. All numerics are :func:`gatework.golden.gru.gru_cell_fixed`'s, bit for bit.

Cycles per job: ``3 * ceil(H / lanes) * (D + H)`` when ``D + H >= lanes`` (the element-wise
stage keeps up), which is the ideal ``3 H (D + H) / lanes`` when ``lanes`` divides ``H``
(``3 H (D + H) / (lanes * w)`` when ``w`` divides ``D`` and ``H`` as well).
A job waits only where a dependency is not yet met: the state of the same sequence one step
earlier, and the ``r`` of its own units. An ``n`` pass of the original form reads ``r * h``
of unit ``u`` once the job has written it; one of PyTorch's form starts at once when
``H >= 6`` (the element-wise stage then writes ``r`` of a unit before the ``n`` of that
unit reaches it), and otherwise waits for all of ``r``. With a batch of one, a job starts as
soon as the previous step's passes are issued: its ``D`` input terms need no state, and each
state term waits only until the previous step has written that unit, so when ``D`` is at
least the element-wise stage's depth (about 20 cycles) steps follow each other with no gap.

The components
--------------

:class:`GRUEngine` joins them and the memories they share (the states and ``r * h``):

- :class:`~.gru_control.RunControl` takes a command and its lengths, refuses what does not
  fit, sets a run up and reports its status;
- :class:`~.gru_inputs.InputBuffer` holds two input vectors;
- :class:`~.gru_scheduler.JobScheduler` issues the jobs' terms as their dependencies allow,
  which its :class:`~.gru_tracker.JobTracker` follows;
- :class:`~.gru_load.LoadDecoder` writes load words into the banks and the state memory;
- :class:`~.gru_lanes.Lanes` multiply and accumulate the terms and hand each pass's sums on,
  a stream of units, through the holding registers of their
  :class:`~.gru_serializer.SumSerializer`;
- :class:`~.gru_elementwise.ElementwiseStage` turns them into gates, states and outputs.

The scheduler, the lanes and the element-wise stage move in lockstep where a stream would cost
a cycle: the lanes take a term whenever they advance, and the scheduler hears from the
element-wise stage what is written. The words they exchange are in :mod:`.gru_layouts`.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from .activation import Activation, activation_signature
from .gru_control import RunControl
from .gru_elementwise import ElementwiseStage
from .gru_inputs import InputBuffer
from .gru_lanes import Lanes
from .gru_layouts import (LoadRegion, Refusal, command_layout, lane_cycles, load_layout,
                          output_layout, status_layout)
from .gru_load import LoadDecoder
from .gru_scheduler import JobScheduler
from .memory import NO_RW_CHECK, read_data


__all__ = ["GRUEngine", "LoadRegion", "Refusal", "engine_load_words", "lane_cycles"]


def engine_load_words(config, weights, weight_set, *, h0=None):
    """Load-port payloads that put one layer-direction's weight codes into ``weight_set``.

    Parameters
    ----------
    config : BuildConfig
    weights : GRUDirectionWeights
        Integer codes (weights in ``formats.weight``, biases in ``formats.bias``), rows
        ``r | z | n``; biases may be None (zeros are loaded).
    weight_set : int
        The bank, see :meth:`BuildConfig.weight_set`.
    h0 : numpy.ndarray, optional
        ``(N, H)`` data codes: initial states to load (bank 0 of the state memory).

    Returns
    -------
    list of dict
        ``{"region", "lane", "address", "data"}`` payloads in a fixed order.

    The layout is the engine's: for lane ``l``, the row of unit ``j = g * lanes + l`` of
    gate ``G`` is pass ``p = G * ceil(H / lanes) + g`` and lies at words
    ``set_base + p * (D' + H') + k``: its input weights from ``k = 0``, its recurrent weights
    from ``k = D'``, where ``D'`` and ``H'`` are ``D`` and ``H`` rounded up to a multiple of
    the lane width (:meth:`BuildConfig.padded_terms`; the words between are not written).
    """
    lanes = config.lanes
    hidden, inputs = weights.hidden_size, weights.input_size
    input_words = config.padded_terms(inputs)
    terms = input_words + config.padded_terms(hidden)
    groups = -(-hidden // lanes)
    weight_base = weight_set * config.weight_set_words
    bias_base = weight_set * config.bias_set_words
    words = []
    for gate in range(3):
        for j in range(hidden):
            group, lane = divmod(j, lanes)
            row = gate * hidden + j
            pass_index = gate * groups + group
            for k in range(inputs):
                words.append({"region": LoadRegion.WEIGHT, "lane": lane,
                              "address": weight_base + pass_index * terms + k,
                              "data": int(weights.weight_ih[row, k])})
            for k in range(hidden):
                words.append({"region": LoadRegion.WEIGHT, "lane": lane,
                              "address": weight_base + pass_index * terms + input_words + k,
                              "data": int(weights.weight_hh[row, k])})
            for which, bias in enumerate((weights.bias_ih, weights.bias_hh)):
                words.append({"region": LoadRegion.BIAS, "lane": lane,
                              "address": bias_base + pass_index * 2 + which,
                              "data": 0 if bias is None else int(bias[row])})
    if h0 is not None:
        for b, state in enumerate(h0):
            for j, value in enumerate(state):
                words.append({"region": LoadRegion.STATE, "lane": 0,
                              "address": b * config.max_hidden_size + j, "data": int(value)})
    return words


class GRUEngine(wiring.Component):
    """Run one GRU layer in one direction over a batch of ragged sequences, bit-exact.

    Parameters
    ----------
    config : BuildConfig
        Lanes, maxima, weight banks (``config.weight_sets``) and formats.
    lut_multipliers : bool
        Build the element-wise stage's two multipliers and the activation's of shifts and
        adds in logic cells (:func:`.arith.multiply`) rather than as multiplications, which
        synthesis puts on DSP blocks, so that those are left to the lanes. Same results,
        same cycles.
    shared_activation : bool
        Use an activation unit outside the engine, through the ``activation`` member, rather
        than one of its own; the owner shares it with another block (see
        :class:`~.top.AcceleratorTop`).

    Members
    -------
    load : In(stream.Signature(StructLayout({"region", "lane", "address", "data"})))
        Writes one word of a weight bank, a bias bank or the state memory (initial states
        ``h0`` at ``b * max_hidden_size + j``); see :func:`engine_load_words` for the layout.
        Taken only between runs. A word addressed beyond the build's memories is not
        written and raises ``load_error`` until the next run command.
    command : In(stream.Signature(StructLayout({...})))
        Starts a run: ``input_size``, ``hidden_size``, ``batch``, ``steps``, ``weight_set``,
        ``linear_before_reset``, ``reverse`` (the steps arrive last first; outputs leave in
        the same order), ``initial_state`` (1: start from the loaded ``h0``; 0: from zeros)
        and ``emit_steps`` (1: every step's states; 0: the final states only).
    lengths : In(stream.Signature(unsigned))
        Then the ``batch`` sequence lengths, each in ``1..steps``.
    x : In(stream.Signature(signed(data bits)))
        Then ``steps * batch * input_size`` data codes, time-major in processing order: for
        each step, for each sequence, its input vector (padding past a length is ignored).
    o : Out(stream.Signature(StructLayout({"data", "final", "last"})))
        With ``emit_steps``, for each step and sequence ``hidden_size`` codes of the new
        state (zeros past the sequence's length); then, with ``final`` set, each sequence's
        final state. ``last`` marks the run's last word.
    status : Out(stream.Signature(StructLayout({"error", "refusal", "load_error"})))
        One per command, after its last output word. A refused run computes nothing and
        emits nothing on ``o``; it consumes its command only when a size is beyond the
        build, or also its lengths and inputs when a length is out of range.
    load_error : Out(1)
    activation : Out(activation_signature(formats).flip())
        Only with ``shared_activation``: the activation unit's ports. The engine offers a
        value every cycle (``i.valid`` always high) and moves in lockstep with the unit, so
        while it runs the unit must be its alone; between runs the owner may lend it out
        once the engine's values have left it (:attr:`.Activation.latency` cycles with
        ``i.valid`` low and ``o.ready`` high).

    Throughput: ``lanes * lane_width`` multiply-accumulates per cycle while a pass runs; a
    step of one sequence takes ``3 * ceil(H / lanes) * (D' + H')`` cycles when
    ``D' + H' >= lanes``, with ``D'`` and ``H'`` the cycles of a row's input and recurrent
    terms, ``ceil(D / lane_width)`` and ``ceil(H / lane_width)`` (see the module
    docstring). A run's weight set is found by counting up from the first set, one set
    per cycle from the command on: its first pass waits for that only when ``weight_set``
    exceeds the cycles its lengths take. Resources: ``lanes * lane_width`` multipliers,
    ``lanes`` accumulators, a weight bank (``lane_width`` weights a word) and a bias bank per
    lane (:meth:`BuildConfig.memory_words`), a state memory of
    ``2 * max_batch * max_hidden_size`` words, the activation ROM and its multiplier, and two
    multipliers in the element-wise stage (16 x 18 and 16 x 20 bits by default, two DSP
    blocks each) or with ``lut_multipliers`` three adder trees in their place; no other
    multiplier, as every address advances by its stride.

    Built for a high clock across many lanes: a term takes six stages from issue to its
    accumulator (memories read, operands registered, the multiplier's input and output
    registers, bias added, accumulated), each lane's multiplier with its registers on one DSP
    block of an ECP5 (:func:`.arith.pipelined_product`), and the registers all lanes read
    (the weight banks' address, the enables) copied once per eight lanes (:mod:`.fanout`);
    the broadcast element, whose loads are the multipliers' input registers, has one. Load
    words are written a cycle after they are taken.
    """

    def __init__(self, config=BuildConfig(), *, lut_multipliers=False,
                 shared_activation=False):
        self._config = config
        self._lut_multipliers = lut_multipliers
        self._shared_activation = shared_activation
        formats = config.formats
        members = {
            "load": In(stream.Signature(load_layout(config))),
            "command": In(stream.Signature(command_layout(config))),
            "lengths": In(stream.Signature(range(config.max_steps + 1))),
            "x": In(stream.Signature(signed(formats.data.total_bits))),
            "o": Out(stream.Signature(output_layout(config))),
            "status": Out(stream.Signature(status_layout())),
            "load_error": Out(1),
        }
        if shared_activation:
            members["activation"] = Out(activation_signature(formats).flip())
        super().__init__(members)

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        config = self._config
        formats = config.formats
        max_b, max_h = config.max_batch, config.max_hidden_size
        data_bits = formats.data.total_bits
        shift = config.lane_width_log2

        m.submodules.control = control = RunControl(config)
        m.submodules.inputs = inputs = InputBuffer(config)
        m.submodules.scheduler = scheduler = JobScheduler(config)
        m.submodules.load = loader = LoadDecoder(config)
        m.submodules.lanes = lane_array = Lanes(config)
        m.submodules.elementwise = elementwise = ElementwiseStage(
            config, lut_multipliers=self._lut_multipliers)
        if self._shared_activation:
            wiring.connect(m, wiring.flipped(self.activation), elementwise.activation)
        else:
            m.submodules.activation = activation = Activation(
                formats, lut_multipliers=self._lut_multipliers)
            wiring.connect(m, activation, elementwise.activation)

        # ---- memories the components share ---------------------------------------------
        # Small memories too go to block RAM: in flip-flops and read multiplexers they cost
        # more logic cells than the engine's control (Yosys' default for them). No read of the
        # states or r * h uses a word written in its cycle: a job reads the state bank its
        # sequence's previous job has finished writing, and the r * h it reads is complete.
        # The lanes take lane_width elements of the vector a cycle, through as many ports.
        block = {"ram_style": "block", **NO_RW_CHECK}
        m.submodules.state = state_memory = Memory(shape=signed(data_bits),
                                                   depth=2 * max_b * max_h, init=[], attrs=block)
        state_vectors = [state_memory.read_port() for _ in lane_array.state_words]
        state_update = state_memory.read_port()       # h of the element-wise stage
        state_write = state_memory.write_port()
        m.submodules.reset_state = rh_memory = Memory(shape=signed(data_bits), depth=max_h,
                                                      init=[], attrs=block)
        rh_reads = [rh_memory.read_port() for _ in lane_array.rh_words]
        rh_write = rh_memory.write_port()
        wiring.connect(m, rh_write, elementwise.rh_write)
        # The state memory is written by load words between runs, by new states during one.
        with m.If(loader.state.en):
            m.d.comb += [state_write.addr.eq(loader.state.addr),
                         state_write.data.eq(loader.state.data), state_write.en.eq(1)]
        with m.Else():
            m.d.comb += [state_write.addr.eq(elementwise.state_write.addr),
                         state_write.data.eq(elementwise.state_write.data),
                         state_write.en.eq(elementwise.state_write.en)]
        m.d.comb += [
            state_update.addr.eq(elementwise.state_read.addr),
            state_update.en.eq(elementwise.state_read.en),
            elementwise.state_read.data.eq(read_data(m, state_update, state_write,
                                                     platform=platform)),
        ]
        for k, (state_read, rh_read) in enumerate(zip(state_vectors, rh_reads)):
            m.d.comb += [
                state_read.addr.eq(scheduler.state_address[k]),
                state_read.en.eq(lane_array.advance),
                lane_array.state_words[k].eq(read_data(m, state_read, state_write,
                                                       platform=platform)),
                rh_read.addr.eq(scheduler.rh_address[k]),
                rh_read.en.eq(lane_array.advance),
                lane_array.rh_words[k].eq(read_data(m, rh_read, rh_write, platform=platform)),
            ]

        # ---- commands, loads and inputs in; outputs and status out ---------------------
        wiring.connect(m, wiring.flipped(self.command), control.command)
        wiring.connect(m, wiring.flipped(self.lengths), control.lengths)
        wiring.connect(m, control.status, wiring.flipped(self.status))
        wiring.connect(m, wiring.flipped(self.load), loader.load)
        wiring.connect(m, wiring.flipped(self.x), inputs.x)
        wiring.connect(m, elementwise.o, wiring.flipped(self.o))
        command = control.run.command
        m.d.comb += [
            self.load_error.eq(control.load_error),
            control.load_refused.eq(loader.refused),
            loader.enable.eq(control.idle),
            inputs.command.eq(command),
            inputs.start.eq(control.start),
            inputs.accept.eq(control.running),
            inputs.drain.eq(control.drain),
            control.drained.eq(inputs.last_taken),
        ]

        # ---- scheduler -> lanes -> element-wise stage ----------------------------------
        m.d.comb += [
            scheduler.run.eq(control.run),
            *(length.eq(value) for length, value in zip(scheduler.lengths,
                                                         control.sequence_lengths)),
            scheduler.start.eq(control.start),
            scheduler.running.eq(control.running),
            control.issued.eq(scheduler.last_issued),
            scheduler.idle.eq(control.idle),
            scheduler.load_address.eq(self.load.payload.address[shift:]),
            scheduler.vector_ready.eq(inputs.vector_ready),
            inputs.free.eq(scheduler.free_slot),
            inputs.term.eq(scheduler.term),
            inputs.read.eq(lane_array.advance),
            *(word.eq(value) for word, value in zip(lane_array.input_words, inputs.words)),
            lane_array.command.eq(command),
            lane_array.term.eq(scheduler.issued),
            scheduler.advance.eq(lane_array.advance),
            *(address.eq(value) for address, value in zip(lane_array.weight_address,
                                                          scheduler.weight_address)),
            lane_array.bias_address.eq(scheduler.bias_address),
            elementwise.command.eq(command),
            scheduler.job_done.eq(elementwise.job_done),
            scheduler.r_done.eq(elementwise.r_done),
            scheduler.state_cycle_written.eq(elementwise.state_cycle_written),
            scheduler.rh_cycle_written.eq(elementwise.rh_cycle_written),
            control.finished.eq(elementwise.run_done),
        ]
        wiring.connect(m, loader.writes, lane_array.load)
        wiring.connect(m, lane_array.sums, elementwise.sums)
        return m
