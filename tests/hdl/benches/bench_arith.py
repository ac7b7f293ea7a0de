"""cocotb bench: the Rescale and MultiplyAccumulate units against golden, on Icarus.

Each test checks the block it is given and returns at once for the other.
"""

import cocotb
import numpy as np

from gatework.golden.fixed import QFormat, rescale
from gatework.sim.cocotb_streams import transfer
from gatework.sim.verilog import bench_parameters, build_component


@cocotb.test()
async def rescale_matches_golden(dut):
    p = bench_parameters()
    if p["component"] != "gatework.hdl.arith:Rescale":
        return
    model = build_component(p)
    args = p["args"]
    fmt = QFormat.parse(args["fmt"])
    rng = np.random.default_rng(p["seed"])
    width = args["input_width"]
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = [low, high, 0, -1] + rng.integers(low, high, 200, endpoint=True).tolist()
    expected = rescale(np.array(values), args["from_fraction"], fmt).tolist()
    received = await transfer(dut, model, {"i": values}, "o", len(values), seed=p["seed"],
                              stall=p["stall"])
    assert received == expected, "Rescale differs from golden"


@cocotb.test()
async def multiply_accumulate_is_exact(dut):
    p = bench_parameters()
    if p["component"] != "gatework.hdl.arith:MultiplyAccumulate":
        return
    model = build_component(p)
    args = p["args"]
    data_format = QFormat.parse(args["data_format"])
    weight_format = QFormat.parse(args["weight_format"])
    rng = np.random.default_rng(p["seed"])
    operands, expected = [], []
    lengths = [args["terms"], 1] + rng.integers(1, args["terms"], 5, endpoint=True).tolist()
    for index, length in enumerate(lengths):
        if index == 0:   # the worst case: every operand at its most negative code
            a, b = [data_format.min_int] * length, [weight_format.min_int] * length
        else:
            a = rng.integers(data_format.min_int, data_format.max_int, length,
                             endpoint=True).tolist()
            b = rng.integers(weight_format.min_int, weight_format.max_int, length,
                             endpoint=True).tolist()
        expected.append(sum(x * y for x, y in zip(a, b)))
        operands += [{"data": x, "weight": y, "first": int(k == 0),
                      "last": int(k == length - 1)} for k, (x, y) in enumerate(zip(a, b))]
    received = await transfer(dut, model, {"i": operands}, "o", len(expected), seed=p["seed"],
                              stall=p["stall"])
    assert received == expected, "MultiplyAccumulate differs from exact integer sums"
