"""The GRU engine's job tracker on its own: room for jobs, a chasing job's waits, r's."""

from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.gru_tracker import JobTracker


D = 3


def simulate(testbench):
    config = BuildConfig(lanes=2, max_input_size=4, max_hidden_size=4, max_batch=2,
                         max_steps=2, max_layers=1, bidirectional=False)
    dut = JobTracker(config)

    async def bench(ctx):
        ctx.set(dut.input_cycles, D)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await testbench(ctx, dut)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


async def pulse(ctx, *signals):
    for signal in signals:
        ctx.set(signal, 1)
    await ctx.tick()
    for signal in signals:
        ctx.set(signal, 0)


def waits(ctx, dut, term, reads_rh=False):
    ctx.set(dut.term, term)
    ctx.set(dut.reads_rh, reads_rh)
    return ctx.get(dut.rh_wait if reads_rh else dut.state_wait)


def test_a_job_of_a_sequence_in_flight_chases_its_state():
    async def testbench(ctx, dut):
        ctx.set(dut.batch, 1)
        assert ctx.get(dut.idle) and ctx.get(dut.room)
        ctx.set(dut.computes, 1)
        await pulse(ctx, dut.job_started)
        # One job in flight, a batch of one: the next job (its sequence's next step) may
        # start, and chases it.
        assert ctx.get(dut.room) and not ctx.get(dut.idle)
        assert not waits(ctx, dut, D + 1)
        await pulse(ctx, dut.job_started)
        assert not ctx.get(dut.room)
        assert [waits(ctx, dut, term) for term in range(D + 2)] == [0] * D + [1, 1]
        await pulse(ctx, dut.state_cycle_written)
        assert [waits(ctx, dut, term) for term in range(D + 2)] == [0] * (D + 1) + [1]
        # The older job done: nothing to chase.
        await pulse(ctx, dut.job_done)
        assert ctx.get(dut.room)
        assert not waits(ctx, dut, D + 1)
        await pulse(ctx, dut.job_done)
        assert ctx.get(dut.idle)

    simulate(testbench)


def test_n_passes_wait_for_r_and_chase_r_times_h():
    async def testbench(ctx, dut):
        ctx.set(dut.batch, 2)
        ctx.set(dut.r_wait, 1)
        # A SKIP token computes nothing: no r to wait for.
        await pulse(ctx, dut.job_started)
        assert ctx.get(dut.n_ready)
        ctx.set(dut.computes, 1)
        await pulse(ctx, dut.job_started)
        assert not ctx.get(dut.n_ready)
        # The original form's n terms read r * h unit by unit as it is written.
        assert [waits(ctx, dut, term, reads_rh=True) for term in range(D + 2)] == \
            [0] * D + [1, 1]
        await pulse(ctx, dut.rh_cycle_written)
        assert [waits(ctx, dut, term, reads_rh=True) for term in range(D + 2)] == \
            [0] * (D + 1) + [1]
        await pulse(ctx, dut.r_done)
        assert ctx.get(dut.n_ready)
        assert not waits(ctx, dut, D + 1, reads_rh=True)
        ctx.set(dut.r_wait, 0)
        await pulse(ctx, dut.job_started)
        assert ctx.get(dut.n_ready)

    simulate(testbench)
