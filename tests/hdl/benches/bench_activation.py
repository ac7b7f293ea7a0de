"""cocotb bench: the activation unit against golden's table, on Icarus."""

import cocotb
import numpy as np

from gatework.golden.formats import DEFAULT_FORMATS
from gatework.hdl.activation import Activation, Function
from gatework.sim.cocotb_streams import transfer
from gatework.sim.verilog import bench_parameters


@cocotb.test()
async def activation_matches_golden(dut):
    p = bench_parameters()
    formats = DEFAULT_FORMATS.replace(**p["formats"])
    model = Activation(formats)
    table, fmt = formats.table, formats.preactivation
    rng = np.random.default_rng(p["seed"])
    # The format's ends, the table's end for both functions, and random codes.
    end = 1 << (fmt.fraction_bits + table.range_log2)
    codes = np.array([fmt.min_int, fmt.max_int, 0, -1, 1, end - 1, end, 2 * end - 1,
                      -end, -2 * end] +
                     rng.integers(fmt.min_int, fmt.max_int, 2000, endpoint=True).tolist())
    codes = np.clip(codes, fmt.min_int, fmt.max_int)
    functions = rng.choice([Function.SIGMOID.value, Function.TANH.value], len(codes))
    expected = np.where(functions == Function.TANH.value, table.tanh(codes),
                        table.sigmoid(codes)).tolist()
    payloads = [{"value": int(code), "function": int(function)}
                for code, function in zip(codes, functions)]
    received = await transfer(dut, model, {"i": payloads}, "o", len(payloads),
                              seed=p["seed"], stall=p["stall"])
    assert received == expected, "Activation differs from golden"
