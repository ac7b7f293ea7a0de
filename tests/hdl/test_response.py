"""ResponseWriter: words out low byte first and INFO's ROM, counted, under backpressure."""

import struct

from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.protocol import info_payload
from gatework.hdl.response import ResponseWriter
from gatework.sim.streams import get, put


def test_words_leave_low_byte_first_then_info_from_its_rom(rng):
    info = info_payload(BuildConfig(), max_payload=512)
    dut = ResponseWriter(info)
    words = [int(word) for word in rng.integers(0, 0x10000, 40)]
    received = []

    async def words_in(ctx):
        await put(ctx, dut.words, words, rng=rng, stall=0.3)

    async def bytes_out(ctx):
        ctx.set(dut.begin, 1)
        await ctx.tick()
        ctx.set(dut.begin, 0)
        ctx.set(dut.send, 1)
        payloads, _ = await get(ctx, dut.o, 2 * len(words), rng=rng, stall=0.3)
        received.extend(payloads)
        assert ctx.get(dut.sent) == 2 * len(words)
        ctx.set(dut.send, 0)
        # Nothing leaves unless asked.
        assert not ctx.get(dut.o.valid)
        ctx.set(dut.begin, 1)
        await ctx.tick()
        ctx.set(dut.begin, 0)
        ctx.set(dut.info, 1)
        info_bytes = []
        while ctx.get(dut.sent) < len(info):
            ctx.set(dut.o.ready, rng.random() < 0.7)
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                info_bytes.append(ctx.get(dut.o.payload))
            await ctx.tick()
        assert bytes(info_bytes) == info

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(words_in)
    sim.add_testbench(bytes_out)
    sim.run()
    assert bytes(received) == struct.pack(f"<{len(words)}H", *words)
