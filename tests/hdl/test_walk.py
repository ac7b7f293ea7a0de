"""AddressWalk: the positions and addresses of nested, ragged and backward walks."""

import pytest
from amaranth.hdl import Array, Module, Signal
from amaranth.sim import Simulator

from gatework.hdl.walk import AddressWalk


ADDRESS_BITS = 12


def expected_walk(base, outer_limit, middle_limits, inner_limit, strides):
    """Every position of the walk with its address, as nested loops compute it."""
    positions = []
    for outer in range(outer_limit):
        for middle in range(middle_limits[outer]):
            for inner in range(inner_limit):
                address = base + outer * strides[0] + middle * strides[1] + inner
                positions.append((outer, middle, inner, address % (1 << ADDRESS_BITS)))
    return positions


def run_walks(walks, registered, rng):
    dut = AddressWalk(range(64), ADDRESS_BITS, registered_address=registered)
    m = Module()
    m.submodules.walk = dut
    # A ragged walk: the middle limit read from a table at the outer counter.
    table = Array(Signal(8, name=f"middle_limit_{index}") for index in range(8))
    outer_limit, inner_limit = Signal(8), Signal(8)
    m.d.comb += dut.last_of(outer_limit, table[dut.outer], inner_limit)
    seen = []

    async def testbench(ctx):
        for base, outer, middle_limits, inner, strides in walks:
            for index, limit in enumerate(middle_limits):
                ctx.set(table[index], limit)
            ctx.set(outer_limit, outer)
            ctx.set(inner_limit, inner)
            ctx.set(dut.strides.outer, strides[0] % (1 << ADDRESS_BITS))
            ctx.set(dut.strides.middle, strides[1] % (1 << ADDRESS_BITS))
            ctx.set(dut.base, base)
            ctx.set(dut.start, 1)
            ctx.set(dut.start_done, 0)
            await ctx.tick()
            ctx.set(dut.start, 0)
            positions = []
            for _ in range(1000):
                if ctx.get(dut.done):
                    break
                stall = rng.random() < 0.3
                ctx.set(dut.step, 0 if stall else 1)
                if not stall:
                    positions.append((ctx.get(dut.outer), ctx.get(dut.middle),
                                      ctx.get(dut.inner), ctx.get(dut.address)))
                await ctx.tick()
            ctx.set(dut.step, 0)
            seen.append(positions)
        # A walk started done does not move.
        ctx.set(dut.start, 1)
        ctx.set(dut.start_done, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.step, 1)
        await ctx.tick()
        assert ctx.get(dut.done) and ctx.get(dut.inner) == 0 and ctx.get(dut.address) == base

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return seen


@pytest.mark.parametrize("registered", [False, True])
def test_walks_visit_every_position_at_its_address(registered, rng):
    walks = []
    for _ in range(12):
        outer_limit = int(rng.integers(1, 5))
        middle_limits = [int(rng.integers(1, 5)) for _ in range(outer_limit)]
        inner_limit = int(rng.integers(1, 5))
        base = int(rng.integers(0, 1 << ADDRESS_BITS))
        # Time-major layouts: forward, and backward by a whole step (a reverse run).
        strides = (int(rng.integers(-64, 64)), int(rng.integers(0, 64)))
        walks.append((base, outer_limit, middle_limits, inner_limit, strides))
    seen = run_walks(walks, registered, rng)
    for walk, positions in zip(walks, seen):
        assert positions == expected_walk(*walk), walk
