"""The GRU engine's lanes on their own: banks loaded, two passes issued, the sums out."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.gru_lanes import Lanes
from gatework.hdl.gru_layouts import Kind


INPUTS, HIDDEN, LANES = 2, 3, 3


def term(k, kind, restart):
    """Term ``k`` of a pass over ``INPUTS + HIDDEN`` terms: input terms, then ``r * h``."""
    return {"valid": 1, "token": 0, "kind": kind, "first": k == 0, "split": k == INPUTS,
            "last": k == INPUTS + HIDDEN - 1, "restart": restart, "use_input": k < INPUTS,
            "use_rh": k >= INPUTS, "h_valid": 1, "state_row": 0, "last_sequence": 0,
            "group_base": 0, "read_bank": 0, "last_group": 1}


@pytest.mark.parametrize("stall", [0.0, 0.9])
@pytest.mark.parametrize("seed", range(2))
def test_passes_give_dot_products_plus_biases_split_for_pytorchs_n(seed, stall):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    config = BuildConfig(lanes=LANES, max_input_size=INPUTS, max_hidden_size=HIDDEN,
                         max_batch=1, max_steps=2, max_layers=1, bidirectional=False)
    formats = config.formats
    terms = INPUTS + HIDDEN
    dut = Lanes(config)
    # Two passes, an r pass and an n pass of PyTorch's form, at pass bases 0 and `terms`.
    weights = formats.weight.quantize(rng.uniform(-1, 1, (2, LANES, terms)))
    biases = formats.bias.quantize(rng.uniform(-1, 1, (2, LANES, 2)))
    vectors = formats.data.quantize(rng.uniform(-2, 2, (2, terms)))
    bias_shift = formats.product_fraction_bits - formats.bias.fraction_bits
    products = np.einsum("plk,pk->plk", weights, vectors)
    gi = products[:, :, :INPUTS].sum(axis=2) + (biases[:, :, 0] << bias_shift)
    hn = products[:, :, INPUTS:].sum(axis=2) + (biases[:, :, 1] << bias_shift)
    # The r pass hands its whole sum over as both; the n pass the two halves.
    expected = ([(int(gi[0, j] + hn[0, j]),) * 2 for j in range(LANES)] +
                [(int(gi[1, j]), int(hn[1, j])) for j in range(LANES)])
    received = {"held": 0}

    def set_all(ctx, ports, value):
        for port in ports:
            ctx.set(port, value)

    async def load_and_issue(ctx):
        ctx.set(dut.command.hidden_size, HIDDEN)
        for p in range(2):
            for lane in range(LANES):
                for k in range(terms):
                    set_all(ctx, dut.weight_address, p * terms + k)
                    set_all(ctx, dut.load.data, int(weights[p, lane, k]))
                    ctx.set(dut.load.weight, 1 << lane)
                    await ctx.tick()
                ctx.set(dut.load.weight, 0)
                for which in range(2):
                    set_all(ctx, dut.load.address, 2 * p + which)
                    set_all(ctx, dut.load.data, int(biases[p, lane, which]))
                    ctx.set(dut.load.bias, 1 << lane)
                    await ctx.tick()
                ctx.set(dut.load.bias, 0)
        # Issue the terms as a scheduler does, holding one while the lanes do not advance;
        # the memories give the words of the term taken a cycle before.
        issued = [(p, k) for p in range(2) for k in range(terms)]
        index, words = 0, 0
        while index < len(issued) or words is not None:
            if index < len(issued):
                p, k = issued[index]
                ctx.set(dut.term, term(k, Kind.R if p == 0 else Kind.N, restart=p == 1))
                set_all(ctx, dut.weight_address, p * terms + k)
                ctx.set(dut.bias_address, 2 * p + (k != 0))
            else:
                ctx.set(dut.term.valid, 0)
            # Both other sources hold garbage: the term chooses its own.
            word = -1234 if words is None else words
            set_all(ctx, dut.input_words, word if index and issued[index - 1][1] < INPUTS
                    else 999)
            set_all(ctx, dut.rh_words, word if index and issued[index - 1][1] >= INPUTS
                    else -999)
            set_all(ctx, dut.state_words, 777)
            advance = ctx.get(dut.advance)
            await ctx.tick()
            if advance:
                if index < len(issued):
                    p, k = issued[index]
                    words = int(vectors[p, k])
                    index += 1
                else:
                    words = None

    async def consumer(ctx):
        stalls = random.Random(seed)
        sums = []
        while len(sums) < 2 * LANES:
            ctx.set(dut.sums.ready, stalls.random() >= stall)
            _, _, valid, ready, payload, advance = await ctx.tick().sample(
                dut.sums.valid, dut.sums.ready, dut.sums.payload, dut.advance)
            received["held"] += not advance
            if valid and ready:
                sums.append(payload)
        received["sums"] = [(int(s.gi), int(s.hn)) for s in sums]
        received["units"] = [int(s.unit) for s in sums]
        received["kinds"] = [s.kind for s in sums]
        received["last_unit"] = [int(s.last_unit) for s in sums]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(load_and_issue)
    sim.add_testbench(consumer)
    sim.run()
    assert received["sums"] == expected
    assert received["units"] == [0, 1, 2] * 2
    assert received["kinds"] == [Kind.R] * 3 + [Kind.N] * 3
    assert received["last_unit"] == [0, 0, 1] * 2
    # With the sums taken slowly, the n pass's last term waits for the holding registers.
    assert (received["held"] > 0) == (stall > 0)
