"""The GRU engine's input buffer on its own: vectors in order through two slots."""

import random

import pytest
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.gru_inputs import InputBuffer
from gatework.sim.streams import put


def simulate(seed, *, lane_width, input_size, batch, steps, drain=False):
    print(f"seed {seed}")
    rng = random.Random(seed)
    config = BuildConfig(lanes=2, lane_width=lane_width, max_input_size=3, max_hidden_size=2,
                         max_batch=2, max_steps=3, max_layers=1, bidirectional=False)
    dut = InputBuffer(config)
    vectors = [[rng.randrange(-3000, 3000) for _ in range(input_size)]
               for _ in range(steps * batch)]
    seen = {"vectors": [], "last_taken": 0, "full_refusals": 0}

    async def control(ctx):
        ctx.set(dut.command.input_size, input_size)
        ctx.set(dut.command.batch, batch)
        ctx.set(dut.command.steps, steps)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.accept if not drain else dut.drain, 1)
        await put(ctx, dut.x, [word for vector in vectors for word in vector],
                  rng=random.Random(seed + 1), stall=0.3)

    async def reader(ctx):
        # Jobs read their vector a cycle of lane_width elements at a time, then free it; they
        # take their time, so that the writer finds both slots full.
        for _ in range(0 if drain else len(vectors)):
            while not ctx.get(dut.vector_ready):
                await ctx.tick()
            await ctx.tick().repeat(rng.randrange(0, 12))
            words = []
            for term in range(-(-input_size // lane_width)):
                ctx.set(dut.term, term)
                ctx.set(dut.read, 1)
                await ctx.tick()
                ctx.set(dut.read, 0)
                words += [ctx.get(word) for word in dut.words]
            seen["vectors"].append(words[:input_size])
            ctx.set(dut.free, 1)
            await ctx.tick()
            ctx.set(dut.free, 0)

    async def monitor(ctx):
        async for _, _, taken, valid, ready in ctx.tick().sample(dut.last_taken, dut.x.valid,
                                                                  dut.x.ready):
            seen["last_taken"] += taken
            seen["full_refusals"] += valid and not ready

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(control)
    sim.add_testbench(reader)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return vectors, seen


@pytest.mark.parametrize("lane_width", [1, 2])
@pytest.mark.parametrize("seed", range(3))
def test_vectors_are_read_in_order_and_wait_for_a_free_slot(seed, lane_width):
    vectors, seen = simulate(seed, lane_width=lane_width, input_size=3, batch=2, steps=3)
    assert seen["vectors"] == vectors
    assert seen["last_taken"] == 1
    # Six vectors, two slots, a slow reader: the writer waited for one.
    assert seen["full_refusals"] > 0


def test_a_drained_run_takes_every_word_at_once():
    vectors, seen = simulate(5, lane_width=1, input_size=2, batch=2, steps=3, drain=True)
    assert seen["last_taken"] == 1
    assert seen["full_refusals"] == 0
