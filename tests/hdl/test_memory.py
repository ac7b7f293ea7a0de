"""SinglePortMemory: a memory in simulation, SPRAMs on an iCE40UP. BankedMemory: two-cycle
reads across its banks."""

import random

from amaranth.sim import Simulator
from amaranth_boards.icebreaker import ICEBreakerPlatform

from gatework.boards.synthesis import synthesize
from gatework.hdl.memory import BankedMemory, SinglePortMemory, uses_spram


def test_reads_what_was_written(seed):
    rng = random.Random(seed)
    dut = SinglePortMemory(16, 40)
    model = {}
    checks = []

    async def bench(ctx):
        held = 0
        for _ in range(400):
            address = rng.randrange(40)
            action = rng.choice(["write", "read", "idle"])
            value = rng.randrange(1 << 16)
            ctx.set(dut.addr, address)
            ctx.set(dut.write, action == "write")
            ctx.set(dut.read, action == "read")
            ctx.set(dut.w_data, value)
            await ctx.tick()
            if action == "write":
                model[address] = value
            elif action == "read":
                held = model.get(address, 0)
            # A read's word arrives after the clock edge and stays until the next read.
            checks.append((ctx.get(dut.r_data), held))
        assert len(model) > 10
        assert all(got == want for got, want in checks)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_spram_on_icebreaker_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert uses_spram(ICEBreakerPlatform()) and not uses_spram(None)
    cells = synthesize(SinglePortMemory(16, 20000), "ice40", platform=ICEBreakerPlatform())
    print(cells)
    assert cells.get("SB_SPRAM256KA") == 2
    assert cells.get("SB_RAM40_4K", 0) == 0


def test_banked_reads_arrive_after_the_next_enabled_cycle(seed):
    # Three banks of 16 (the last partly used); reads move only with r_en.
    rng = random.Random(seed)
    depth = 40
    dut = BankedMemory(16, depth, bank_depth=16)
    model = [rng.randrange(1 << 16) for _ in range(depth)]
    checks = []

    async def bench(ctx):
        for address, value in enumerate(model):
            ctx.set(dut.w_addr, address)
            ctx.set(dut.w_data, value)
            ctx.set(dut.w_en, 1)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        in_flight = [None, None]          # the RAMs' outputs, then the registers'
        for _ in range(400):
            address, enabled = rng.randrange(depth), rng.random() < 0.6
            ctx.set(dut.r_addr, address)
            ctx.set(dut.r_en, enabled)
            await ctx.tick()
            if enabled:
                in_flight = [model[address], in_flight[0]]
            if in_flight[1] is not None:
                checks.append((ctx.get(dut.r_data), in_flight[1]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(checks) > 300
    assert all(got == want for got, want in checks)
