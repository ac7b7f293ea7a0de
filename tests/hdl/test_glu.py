# amaranth: UnusedElaboratable=no
# (a GLUUnit whose arguments are refused is never elaborated)
"""The GLU unit against golden's glu_fixed, in the Amaranth simulator."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gatework.golden.fixed import SaturationCounter
from gatework.golden.formats import DEFAULT_FORMATS
from gatework.golden.glu import glu_fixed
from gatework.hdl.glu import GLUUnit
from gatework.sim.streams import get, put


# The default formats, and data wider than the pre-activation range so that b saturates there.
CONFIGURATIONS = {
    "default-16": (DEFAULT_FORMATS, 16),
    "q6.10-q4.13-5": (DEFAULT_FORMATS.replace(data="q6.10", preactivation="q4.13"), 5),
}


def random_vector(rng, fmt, channels):
    """``2 * channels`` data codes, a quarter of them the format's extremes, 0 or +-1."""
    words = rng.integers(fmt.min_int, fmt.max_int, 2 * channels, endpoint=True)
    corners = rng.random(2 * channels) < 0.25
    words[corners] = rng.choice([fmt.min_int, fmt.max_int, 0, -1, 1], corners.sum())
    return words


def expected_outputs(vectors, formats, counter=None):
    outputs = []
    for vector in vectors:
        result = glu_fixed(vector, formats=formats, counter=counter).tolist()
        outputs += [{"data": word, "last": int(k == len(result) - 1)}
                    for k, word in enumerate(result)]
    return outputs


def simulate(dut, vectors, *, seed, stall):
    """Send each vector with its channel count set on ``channels``; return outputs, cycles."""
    results = {}
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def producer(ctx):
        rng = random.Random(seed)
        for vector in vectors:
            # The previous vector is all taken, so this count is the one sampled next.
            ctx.set(dut.channels, len(vector) // 2)
            await put(ctx, dut.i, vector.tolist(), rng=rng, stall=stall)

    async def consumer(ctx):
        count = sum(len(vector) // 2 for vector in vectors)
        results["outputs"], results["cycles"] = await get(
            ctx, dut.o, count, rng=random.Random(seed + 1), stall=stall)

    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    return results["outputs"], results["cycles"]


@pytest.mark.parametrize("stall, lut_multipliers", [(0.0, False), (0.3, False), (0.0, True)])
@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_glu_matches_golden(name, stall, lut_multipliers):
    seed = 23 + len(name) + int(stall * 10)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    formats, max_channels = CONFIGURATIONS[name]
    counts = [1, max_channels, 1] + rng.integers(1, max_channels, 40, endpoint=True).tolist()
    vectors = [random_vector(rng, formats.data, count) for count in counts]
    counter = SaturationCounter()
    expected = expected_outputs(vectors, formats, counter)
    # Halves swapped, the most likely framing bug, must give other results.
    swapped = expected_outputs([np.roll(vector, len(vector) // 2) for vector in vectors],
                               formats)
    assert swapped != expected
    if formats.data.integer_bits > formats.preactivation.integer_bits:
        assert counter.total > 0, "no gate input saturated: the corners miss their purpose"

    dut = GLUUnit(formats, max_channels, lut_multipliers=lut_multipliers)
    received, cycles = simulate(dut, vectors, seed=seed, stall=stall)
    assert received == expected
    if stall == 0:
        # Every input word is taken in the cycle it is offered, vector after vector; the last
        # output follows the last b word by the latency (9 cycles, measured: 2 * sum + 9).
        assert dut.latency == 9
        assert cycles <= 2 * sum(counts) + dut.latency


def test_channels_are_sampled_at_the_start_of_a_vector():
    seed = 31
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    first, second = random_vector(rng, DEFAULT_FORMATS.data, 6), \
        random_vector(rng, DEFAULT_FORMATS.data, 3)
    dut = GLUUnit(max_channels=8)
    results = {}

    async def producer(ctx):
        ctx.set(dut.channels, 6)
        await put(ctx, dut.i, first[:1].tolist())
        # A new count mid-vector, even an invalid one, must wait for the next vector.
        ctx.set(dut.channels, 0)
        await put(ctx, dut.i, first[1:7].tolist())
        ctx.set(dut.channels, 2)
        await put(ctx, dut.i, first[7:].tolist())
        ctx.set(dut.channels, 3)
        await put(ctx, dut.i, second.tolist())

    async def consumer(ctx):
        results["outputs"], _ = await get(ctx, dut.o, 9)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert results["outputs"] == expected_outputs([first, second], DEFAULT_FORMATS)


@pytest.mark.parametrize("refused", [0, 9, 31])
def test_refused_channel_count_consumes_nothing_and_recovers(refused):
    seed = 41 + refused
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    max_channels = 8
    before, after = random_vector(rng, DEFAULT_FORMATS.data, 5), \
        random_vector(rng, DEFAULT_FORMATS.data, 8)
    dut = GLUUnit(max_channels=max_channels)
    assert refused == 0 or refused > max_channels
    assert refused < 2 ** len(dut.channels)
    results = {}

    async def producer(ctx):
        ctx.set(dut.channels, 5)
        await put(ctx, dut.i, before.tolist())
        ctx.set(dut.channels, refused)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, int(after[0]))
        readies, errors = [], []
        for _ in range(20):
            _, _, ready, error = await ctx.tick().sample(dut.i.ready, dut.error)
            readies.append(ready)
            errors.append(error)
        results["readies"], results["errors"] = readies, errors
        ctx.set(dut.channels, 8)
        await put(ctx, dut.i, after.tolist())
        await ctx.tick()
        results["error_after"] = ctx.get(dut.error)

    async def consumer(ctx):
        # One output more than the two vectors give: it must not come.
        results["outputs"], _ = await get(ctx, dut.o, 5 + 8, rng=random.Random(seed),
                                          stall=0.2)
        for _ in range(40):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            assert not valid, "an output appeared that no vector accounts for"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    sim.run()
    assert not any(results["readies"]), "a word was taken under a refused channel count"
    # The flag is registered: it rises the cycle after the first refused offer.
    assert results["errors"] == [0] + [1] * 19
    assert results["error_after"] == 0
    assert results["outputs"] == expected_outputs([before, after], DEFAULT_FORMATS)


def test_max_channels_must_be_positive():
    with pytest.raises(ValueError, match="max_channels must be an int >= 1"):
        GLUUnit(max_channels=0)
