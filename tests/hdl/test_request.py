"""RequestReader: a payload's header read by name, its words, and the bytes left, with stalls."""

import struct

import pytest
from amaranth.sim import Simulator

from gatework.golden.protocol import GLU_HEADER, LOAD_HEADER, RUN_HEADER
from gatework.hdl.request import RequestReader


@pytest.mark.parametrize("header", [GLU_HEADER, LOAD_HEADER, RUN_HEADER], ids=lambda h: h.name)
def test_a_header_then_words_then_the_rest(header, rng):
    dut = RequestReader(max_payload=64)
    words = [int(word) for word in rng.integers(-0x8000, 0x8000, int(rng.integers(1, 8)))]
    extra = int(rng.integers(0, 4))
    values = {field.name: int(rng.integers(0, header.maximum(field.name) + 1))
              for field in header.fields}
    payload = (header.encode(**values) + struct.pack(f"<{len(words)}h", *words) +
               bytes(rng.integers(0, 256, extra).tolist()))
    view = dut.header(header)
    seen_words = []

    async def testbench(ctx):
        ctx.set(dut.begin, 1)
        ctx.set(dut.length, len(payload))
        await ctx.tick()
        ctx.set(dut.begin, 0)
        assert ctx.get(dut.remaining) == len(payload) and not ctx.get(dut.have_low)
        index = 0
        while index < len(payload):
            in_header = index < header.size
            ctx.set(dut.to_fields, in_header)
            ctx.set(dut.take, rng.random() < 0.7)
            ctx.set(dut.payload.valid, rng.random() < 0.7)
            ctx.set(dut.payload.payload.data, payload[index])
            taken = ctx.get(dut.taken)
            assert taken == (ctx.get(dut.payload.valid) and ctx.get(dut.payload.ready))
            if taken and ctx.get(dut.word_done):
                seen_words.append(ctx.get(dut.word))
            await ctx.tick()
            if taken:
                index += 1
                assert ctx.get(dut.remaining) == len(payload) - index
                if in_header:
                    assert ctx.get(dut.field) == index
        ctx.set(dut.payload.valid, 0)
        for field in header.fields:
            value = ctx.get(getattr(view, field.name))
            if field.flags is not None:
                value = ctx.get(view.as_value()[8 * header.offset(field.name):][:8])
            assert value == values[field.name], field.name
        # The extra bytes pair up as words too: whole ones count, a lone one stays held.
        assert ctx.get(dut.have_low) == extra % 2

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    trailing = len(seen_words) - len(words)
    assert seen_words[:len(words)] == words and trailing == extra // 2
