"""The GRU engine's load decoder on its own: each word's write, a cycle after it is taken."""

import random

import pytest
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.gru_layouts import LoadRegion
from gatework.hdl.gru_load import LoadDecoder


@pytest.mark.parametrize("seed", range(3))
def test_each_word_goes_to_its_lane_and_granule_or_is_refused(seed):
    print(f"seed {seed}")
    rng = random.Random(seed)
    # Nine lanes: two copies of the address and data; two weights a bank word.
    config = BuildConfig(lanes=9, lane_width=2, max_input_size=3, max_hidden_size=3,
                         max_batch=2, max_steps=2, max_layers=1, bidirectional=False)
    dut = LoadDecoder(config)
    depths = {LoadRegion.WEIGHT: config.weight_sets * config.weight_set_words,
              LoadRegion.BIAS: config.weight_sets * config.bias_set_words,
              LoadRegion.STATE: config.max_batch * config.max_hidden_size}
    address_limit = len(dut.load.payload.address)
    checked = {"written": 0, "refused": 0}

    async def testbench(ctx):
        previous = None
        for _ in range(300):
            word = {"region": rng.choice(list(LoadRegion)), "lane": rng.randrange(9),
                    "address": rng.randrange(1 << address_limit),
                    "data": rng.randrange(-1000, 1000)}
            enable, valid = rng.random() < 0.8, rng.random() < 0.8
            ctx.set(dut.load.payload, word)
            ctx.set(dut.load.valid, valid)
            ctx.set(dut.enable, enable)
            assert ctx.get(dut.load.ready) == enable
            in_range = word["address"] < depths[word["region"]]
            assert ctx.get(dut.refused) == (valid and enable and not in_range)
            # The outputs now are the writes of the word taken a cycle before.
            weight, bias = ctx.get(dut.writes.weight), ctx.get(dut.writes.bias)
            state = ctx.get(dut.state.en)
            if previous is None:
                assert (weight, bias, state) == (0, 0, 0)
            else:
                region, lane, address = (previous["region"], previous["lane"],
                                         previous["address"])
                assert weight == (1 << (2 * lane + address % 2)
                                  if region == LoadRegion.WEIGHT else 0)
                assert bias == (1 << lane if region == LoadRegion.BIAS else 0)
                assert state == (region == LoadRegion.STATE)
                assert ctx.get(dut.state.data) == previous["data"]
                assert ctx.get(dut.state.addr) == address % (1 << len(dut.state.addr))
                checked["written"] += 1
            for copy in range(2):
                assert ctx.get(dut.writes.data[copy]) == ctx.get(dut.writes.data[0])
                assert ctx.get(dut.writes.address[copy]) == ctx.get(dut.writes.address[0])
            checked["refused"] += valid and enable and not in_range
            await ctx.tick()
            previous = word if valid and enable and in_range else None
            if previous is not None:
                assert ctx.get(dut.writes.address[1]) == word["address"]
                assert ctx.get(dut.writes.data[1]) == word["data"]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert checked["written"] > 30 and checked["refused"] > 30
