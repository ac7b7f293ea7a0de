"""cocotb bench: the GLU unit against golden's glu_fixed, on Icarus."""

import cocotb
import numpy as np
from cocotb.triggers import Combine, FallingEdge, ReadOnly

from gatework.golden.formats import DEFAULT_FORMATS
from gatework.golden.glu import glu_fixed
from gatework.hdl.glu import GLUUnit
from gatework.sim.cocotb_streams import get, put, reset, start_clock
from gatework.sim.verilog import bench_parameters, payload_shape


def _unit(p):
    return GLUUnit(DEFAULT_FORMATS.replace(**p["formats"]), max_channels=p["max_channels"])


def _vectors(p, rng):
    """Vectors of random channel counts (the smallest and largest included), a quarter of
    their words the data format's extremes."""
    fmt = DEFAULT_FORMATS.replace(**p["formats"]).data
    counts = [1, p["max_channels"]] + rng.integers(1, p["max_channels"], 30,
                                                   endpoint=True).tolist()
    vectors = []
    for count in counts:
        words = rng.integers(fmt.min_int, fmt.max_int, 2 * count, endpoint=True)
        corners = rng.random(2 * count) < 0.25
        words[corners] = rng.choice([fmt.min_int, fmt.max_int], corners.sum())
        vectors.append(words)
    return vectors


def _expected(p, vectors):
    formats = DEFAULT_FORMATS.replace(**p["formats"])
    outputs = []
    for vector in vectors:
        result = glu_fixed(vector, formats=formats).tolist()
        outputs += [{"data": word, "last": int(k == len(result) - 1)}
                    for k, word in enumerate(result)]
    return outputs


async def _send(dut, shape, vectors, p):
    for index, vector in enumerate(vectors):
        # The previous vector is all taken, so this count is the one sampled next.
        dut.channels.value = len(vector) // 2
        await put(dut, "i", shape, vector.tolist(), seed=p["seed"] + index, stall=p["stall"])


@cocotb.test()
async def glu_matches_golden(dut):
    p = bench_parameters()
    model = _unit(p)
    vectors = _vectors(p, np.random.default_rng(p["seed"]))
    expected = _expected(p, vectors)
    start_clock(dut)
    await reset(dut)
    producer = cocotb.start_soon(_send(dut, payload_shape(model, "i"), vectors, p))
    received, _ = await get(dut, "o", payload_shape(model, "o"), len(expected),
                            seed=p["seed"] + 1000, stall=p["stall"])
    await Combine(producer)
    assert received == expected, "GLU differs from golden"


@cocotb.test()
async def refused_channel_count_recovers(dut):
    p = bench_parameters()
    model = _unit(p)
    vectors = _vectors(p, np.random.default_rng(p["seed"] + 1))[:2]
    start_clock(dut)
    await reset(dut)
    dut.channels.value = 0
    dut.i__valid.value = 1
    dut.i__payload.value = int(vectors[0][0]) & ((1 << len(dut.i__payload)) - 1)
    for _ in range(10):
        await FallingEdge(dut.clk)
        await ReadOnly()
        assert not int(dut.i__ready.value), "a word was taken under channel count 0"
    assert int(dut.error.value), "channel count 0 was refused without raising error"
    await FallingEdge(dut.clk)
    producer = cocotb.start_soon(_send(dut, payload_shape(model, "i"), vectors, p))
    received, _ = await get(dut, "o", payload_shape(model, "o"), len(_expected(p, vectors)),
                            seed=p["seed"] + 1000, stall=p["stall"])
    await Combine(producer)
    assert received == _expected(p, vectors), "GLU differs from golden after a refusal"
    assert not int(dut.error.value), "error stayed high after a valid channel count"
