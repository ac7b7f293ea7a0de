"""The GRU engine's scheduler: which job, pass and term the lanes take next."""

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .gru_layouts import LANES_PER_COPY, Gate, Kind, run_layout, term_layout
from .gru_tracker import JobTracker


__all__ = ["JobScheduler"]


class JobScheduler(wiring.Component):
    """Issue a run's jobs, pass by pass and term by term, as their dependencies allow.

    A job is one sequence at one step: for each gate ``r``, ``z``, ``n`` in turn, one pass
    per group of ``lanes`` units, each of ``terms`` cycles. Jobs go round-robin over the
    sequences, step after step; a sequence past its length gets a ``SKIP`` token instead,
    and after the last step every sequence a ``FINAL`` token. A job waits for its input
    vector, for the state of its sequence one step earlier (unit by unit, chasing the job that
    writes it) and, for its ``n`` passes, for its own ``r``: a
    :class:`~.gru_tracker.JobTracker` inside keeps count.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    run : In(run_layout(config))
        The run's parameters, steady from ``start`` on.
    lengths : In(range(config.max_steps + 1)).array(config.max_batch)
        The run's sequence lengths.
    start : In(1)
        Set up the run: its first job next, every state in bank 0 and not yet written.
    running : In(1)
        Issue the run's jobs.
    last_issued : Out(1)
        The run's last token is issued this cycle.
    idle : In(1)
        Between runs: the weight banks' address follows ``load_address``.
    load_address : In(range(...))
        The weight bank word of the load word taken this cycle.
    vector_ready : In(1)
        The input buffer's slot being read holds the next job's vector.
    free_slot : Out(1)
        The job reading the input slot is done with it.
    term : Out(range(config.max_terms + 1))
        The cycle of its pass that the term issued this cycle is (for the input buffer).
    issued : Out(term_layout(config))
        The term issued this cycle (``valid`` low: none), taken when ``advance`` is high.
    advance : In(1)
        The lanes take the term, and the memories read its vector's elements.
    weight_address : Out(range(...)).array(copies)
        The weight banks' address, one copy per eight lanes (:mod:`.fanout`).
    bias_address : Out(range(...))
        The bias banks' address of the term issued this cycle.
    rh_address, state_address : Out(unsigned(...)).array(lane_width)
        The addresses of the issued term's elements in the ``r * h`` and state memories.
    job_done, r_done, state_cycle_written, rh_cycle_written : In(1)
        From the element-wise stage: what of the jobs in flight is written.

    Throughput: a term a cycle while dependencies are met (see the engine's cycles).
    """

    def __init__(self, config):
        self._config = config
        max_b, max_h, width = config.max_batch, config.max_hidden_size, config.lane_width
        bank_depth = max(config.weight_sets * config.weight_set_words // width, 2)
        super().__init__({
            "run": In(run_layout(config)),
            "lengths": In(range(config.max_steps + 1)).array(max_b),
            "start": In(1),
            "running": In(1),
            "last_issued": Out(1),
            "idle": In(1),
            "load_address": In(range(bank_depth)),
            "vector_ready": In(1),
            "free_slot": Out(1),
            "term": Out(range(config.max_terms + 1)),
            "issued": Out(term_layout(config)),
            "advance": In(1),
            "weight_address": Out(range(bank_depth)).array(-(-config.lanes // LANES_PER_COPY)),
            "bias_address": Out(range(config.weight_sets * config.bias_set_words + 1)),
            "rh_address": Out(unsigned(ceil_log2(max_h))).array(width),
            "state_address": Out(unsigned(ceil_log2(2 * max_b * max_h))).array(width),
            "job_done": In(1),
            "r_done": In(1),
            "state_cycle_written": In(1),
            "rh_cycle_written": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        lanes = config.lanes
        max_b, max_h = config.max_batch, config.max_hidden_size
        width, shift = config.lane_width, config.lane_width_log2
        run, command = self.run, self.run.command
        # One term a cycle pads nothing: no rounded counts and no masks to keep.
        input_cycles = command.input_size if width == 1 else run.input_cycles
        front_advance, issued, term = self.advance, self.issued, self.term
        lengths = Array(self.lengths)
        parity = Array(Signal(name=f"parity_{b}") for b in range(max_b))
        started = Array(Signal(name=f"started_{b}") for b in range(max_b))
        step = Signal(range(config.max_steps + 1))
        sequence = Signal(range(max_b + 1))
        sequence_row = Signal(range(max_b * max_h + 1))  # sequence * max_h
        gate = Signal(Gate)
        group_base = Signal(range(max_h + lanes + 1))    # g * lanes
        pass_base = Signal.like(run.pass_base)
        bias_base = Signal.like(run.bias_base)
        # The weight banks' address, pass_base + term, kept in registers of its own (each
        # assignment to pass_base or term below has its twin here), so that no adder and no
        # multiplexer sits between them and the block RAMs. Between runs, the address of
        # the load word taken in the cycle before (see .gru_load). Each is a copy near its
        # own group of lanes (:func:`.fanout.replicas`).
        weight_address = [Signal.like(port, name=f"weight_address_replica_{k}")
                          for k, port in enumerate(self.weight_address)]

        def set_weight_address(value):
            m.d.sync += [copy.eq(value) for copy in weight_address]

        job_read_bank = Signal()
        in_job = Signal()
        finals = Signal()             # issuing the final-state tokens
        final_sequence = Signal(range(max_b + 1))
        final_row = Signal(range(max_b * max_h + 1))     # final_sequence * max_h

        # The step's index in the sequences, counted beside the step rather than computed from
        # it: a subtraction fewer before the comparison with the lengths.
        time_index = Signal(range(config.max_steps + 1))
        sequence_active = time_index < lengths[sequence]
        last_group = group_base + lanes >= command.hidden_size
        last_term = term == run.final_term

        # The issue stage says what it issues this cycle; the lanes' stages follow.
        issue = Signal()
        issue_token = Signal(Kind)
        issue_is_token = Signal()

        # Conditions for starting a job or a pass: the jobs in flight and what they have
        # written (see .gru_tracker).
        m.submodules.tracker = tracker = JobTracker(config)
        job_ready = self.vector_ready & tracker.room

        with m.If(self.running & ~finals):
            with m.If(~in_job):
                with m.If(job_ready):
                    m.d.comb += issue.eq(1)
                    with m.If(~sequence_active):
                        # A sequence past its length: one token, its input slot freed.
                        m.d.comb += [issue_is_token.eq(1), issue_token.eq(Kind.SKIP),
                                     self.free_slot.eq(front_advance)]
            with m.Else():
                m.d.comb += issue.eq(((term != 0) | (gate != Gate.N) | (group_base != 0) |
                                      tracker.n_ready) & ~tracker.state_wait & ~tracker.rh_wait)
        with m.Elif(self.running & finals):
            m.d.comb += [issue.eq(tracker.idle), issue_is_token.eq(1),
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
                    m.d.comb += self.last_issued.eq(1)
                    m.d.sync += finals.eq(0)
            with m.Elif(in_job | sequence_active):
                with m.If(~in_job):
                    m.d.sync += [in_job.eq(1), job_read_bank.eq(parity[sequence])]
                with m.If(last_term):
                    m.d.sync += [term.eq(0), pass_base.eq(pass_base + run.terms),
                                 bias_base.eq(bias_base + 2)]
                    set_weight_address(pass_base + run.terms)
                    with m.If(last_group):
                        m.d.sync += group_base.eq(0)
                        with m.If(gate == Gate.N):
                            # Job done: its slot is free, its state flips banks.
                            m.d.comb += self.free_slot.eq(1)
                            m.d.sync += [in_job.eq(0), gate.eq(Gate.R),
                                         parity[sequence].eq(~parity[sequence]),
                                         started[sequence].eq(1),
                                         pass_base.eq(run.pass_base),
                                         bias_base.eq(run.bias_base)]
                            set_weight_address(run.pass_base)
                        with m.Else():
                            m.d.sync += gate.eq(gate.as_value() + 1)
                    with m.Else():
                        m.d.sync += group_base.eq(group_base + lanes)
                with m.Else():
                    m.d.sync += term.eq(term + 1)
                    m.d.sync += [copy.eq(copy + 1) for copy in weight_address]
        # A job done or a sequence skipped: the next sequence, or the next step.
        with m.If(self.free_slot):
            with m.If(sequence == command.batch - 1):
                m.d.sync += [sequence.eq(0), sequence_row.eq(0), step.eq(step + 1),
                             time_index.eq(Mux(command.reverse, time_index - 1,
                                               time_index + 1))]
                with m.If(step == command.steps - 1):
                    m.d.sync += finals.eq(1)
            with m.Else():
                m.d.sync += [sequence.eq(sequence + 1), sequence_row.eq(sequence_row + max_h)]
        m.d.comb += [
            tracker.start.eq(self.start),
            tracker.batch.eq(command.batch),
            tracker.input_cycles.eq(input_cycles),
            tracker.r_wait.eq(run.r_wait),
            tracker.job_started.eq(job_started),
            tracker.computes.eq(sequence_active),
            tracker.term.eq(term),
            tracker.reads_rh.eq((gate == Gate.N) & ~command.linear_before_reset),
            tracker.job_done.eq(self.job_done),
            tracker.r_done.eq(self.r_done),
            tracker.state_cycle_written.eq(self.state_cycle_written),
            tracker.rh_cycle_written.eq(self.rh_cycle_written),
        ]

        # Addresses of what the issued term needs: element k of the cycle's lane_width.
        unit = (term - input_cycles) << shift
        use_input = term < input_cycles
        use_rh = (gate == Gate.N) & ~command.linear_before_reset & ~use_input
        read_bank = Mux(in_job, job_read_bank, parity[sequence])
        for k in range(width):
            unit_k = unit if k == 0 else unit + k
            m.d.comb += [
                self.rh_address[k].eq(unit_k),
                self.state_address[k].eq(Mux(read_bank, max_b * max_h, 0) +
                                         (sequence_row + unit_k)),
            ]
        m.d.comb += [
            *(port.eq(copy) for port, copy in zip(self.weight_address, weight_address)),
            self.bias_address.eq(bias_base + (term != 0)),
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
                Mux(use_input, Mux(term == run.last_input_cycle, run.input_tail, all_terms),
                    Mux(last_term, run.hidden_tail, all_terms)))

        with m.If(self.idle):
            set_weight_address(self.load_address)
        with m.If(self.start):
            m.d.sync += [
                step.eq(0), time_index.eq(Mux(command.reverse, command.steps - 1, 0)),
                sequence.eq(0), sequence_row.eq(0), gate.eq(Gate.R),
                group_base.eq(0), term.eq(0), pass_base.eq(run.pass_base),
                bias_base.eq(run.bias_base), in_job.eq(0), finals.eq(0),
                final_sequence.eq(0), final_row.eq(0),
            ]
            set_weight_address(run.pass_base)
            for b in range(max_b):
                m.d.sync += [parity[b].eq(0), started[b].eq(0)]
        return m
