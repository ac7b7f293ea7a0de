"""cocotb bench: the Rescale unit against golden, on Icarus."""

import cocotb
import numpy as np
from cocotb.triggers import Combine

from gatework.golden.fixed import QFormat, rescale
from gatework.sim.cocotb_streams import get, put, reset, start_clock
from gatework.sim.verilog import bench_parameters, build_component, payload_shape


@cocotb.test()
async def rescale_matches_golden(dut):
    p = bench_parameters()
    model = build_component(p)
    args = p["args"]
    fmt = QFormat.parse(args["fmt"])
    rng = np.random.default_rng(p["seed"])
    width = args["input_width"]
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = [low, high, 0, -1] + rng.integers(low, high, 200, endpoint=True).tolist()
    expected = rescale(np.array(values), args["from_fraction"], fmt).tolist()
    start_clock(dut)
    await reset(dut)
    producer = cocotb.start_soon(put(dut, "i", payload_shape(model, "i"), values,
                                     seed=p["seed"], stall=p["stall"]))
    received, _ = await get(dut, "o", payload_shape(model, "o"), len(values),
                            seed=p["seed"] + 1, stall=p["stall"])
    await Combine(producer)
    assert received == expected, "Rescale differs from golden"
