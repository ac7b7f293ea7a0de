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
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.config import BuildConfig
from .activation import Activation, activation_signature
from .gru_elementwise import ElementwiseStage
from .gru_lanes import Lanes
from .gru_layouts import (LEAVE, Gate, Kind, LoadRegion, Refusal, command_layout, lane_cycles,
                          load_layout)
from .gru_load import LoadDecoder
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
        # Load addresses count weight words; a lane's bank holds lane_width of them a word.
        self._weight_depth = config.weight_sets * config.weight_set_words
        self._bias_depth = config.weight_sets * config.bias_set_words
        self._state_depth = 2 * config.max_batch * config.max_hidden_size
        members = {
            "load": In(stream.Signature(load_layout(config))),
            "command": In(stream.Signature(command_layout(config))),
            "lengths": In(stream.Signature(range(config.max_steps + 1))),
            "x": In(stream.Signature(signed(formats.data.total_bits))),
            "o": Out(stream.Signature(data.StructLayout({
                "data": signed(formats.data.total_bits), "final": 1, "last": 1}))),
            "status": Out(stream.Signature(data.StructLayout({
                "error": 1, "refusal": Refusal, "load_error": 1}))),
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
        lanes = config.lanes
        max_b, max_h, max_d = config.max_batch, config.max_hidden_size, config.max_input_size
        data_bits = formats.data.total_bits

        # ---- memories ------------------------------------------------------------------
        # Small memories too go to block RAM: in flip-flops and read multiplexers they cost
        # more logic cells than the engine's control (Yosys' default for them). No read of the
        # states, inputs or r * h uses a word written in its cycle: a job reads the state bank
        # its sequence's previous job has finished writing, and the input slot and r * h it
        # reads are complete.
        block = {"ram_style": "block", **NO_RW_CHECK}
        # With lane_width w, a lane takes w elements of the vector a cycle, read through w
        # ports of each memory the vector comes from.
        width, shift = config.lane_width, config.lane_width_log2
        m.submodules.state = state_memory = Memory(shape=signed(data_bits),
                                                   depth=self._state_depth, init=[], attrs=block)
        # the broadcast h of the lanes
        state_vectors = [state_memory.read_port() for _ in range(width)]
        state_update = state_memory.read_port()       # h of the element-wise stage
        state_write = state_memory.write_port()
        # Two slots of one input vector, each padded to a multiple of the lane width.
        slot_words = config.padded_terms(max_d)
        m.submodules.inputs = input_memory = Memory(shape=signed(data_bits),
                                                    depth=2 * slot_words, init=[], attrs=block)
        input_reads = [input_memory.read_port() for _ in range(width)]
        input_write = input_memory.write_port()
        m.submodules.reset_state = rh_memory = Memory(shape=signed(data_bits), depth=max_h,
                                                      init=[], attrs=block)
        rh_reads = [rh_memory.read_port() for _ in range(width)]
        rh_write = rh_memory.write_port()
        state_vector_data = [read_data(m, read, state_write, platform=platform)
                             for read in state_vectors]
        state_update_data = read_data(m, state_update, state_write, platform=platform)
        input_data = [read_data(m, read, input_write, platform=platform)
                      for read in input_reads]
        rh_data = [read_data(m, read, rh_write, platform=platform) for read in rh_reads]

        def state_address(bank, offset):
            """Address in the state memory of ``offset`` (``b * max_h + j``) in ``bank``."""
            return Mux(bank, max_b * max_h, 0) + offset

        # ---- run parameters ------------------------------------------------------------
        command = Signal.like(self.command.payload)
        inputs = command.input_size
        hidden = command.hidden_size
        # A pass's cycles: the run's input terms, then its recurrent terms, each
        # ceil(size / lane_width) cycles.
        terms = Signal(range(config.max_terms + 1))
        # One term a cycle pads nothing: no rounded counts and no masks to keep.
        if width == 1:
            input_cycles = inputs
        else:
            input_cycles = Signal(range(max_d + 1))
            last_input_cycle = Signal(range(max_d))
            # Which elements of a pass's last input cycle and last recurrent cycle are terms:
            # the rest are padding, whose elements are taken as zero.
            input_tail, hidden_tail = Signal(width), Signal(width)
        lengths = Array(Signal(range(config.max_steps + 1), name=f"length_{b}")
                        for b in range(max_b))
        parity = Array(Signal(name=f"parity_{b}") for b in range(max_b))
        started = Array(Signal(name=f"started_{b}") for b in range(max_b))
        refusal = Signal(Refusal)
        running = Signal()

        # ---- input buffer: two slots of one input vector -------------------------------
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
            self.x.ready.eq(running & inputs_left & ~slot_full.bit_select(write_slot, 1)),
            input_write.en.eq(self.x.valid & self.x.ready),
        ]
        free_slot = Signal()          # the front is done with its slot this cycle
        read_slot = Signal()
        vector_taken = Signal()       # the last word of a vector is taken this cycle
        last_vector = ((input_step == command.steps - 1) &
                       (input_sequence == command.batch - 1))
        m.d.comb += vector_taken.eq(self.x.valid & self.x.ready & (write_index == inputs - 1))
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
        with m.If(free_slot):
            m.d.comb += clear.eq(Mux(read_slot, 0b10, 0b01))
        m.d.sync += slot_full.eq((slot_full | fill) & ~clear)

        # ---- the front: jobs, passes, terms --------------------------------------------
        step = Signal(range(config.max_steps + 1))
        sequence = Signal(range(max_b + 1))
        sequence_row = Signal(range(max_b * max_h + 1))  # sequence * max_h
        gate = Signal(Gate)
        group_base = Signal(range(max_h + lanes + 1))    # g * lanes
        term = Signal(range(config.max_terms + 1))
        # The run's weight set starts at set_pass_base and set_bias_base: counted up from 0
        # one set per cycle after the command is taken, while the lengths arrive.
        sets_to_skip = Signal(range(config.weight_sets))
        set_pass_base = Signal(range(self._weight_depth + 1))
        set_bias_base = Signal(range(self._bias_depth + 1))
        with m.If(sets_to_skip != 0):
            m.d.sync += [sets_to_skip.eq(sets_to_skip - 1),
                         set_pass_base.eq(set_pass_base + config.weight_set_words // width),
                         set_bias_base.eq(set_bias_base + config.bias_set_words)]
        pass_base = Signal(range(self._weight_depth + 1))
        bias_base = Signal(range(self._bias_depth + 1))
        # What reaches every lane comes from one register per group of lanes
        # (:func:`.fanout.replicas`), each near its own lanes: the weight banks' address and
        # read enable, the accumulators' enables.
        m.submodules.lanes = lane_array = Lanes(config)
        fanout = len(lane_array.weight_address)
        # The weight banks' address, pass_base + term, kept in registers of its own (each
        # assignment to pass_base or term below has its twin here), so that no adder and no
        # multiplexer sits between them and the block RAMs. Between runs, the address of
        # the load word taken in the cycle before (see _load).
        weight_address = [Signal.like(lane_array.weight_address[k],
                                      name=f"weight_address_replica_{k}")
                          for k in range(fanout)]

        def set_weight_address(value):
            m.d.sync += [copy.eq(value) for copy in weight_address]

        job_read_bank = Signal()
        outstanding = Signal(range(max_b + 2))
        r_pending = Signal()
        # PyTorch's form: the element-wise stage reads r of unit u as the n item of u enters
        # it (E0) and writes it as the r item of u leaves the activation (EA, stage 5 + the
        # activation's latency). 2 H - 1 items pass between the two, each at least a cycle:
        # the rest of the r units, every z unit and the n units before u. From
        # H = r_order_hidden on, r of u is written at least a cycle before it is read, and
        # the n passes need not wait for r. The original form's n passes read r * h from the
        # lanes instead: they chase its units as they are written (rh_written_term), as a
        # chasing job does the state's.
        r_order_hidden = (LEAVE + 2) // 2
        r_wait = Signal()             # set with the command: n passes wait for all of r
        in_job = Signal()
        finals = Signal()             # issuing the final-state tokens
        final_sequence = Signal(range(max_b + 1))
        final_row = Signal(range(max_b * max_h + 1))     # final_sequence * max_h

        # The step's index in the sequences, counted beside the step rather than computed from
        # it: a subtraction fewer before the comparison with the lengths.
        time_index = Signal(range(config.max_steps + 1))
        sequence_active = time_index < lengths[sequence]
        last_group = group_base + lanes >= hidden
        final_term = Signal.like(terms)
        last_term = term == final_term

        # The issue stage says what it issues this cycle; M and A stages follow.
        issue = Signal()
        issue_token = Signal(Kind)
        issue_is_token = Signal()
        # The front moves unless a pass's sums wait for the holding register. A register, as
        # it enables every lane's registers and memories.
        front_advance = lane_array.advance
        issued = lane_array.term

        # Conditions for starting a job or a pass. A job may start while the job of its own
        # sequence one step earlier is still in the element-wise stage (``outstanding`` is then
        # the batch: that job is the oldest in flight, as jobs start round-robin over the
        # sequences and end in order). The new job is then "chasing" it: a term that reads
        # unit u of the state issues only once that job has written unit u, which it does in
        # increasing u. Its input terms issue at once, so with D at least the element-wise
        # stage's depth a batch of one never waits.
        job_ready = slot_full.bit_select(read_slot, 1) & (outstanding <= command.batch)
        n_ready = ~r_pending | ~r_wait
        chasing = Signal()
        # D + the units of the state the oldest job has written: the first term that waits.
        written_term = Signal(range(config.max_terms + 1))
        reads_rh = (gate == Gate.N) & ~command.linear_before_reset
        state_wait = chasing & ~reads_rh & (term >= written_term)
        # D + the units of r * h the job's r passes have written: the first n term that waits.
        rh_written_term = Signal(range(config.max_terms + 1))
        rh_wait = reads_rh & r_pending & (term >= rh_written_term)

        with m.If(running & ~finals):
            with m.If(~in_job):
                with m.If(job_ready):
                    m.d.comb += issue.eq(1)
                    with m.If(~sequence_active):
                        # A sequence past its length: one token, its input slot freed.
                        m.d.comb += [issue_is_token.eq(1), issue_token.eq(Kind.SKIP),
                                     free_slot.eq(front_advance)]
            with m.Else():
                m.d.comb += issue.eq(((term != 0) | (gate != Gate.N) | (group_base != 0) |
                                      n_ready) & ~state_wait & ~rh_wait)
        with m.Elif(running & finals):
            m.d.comb += [issue.eq(outstanding == 0), issue_is_token.eq(1),
                         issue_token.eq(Kind.FINAL)]

        issuing = issue & front_advance
        m.d.comb += issued.valid.eq(issue)

        # Counters of the front.
        job_started = Signal()
        m.d.comb += job_started.eq(issuing & ~finals & ~in_job)
        with m.If(issuing):
            with m.If(finals):
                m.d.sync += [final_sequence.eq(final_sequence + 1),
                             final_row.eq(final_row + max_h)]
                with m.If(final_sequence == command.batch - 1):
                    m.d.sync += [finals.eq(0), running.eq(0)]
            with m.Elif(~in_job & ~sequence_active):
                self._next_job(m, step, time_index, sequence, sequence_row, read_slot, command,
                               finals)
            with m.Else():
                with m.If(~in_job):
                    m.d.sync += [in_job.eq(1), job_read_bank.eq(parity[sequence])]
                with m.If(last_term):
                    m.d.sync += [term.eq(0), pass_base.eq(pass_base + terms),
                                 bias_base.eq(bias_base + 2)]
                    set_weight_address(pass_base + terms)
                    with m.If(last_group):
                        m.d.sync += group_base.eq(0)
                        with m.If(gate == Gate.N):
                            # Job done: its slot is free, its state flips banks.
                            m.d.comb += free_slot.eq(1)
                            m.d.sync += [in_job.eq(0), gate.eq(Gate.R),
                                         parity[sequence].eq(~parity[sequence]),
                                         started[sequence].eq(1),
                                         pass_base.eq(set_pass_base),
                                         bias_base.eq(set_bias_base)]
                            set_weight_address(set_pass_base)
                            self._next_job(m, step, time_index, sequence, sequence_row,
                                           read_slot, command, finals)
                        with m.Else():
                            m.d.sync += gate.eq(gate.as_value() + 1)
                    with m.Else():
                        m.d.sync += group_base.eq(group_base + lanes)
                with m.Else():
                    m.d.sync += term.eq(term + 1)
                    m.d.sync += [copy.eq(copy + 1) for copy in weight_address]
        # Jobs started and not yet through the element-wise stage. The n passes of a job wait
        # for its r: the original form reads r * h from the lanes, and the element-wise
        # stage reads r of an n unit early. r * h and r are stored by the time the last r
        # unit leaves the pipeline; z is read late enough that its order in the pipeline
        # alone guarantees it, and so is r in PyTorch's form when H is at least
        # r_order_hidden (see r_wait).
        job_done = Signal()
        m.d.sync += outstanding.eq(outstanding + job_started - job_done)
        with m.If(job_started & (outstanding == command.batch) & ~job_done):
            m.d.sync += chasing.eq(1)
        with m.Elif(job_done):
            m.d.sync += chasing.eq(0)
        # A recurrent cycle reads lane_width units: it counts as written with the last of them.
        cycle_written = Signal()
        with m.If(job_done):
            m.d.sync += written_term.eq(input_cycles)
        with m.Elif(cycle_written):
            m.d.sync += written_term.eq(written_term + 1)
        # r * h of the job's units, counted a cycle of lane_width units at a time as for the
        # state. The previous job's r units are all written before this job starts: its
        # n passes' last cycle waited for them.
        rh_cycle_written = Signal()
        with m.If(job_started):
            m.d.sync += rh_written_term.eq(input_cycles)
        with m.Elif(rh_cycle_written):
            m.d.sync += rh_written_term.eq(rh_written_term + 1)
        r_done = Signal()
        with m.If(job_started & sequence_active):
            m.d.sync += r_pending.eq(1)
        with m.Elif(r_done):
            m.d.sync += r_pending.eq(0)

        # Addresses of what the issued term needs: element k of the cycle's lane_width.
        unit = (term - input_cycles) << shift
        use_input = term < input_cycles
        use_rh = (gate == Gate.N) & ~command.linear_before_reset & ~use_input
        read_bank = Mux(in_job, job_read_bank, parity[sequence])
        for k in range(width):
            element = Cat(Const(k, shift), term)
            unit_k = unit if k == 0 else unit + k
            m.d.comb += [
                input_reads[k].addr.eq(Mux(read_slot, slot_words, 0) + element),
                input_reads[k].en.eq(front_advance),
                rh_reads[k].addr.eq(unit_k),
                rh_reads[k].en.eq(front_advance),
                state_vectors[k].addr.eq(state_address(read_bank, sequence_row + unit_k)),
                state_vectors[k].en.eq(front_advance),
            ]
        load_state = Signal()
        m.d.comb += [
            *(port.eq(copy) for port, copy in zip(lane_array.weight_address, weight_address)),
            lane_array.bias_address.eq(bias_base + (term != 0)),
            *(port.eq(word) for port, word in zip(lane_array.input_words, input_data)),
            *(port.eq(word) for port, word in zip(lane_array.rh_words, rh_data)),
            *(port.eq(word) for port, word in zip(lane_array.state_words, state_vector_data)),
        ]
        kind = Mux(issue_is_token, issue_token.as_value(), gate.as_value())
        m.d.comb += [
            issued.token.eq(issue_is_token),
            issued.kind.eq(kind),
            issued.first.eq(term == 0),
            issued.split.eq(term == input_cycles),
            issued.last.eq(last_term),
            issued.restart.eq((gate == Gate.N) & command.linear_before_reset),
            issued.use_input.eq(use_input),
            issued.use_rh.eq(use_rh),
            issued.h_valid.eq(started[sequence] | command.initial_state),
            issued.state_row.eq(Mux(finals, final_row, sequence_row)),
            issued.last_sequence.eq(final_sequence == command.batch - 1),
            issued.group_base.eq(group_base),
            issued.read_bank.eq(Mux(finals, parity[final_sequence], read_bank)),
            issued.last_group.eq(last_group),
        ]
        if width > 1:
            all_terms = (1 << width) - 1
            m.d.comb += issued.mask.eq(
                Mux(use_input, Mux(term == last_input_cycle, input_tail, all_terms),
                    Mux(last_term, hidden_tail, all_terms)))
        # ---- the element-wise stage ----------------------------------------------------
        m.submodules.elementwise = elementwise = ElementwiseStage(
            config, lut_multipliers=self._lut_multipliers)
        if self._shared_activation:
            wiring.connect(m, wiring.flipped(self.activation), elementwise.activation)
        else:
            m.submodules.activation = activation = Activation(
                formats, lut_multipliers=self._lut_multipliers)
            wiring.connect(m, activation, elementwise.activation)
        wiring.connect(m, elementwise.o, wiring.flipped(self.o))
        m.d.comb += elementwise.command.eq(command)
        wiring.connect(m, lane_array.sums, elementwise.sums)
        m.d.comb += [
            state_update.addr.eq(elementwise.state_read.addr),
            state_update.en.eq(elementwise.state_read.en),
            elementwise.state_read.data.eq(state_update_data),
            job_done.eq(elementwise.job_done),
            r_done.eq(elementwise.r_done),
            cycle_written.eq(elementwise.state_cycle_written),
            rh_cycle_written.eq(elementwise.rh_cycle_written),
        ]
        wiring.connect(m, rh_write, elementwise.rh_write)
        m.submodules.load = loader = LoadDecoder(config)
        wiring.connect(m, wiring.flipped(self.load), loader.load)
        wiring.connect(m, loader.writes, lane_array.load)
        m.d.comb += [loader.enable.eq(load_state), lane_array.command.eq(command)]
        with m.If(loader.refused):
            m.d.sync += self.load_error.eq(1)
        with m.If(loader.state.en):
            m.d.comb += [state_write.addr.eq(loader.state.addr),
                         state_write.data.eq(loader.state.data), state_write.en.eq(1)]
        with m.Else():
            m.d.comb += [state_write.addr.eq(elementwise.state_write.addr),
                         state_write.data.eq(elementwise.state_write.data),
                         state_write.en.eq(elementwise.state_write.en)]
        run_finished = elementwise.run_done

        # ---- commands, lengths, loads, status -----------------------------------------
        length_index = Signal(range(max_b + 1))
        reported_load_error = Signal()
        length_bad = Signal()
        # Registers, not sums: the command holds still through a run, and a run's first pass
        # comes at least two cycles after its command.
        def tail_mask(size):
            """Which of the lane_width elements of a last cycle over ``size`` terms are
            terms."""
            rest = size[:shift]
            return Cat((rest == 0) | (rest > k) for k in range(width))

        if width == 1:
            m.d.sync += terms.eq(command.input_size + command.hidden_size)
        else:
            rounded_inputs = lane_cycles(command.input_size, config)
            rounded_hidden = lane_cycles(command.hidden_size, config)
            m.d.sync += [
                terms.eq(rounded_inputs + rounded_hidden),
                input_cycles.eq(rounded_inputs),
                last_input_cycle.eq(rounded_inputs - 1),
                input_tail.eq(tail_mask(command.input_size)),
                hidden_tail.eq(tail_mask(command.hidden_size)),
            ]
        m.d.sync += final_term.eq(terms - 1)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.command.ready.eq(1), load_state.eq(1)]
                set_weight_address(self.load.payload.address[shift:])
                with m.If(self.command.valid):
                    payload = self.command.payload
                    m.d.sync += [command.eq(payload), self.load_error.eq(0),
                                 r_wait.eq(payload.linear_before_reset &
                                           (payload.hidden_size < r_order_hidden)),
                                 reported_load_error.eq(self.load_error),
                                 refusal.eq(Refusal.NONE), length_index.eq(0),
                                 length_bad.eq(0), sets_to_skip.eq(payload.weight_set),
                                 set_pass_base.eq(0), set_bias_base.eq(0)]
                    with m.If((payload.batch == 0) | (payload.batch > max_b)):
                        m.d.sync += refusal.eq(Refusal.BATCH)
                        m.next = "STATUS"
                    with m.Elif((payload.input_size == 0) | (payload.input_size > max_d)):
                        m.d.sync += refusal.eq(Refusal.INPUT_SIZE)
                        m.next = "STATUS"
                    with m.Elif((payload.hidden_size == 0) | (payload.hidden_size > max_h)):
                        m.d.sync += refusal.eq(Refusal.HIDDEN_SIZE)
                        m.next = "STATUS"
                    with m.Elif(payload.weight_set >= config.weight_sets):
                        m.d.sync += refusal.eq(Refusal.WEIGHT_SET)
                        m.next = "STATUS"
                    with m.Elif((payload.steps == 0) | (payload.steps > config.max_steps)):
                        m.d.sync += refusal.eq(Refusal.STEPS)
                        m.next = "STATUS"
                    with m.Else():
                        m.next = "LENGTHS"
            with m.State("LENGTHS"):
                m.d.comb += self.lengths.ready.eq(1)
                with m.If(self.lengths.valid):
                    value = self.lengths.payload
                    m.d.sync += [lengths[length_index].eq(value),
                                 length_index.eq(length_index + 1)]
                    with m.If((value == 0) | (value > command.steps)):
                        m.d.sync += length_bad.eq(1)
                    with m.If(length_index == command.batch - 1):
                        m.next = "START"
            with m.State("START"):
                m.d.sync += [
                    step.eq(0), time_index.eq(Mux(command.reverse, command.steps - 1, 0)),
                    sequence.eq(0), sequence_row.eq(0), gate.eq(Gate.R),
                    group_base.eq(0), term.eq(0), pass_base.eq(set_pass_base),
                    bias_base.eq(set_bias_base), in_job.eq(0), finals.eq(0),
                    final_sequence.eq(0), final_row.eq(0), r_pending.eq(0),
                    chasing.eq(0), written_term.eq(input_cycles),
                    slot_full.eq(0), write_slot.eq(0), write_index.eq(0), read_slot.eq(0),
                    input_step.eq(0), input_sequence.eq(0), inputs_left.eq(1),
                ]
                set_weight_address(set_pass_base)
                for b in range(max_b):
                    m.d.sync += [parity[b].eq(0), started[b].eq(0)]
                with m.If(length_bad):
                    m.d.sync += refusal.eq(Refusal.LENGTH)
                    m.next = "DRAIN"
                with m.Elif(sets_to_skip == 0):
                    m.d.sync += running.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(run_finished):
                    m.next = "STATUS"
            with m.State("DRAIN"):
                # A refused length: the request's inputs are consumed and dropped, counted by
                # the input buffer's counters as if they were stored.
                m.d.comb += self.x.ready.eq(1)
                with m.If(vector_taken & last_vector):
                    m.next = "STATUS"
            with m.State("STATUS"):
                m.d.comb += [
                    self.status.valid.eq(1),
                    self.status.payload.error.eq(refusal != Refusal.NONE),
                    self.status.payload.refusal.eq(refusal),
                    self.status.payload.load_error.eq(reported_load_error),
                ]
                with m.If(self.status.ready):
                    m.d.sync += running.eq(0)
                    m.next = "IDLE"
        return m

    def _next_job(self, m, step, time_index, sequence, sequence_row, read_slot, command,
                  finals):
        m.d.sync += read_slot.eq(~read_slot)
        with m.If(sequence == command.batch - 1):
            m.d.sync += [sequence.eq(0), sequence_row.eq(0), step.eq(step + 1),
                         time_index.eq(Mux(command.reverse, time_index - 1, time_index + 1))]
            with m.If(step == command.steps - 1):
                m.d.sync += finals.eq(1)
        with m.Else():
            m.d.sync += [sequence.eq(sequence + 1),
                         sequence_row.eq(sequence_row + self._config.max_hidden_size)]
