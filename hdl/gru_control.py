"""The GRU engine's run control: commands, lengths, refusals and status."""

from amaranth.hdl import Array, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .gru_layouts import LEAVE, Refusal, command_layout, lane_cycles, run_layout, status_layout


__all__ = ["RunControl"]


class RunControl(wiring.Component):
    """Take a run command and its lengths, check them, run it, and report its status.

    A command beyond the build's sizes is refused at once; one with a length out of range
    once its lengths are in, its inputs then drained. Between runs the engine takes load
    words (``idle``); a bad one is remembered for the next status.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    command : In(stream.Signature(command_layout(config)))
    lengths : In(stream.Signature(range(config.max_steps + 1)))
    status : Out(stream.Signature(status_layout()))
        The engine's ports of these names (see :class:`~.gru.GRUEngine`).
    load_error : Out(1)
        A load word was refused since the last command.
    load_refused : In(1)
        A load word is refused this cycle.
    run : Out(run_layout(config))
        The run's command and the counts derived from it, steady from ``start`` on.
    sequence_lengths : Out(range(config.max_steps + 1)).array(config.max_batch)
    idle : Out(1)
        Between runs: load words are taken.
    start : Out(1)
        The run's state is set up (a cycle or more, while its weight set is found).
    running : Out(1)
        The run's jobs are issued: set as ``start`` ends, cleared by ``issued``.
    issued : In(1)
        The run's last job is issued.
    drain : Out(1)
        A refused run's inputs are taken and dropped.
    drained : In(1)
        The run's last input word is taken.
    finished : In(1)
        The run's last output word leaves.

    Latency: a run's first job may start two cycles after its last length; a command
    refused for its sizes has its status in the next cycle.
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "command": In(stream.Signature(command_layout(config))),
            "lengths": In(stream.Signature(range(config.max_steps + 1))),
            "status": Out(stream.Signature(status_layout())),
            "load_error": Out(1),
            "load_refused": In(1),
            "run": Out(run_layout(config)),
            "sequence_lengths": Out(range(config.max_steps + 1)).array(config.max_batch),
            "idle": Out(1),
            "start": Out(1),
            "running": Out(1),
            "issued": In(1),
            "drain": Out(1),
            "drained": In(1),
            "finished": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        max_b, max_h, max_d = config.max_batch, config.max_hidden_size, config.max_input_size
        width, shift = config.lane_width, config.lane_width_log2
        run = self.run
        command = run.command
        lengths = Array(self.sequence_lengths)
        refusal = Signal(Refusal)
        length_index = Signal(range(max_b + 1))
        reported_load_error = Signal()
        length_bad = Signal()
        # The run's weight set starts at pass_base and bias_base: counted up from 0 one set
        # per cycle after the command is taken, while the lengths arrive.
        sets_to_skip = Signal(range(config.weight_sets))
        with m.If(sets_to_skip != 0):
            m.d.sync += [sets_to_skip.eq(sets_to_skip - 1),
                         run.pass_base.eq(run.pass_base + config.weight_set_words // width),
                         run.bias_base.eq(run.bias_base + config.bias_set_words)]
        # PyTorch's form: the element-wise stage reads r of unit u as the n item of u enters
        # it (E0) and writes it as the r item of u leaves the activation (EA, stage 5 + the
        # activation's latency). 2 H - 1 items pass between the two, each at least a cycle:
        # the rest of the r units, every z unit and the n units before u. From
        # H = r_order_hidden on, r of u is written at least a cycle before it is read, and
        # the n passes need not wait for r. The original form's n passes read r * h from the
        # lanes instead: they chase its units as they are written, as a chasing job does the
        # state's.
        r_order_hidden = (LEAVE + 2) // 2

        # Registers, not sums: the command holds still through a run, and a run's first pass
        # comes at least two cycles after its command.
        def tail_mask(size):
            """Which of the lane_width elements of a last cycle over ``size`` terms are
            terms."""
            rest = size[:shift]
            return Cat((rest == 0) | (rest > k) for k in range(width))

        if width == 1:
            m.d.sync += run.terms.eq(command.input_size + command.hidden_size)
        else:
            rounded_inputs = lane_cycles(command.input_size, config)
            rounded_hidden = lane_cycles(command.hidden_size, config)
            m.d.sync += [
                run.terms.eq(rounded_inputs + rounded_hidden),
                run.input_cycles.eq(rounded_inputs),
                run.last_input_cycle.eq(rounded_inputs - 1),
                run.input_tail.eq(tail_mask(command.input_size)),
                run.hidden_tail.eq(tail_mask(command.hidden_size)),
            ]
        m.d.sync += run.final_term.eq(run.terms - 1)
        with m.If(self.load_refused):
            m.d.sync += self.load_error.eq(1)
        with m.If(self.issued):
            m.d.sync += self.running.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [self.command.ready.eq(1), self.idle.eq(1)]
                with m.If(self.command.valid):
                    payload = self.command.payload
                    m.d.sync += [command.eq(payload), self.load_error.eq(0),
                                 run.r_wait.eq(payload.linear_before_reset &
                                               (payload.hidden_size < r_order_hidden)),
                                 reported_load_error.eq(self.load_error),
                                 refusal.eq(Refusal.NONE), length_index.eq(0),
                                 length_bad.eq(0), sets_to_skip.eq(payload.weight_set),
                                 run.pass_base.eq(0), run.bias_base.eq(0)]
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
                m.d.comb += self.start.eq(1)
                with m.If(length_bad):
                    m.d.sync += refusal.eq(Refusal.LENGTH)
                    m.next = "DRAIN"
                with m.Elif(sets_to_skip == 0):
                    m.d.sync += self.running.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(self.finished):
                    m.next = "STATUS"
            with m.State("DRAIN"):
                # A refused length: the request's inputs are consumed and dropped, counted by
                # the input buffer's counters as if they were stored.
                m.d.comb += self.drain.eq(1)
                with m.If(self.drained):
                    m.next = "STATUS"
            with m.State("STATUS"):
                m.d.comb += [
                    self.status.valid.eq(1),
                    self.status.payload.error.eq(refusal != Refusal.NONE),
                    self.status.payload.refusal.eq(refusal),
                    self.status.payload.load_error.eq(reported_load_error),
                ]
                with m.If(self.status.ready):
                    m.d.sync += self.running.eq(0)
                    m.next = "IDLE"
        return m
