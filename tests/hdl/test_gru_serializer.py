"""The GRU engine's holding registers on their own: a pass's sums or a token, unit by unit."""

import random

import pytest
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.gru_layouts import Kind
from gatework.hdl.gru_serializer import SumSerializer
from gatework.sim.streams import get


CONFIG = BuildConfig(lanes=3, max_input_size=2, max_hidden_size=5, max_batch=2, max_steps=2,
                     max_layers=1, bidirectional=False)


def hand_over(seed, term, emit_steps=1, stall=0.5):
    """Hand ``term`` over with random sums in every lane; return the sums' units as they
    leave and whether the registers were free again after the last."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = SumSerializer(CONFIG)
    sums = [(rng.randrange(-1 << 30, 1 << 30), rng.randrange(-1 << 30, 1 << 30))
            for _ in range(CONFIG.lanes)]
    result = {}

    async def testbench(ctx):
        ctx.set(dut.command.hidden_size, 5)
        ctx.set(dut.command.emit_steps, emit_steps)
        ctx.set(dut.term, {"valid": 1, "token": term["kind"] in (Kind.SKIP, Kind.FINAL),
                           "last": 1, "state_row": 5, "read_bank": 1, "h_valid": 1,
                           "last_sequence": 1, **term})
        for lane, (first, second) in enumerate(sums):
            ctx.set(dut.first[lane], first)
            ctx.set(dut.second[lane], second)
            ctx.set(dut.load[lane], 1)
        ctx.set(dut.take, 1)
        await ctx.tick()
        for lane in range(CONFIG.lanes):
            ctx.set(dut.load[lane], 0)
        ctx.set(dut.take, 0)
        # The inputs change: what was handed over is held.
        for lane in range(CONFIG.lanes):
            ctx.set(dut.first[lane], 0)
        units = []
        while True:
            (unit,), _ = await get(ctx, dut.sums, 1, rng=rng, stall=stall)
            units.append(unit)
            if unit["last_unit"]:
                break
        result["units"] = units
        result["busy"] = ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return sums, result


@pytest.mark.parametrize("seed", range(3))
def test_a_last_group_hands_on_the_units_it_holds(seed):
    # Group base 3 of five units on three lanes: units 3 and 4, from lanes 0 and 1.
    sums, result = hand_over(seed, {"kind": Kind.Z, "group_base": 3, "last_group": 1})
    assert [(unit["gi"], unit["hn"]) for unit in result["units"]] == sums[:2]
    assert [unit["unit"] for unit in result["units"]] == [3, 4]
    assert [unit["state_offset"] for unit in result["units"]] == [8, 9]
    assert [unit["last_unit"] for unit in result["units"]] == [0, 1]
    assert all(unit["kind"] == Kind.Z for unit in result["units"])
    assert not result["busy"]


def test_a_full_group_hands_on_a_unit_per_lane():
    sums, result = hand_over(7, {"kind": Kind.R, "group_base": 0, "last_group": 0})
    assert [(unit["gi"], unit["hn"]) for unit in result["units"]] == sums
    assert [unit["last_group"] for unit in result["units"]] == [0, 0, 0]


@pytest.mark.parametrize("kind, emit_steps, units", [
    (Kind.FINAL, 0, 5), (Kind.SKIP, 1, 5), (Kind.SKIP, 0, 1)])
def test_a_token_becomes_its_units(kind, emit_steps, units):
    _, result = hand_over(3, {"kind": kind, "group_base": 0, "last_group": 0},
                          emit_steps=emit_steps)
    assert [unit["unit"] for unit in result["units"]] == list(range(units))
    # A token's units end its job.
    assert all(unit["last_group"] for unit in result["units"])
