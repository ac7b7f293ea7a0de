"""The GRU engine's job tracker: the jobs in flight, what they have written, what must wait."""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["JobTracker"]


class JobTracker(wiring.Component):
    """Count the jobs in flight and the units they have written, and say which terms wait.

    A job may start while the job of its own sequence one step earlier is still in the
    element-wise stage (the jobs in flight are then the batch: that job is the oldest in
    flight, as jobs start round-robin over the sequences and end in order). The new job is
    then "chasing" it: a term that reads unit ``u`` of the state issues only once that job has
    written unit ``u``, which it does in increasing ``u``. Its input terms issue at once, so
    with ``D`` at least the element-wise stage's depth a batch of one never waits.

    The ``n`` passes of a job wait for its ``r``: the original form reads ``r * h`` from the
    lanes, and the element-wise stage reads ``r`` of an ``n`` unit early. ``r * h`` and ``r``
    are stored by the time the last ``r`` unit leaves the pipeline; ``z`` is read late enough
    that its order in the pipeline alone guarantees it, and so is ``r`` in PyTorch's form when
    ``r_wait`` is low. The original form's ``n`` terms chase ``r * h`` as a chasing job does
    the state.

    Parameters
    ----------
    config : BuildConfig

    Members
    -------
    start : In(1)
        A run starts: no job chases, none waits for its ``r``.
    batch : In(range(config.max_batch + 1))
    input_cycles : In(range(config.max_input_size + 1))
        The cycles of a pass's input terms: the first recurrent term is this one.
    r_wait : In(1)
        A job's ``n`` passes wait for all of its ``r`` (PyTorch's form, small ``H``).
    job_started : In(1)
        A job, or a ``SKIP`` token, is issued this cycle; ``computes`` says which.
    computes : In(1)
    term : In(range(config.max_terms + 1))
        The term the scheduler would issue, of an ``n`` pass that reads ``r * h`` when
        ``reads_rh``.
    reads_rh : In(1)
    room : Out(1)
        A job may start: the jobs in flight are at most the batch.
    idle : Out(1)
        No job is in flight.
    n_ready : Out(1)
        The job's ``n`` passes may start.
    state_wait, rh_wait : Out(1)
        ``term`` waits for a unit of the state, or of ``r * h``, not yet written.
    job_done, r_done, state_cycle_written, rh_cycle_written : In(1)
        From the element-wise stage (see :class:`.gru_elementwise.ElementwiseStage`).
    """

    def __init__(self, config):
        self._config = config
        super().__init__({
            "start": In(1),
            "batch": In(range(config.max_batch + 1)),
            "input_cycles": In(range(config.max_input_size + 1)),
            "r_wait": In(1),
            "job_started": In(1),
            "computes": In(1),
            "term": In(range(config.max_terms + 1)),
            "reads_rh": In(1),
            "room": Out(1),
            "idle": Out(1),
            "n_ready": Out(1),
            "state_wait": Out(1),
            "rh_wait": Out(1),
            "job_done": In(1),
            "r_done": In(1),
            "state_cycle_written": In(1),
            "rh_cycle_written": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        config = self._config
        outstanding = Signal(range(config.max_batch + 2))
        r_pending = Signal()
        chasing = Signal()
        # D + the units of the state the oldest job has written: the first term that waits.
        written_term = Signal(range(config.max_terms + 1))
        # D + the units of r * h the job's r passes have written: the first n term that waits.
        rh_written_term = Signal(range(config.max_terms + 1))
        m.d.comb += [
            self.room.eq(outstanding <= self.batch),
            self.idle.eq(outstanding == 0),
            self.n_ready.eq(~r_pending | ~self.r_wait),
            self.state_wait.eq(chasing & ~self.reads_rh & (self.term >= written_term)),
            self.rh_wait.eq(self.reads_rh & r_pending & (self.term >= rh_written_term)),
        ]
        m.d.sync += outstanding.eq(outstanding + self.job_started - self.job_done)
        with m.If(self.job_started & (outstanding == self.batch) & ~self.job_done):
            m.d.sync += chasing.eq(1)
        with m.Elif(self.job_done):
            m.d.sync += chasing.eq(0)
        # A recurrent cycle reads lane_width units: it counts as written with the last of them.
        with m.If(self.job_done):
            m.d.sync += written_term.eq(self.input_cycles)
        with m.Elif(self.state_cycle_written):
            m.d.sync += written_term.eq(written_term + 1)
        # r * h of the job's units, counted a cycle of lane_width units at a time as for the
        # state. The previous job's r units are all written before this job starts: its
        # n passes' last cycle waited for them.
        with m.If(self.job_started):
            m.d.sync += rh_written_term.eq(self.input_cycles)
        with m.Elif(self.rh_cycle_written):
            m.d.sync += rh_written_term.eq(rh_written_term + 1)
        with m.If(self.job_started & self.computes):
            m.d.sync += r_pending.eq(1)
        with m.Elif(self.r_done):
            m.d.sync += r_pending.eq(0)
        with m.If(self.start):
            m.d.sync += [r_pending.eq(0), chasing.eq(0), written_term.eq(self.input_cycles)]
        return m
