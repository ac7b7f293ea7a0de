"""SinglePortMemory: a memory in simulation, SPRAMs on an iCE40UP. BankedMemory: two-cycle
reads across its banks. read_data: in simulation, a word read as its address is written comes
out complemented."""

import random

import pytest
from amaranth.hdl import Fragment, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from amaranth_boards.icebreaker import ICEBreakerPlatform

from gatework.boards.synthesis import synthesize
from gatework.hdl.memory import (NO_RW_CHECK, BankedMemory, SinglePortMemory, read_data,
                                 uses_spram)


class _Checked(wiring.Component):
    """A memory with ``NO_RW_CHECK`` read through :func:`read_data`."""

    w_addr: In(3)
    w_data: In(16)
    w_en: In(1)
    r_addr: In(3)
    r_data: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = memory = Memory(shape=16, depth=8, init=[], attrs=NO_RW_CHECK)
        write, read = memory.write_port(), memory.read_port()
        self.port_data = read.data
        self.data = read_data(m, read, write, platform=platform)
        m.d.comb += [write.addr.eq(self.w_addr), write.data.eq(self.w_data),
                     write.en.eq(self.w_en), read.addr.eq(self.r_addr),
                     self.r_data.eq(self.data)]
        return m


async def write_words(ctx, dut, words):
    """Write ``words[i]`` at address ``i``, one a cycle, through ``dut``'s w_* ports."""
    for address, word in enumerate(words):
        ctx.set(dut.w_addr, address)
        ctx.set(dut.w_data, word)
        ctx.set(dut.w_en, 1)
        await ctx.tick()
    ctx.set(dut.w_en, 0)


def simulate(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_read_data_complements_a_word_read_as_it_is_written():
    dut = _Checked()
    seen = []

    async def bench(ctx):
        await write_words(ctx, dut, [0x1100 + address for address in range(8)])
        # Write 3 and read 3 in one cycle, then write 3 and read 2, then read 3 alone.
        for write_address, read_address, write in [(3, 3, 1), (3, 2, 1), (0, 3, 0)]:
            ctx.set(dut.w_addr, write_address)
            ctx.set(dut.w_data, 0xBEEF)
            ctx.set(dut.w_en, write)
            ctx.set(dut.r_addr, read_address)
            await ctx.tick()
            seen.append(ctx.get(dut.r_data))

    simulate(dut, bench)
    assert seen == [~0x1103 & 0xFFFF, 0x1102, 0xBEEF]


def test_read_data_on_a_chip_is_the_ports_own():
    dut = _Checked()
    Fragment.get(dut, ICEBreakerPlatform())
    assert dut.data is dut.port_data


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

    simulate(dut, bench)


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
        await write_words(ctx, dut, model)
        await ctx.tick()                  # the last write reaches its bank
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

    simulate(dut, bench)
    assert len(checks) > 300
    assert all(got == want for got, want in checks)


@pytest.mark.parametrize("register_writes", [True, False])
def test_a_banked_write_reaches_its_bank_a_cycle_later(register_writes):
    # Written in cycle c: a read issued in cycle c sees the old word (it collides with the
    # write without registered writes: complemented in simulation), one issued in c + 1
    # collides with a registered write and sees the new word otherwise, and from c + 2 on a
    # read sees the new word. A read issued in cycle k is on r_data after cycle k + 1.
    dut = BankedMemory(16, 32, bank_depth=16, register_writes=register_writes)
    seen = []

    async def bench(ctx):
        await write_words(ctx, dut, [0x100 + address for address in range(32)])
        ctx.set(dut.r_addr, 20)
        ctx.set(dut.r_en, 1)
        for _ in range(3):
            await ctx.tick()
        # Cycle c: the write.
        ctx.set(dut.w_addr, 20)
        ctx.set(dut.w_data, 0x7000)
        ctx.set(dut.w_en, 1)
        await ctx.tick()
        ctx.set(dut.w_en, 0)
        for _ in range(3):
            await ctx.tick()
            seen.append(ctx.get(dut.r_data))    # the reads issued in c, c + 1, c + 2

    simulate(dut, bench)
    print([hex(word) for word in seen])
    # A collided read: what the RAM gave (the old word), complemented.
    if register_writes:
        assert seen == [0x100 + 20, 0xFFFF & ~(0x100 + 20), 0x7000]
    else:
        assert seen == [0xFFFF & ~(0x100 + 20), 0x7000, 0x7000]
