"""cocotb bench: the GRU engine's generated Verilog against golden's fixed-point GRU."""

import cocotb
import numpy as np
from cocotb.triggers import Combine

from gatework.golden.config import BuildConfig
from gatework.golden.gru import GRUDirectionWeights, GRUWeights, gru_fixed, quantize_gru
from gatework.hdl.gru import GRUEngine, engine_load_words
from gatework.sim.cocotb_streams import get, put, reset, start_clock
from gatework.sim.verilog import bench_parameters, payload_shape


@cocotb.test()
async def engine_matches_golden(dut):
    p = bench_parameters()
    config = BuildConfig(**p["config"])
    model = GRUEngine(config)
    rng = np.random.default_rng(p["seed"])
    inputs, hidden, batch, steps = p["input_size"], p["hidden_size"], p["batch"], p["steps"]
    bound = 1.5 / np.sqrt(hidden)
    cell = GRUDirectionWeights(rng.uniform(-bound, bound, (3 * hidden, inputs)),
                               rng.uniform(-bound, bound, (3 * hidden, hidden)),
                               rng.uniform(-bound, bound, 3 * hidden),
                               rng.uniform(-bound, bound, 3 * hidden))
    qweights = quantize_gru(GRUWeights(((cell,),), p["linear_before_reset"],
                                       "reverse" if p["reverse"] else "forward"),
                            config.formats)
    x = config.formats.data.quantize(rng.normal(0, 1.5, (steps, batch, inputs)))
    lengths = rng.integers(1, steps + 1, batch)
    lengths[0] = steps
    h0 = config.formats.data.quantize(rng.uniform(-1, 1, (1, batch, hidden)))
    expected, expected_h_n = gru_fixed(qweights, x, h0, lengths)

    start_clock(dut)
    await reset(dut)
    stall = p["stall"]
    await put(dut, "load", payload_shape(model, "load"),
              engine_load_words(config, qweights.weights.layers[0][0], 0, h0=h0[0]),
              seed=1, stall=stall)
    command = {"input_size": inputs, "hidden_size": hidden, "batch": batch, "steps": steps,
               "weight_set": 0, "linear_before_reset": int(p["linear_before_reset"]),
               "reverse": int(p["reverse"]), "initial_state": 1, "emit_steps": 1}
    fed = x[::-1] if p["reverse"] else x
    producers = [
        cocotb.start_soon(put(dut, "command", payload_shape(model, "command"), [command])),
        cocotb.start_soon(put(dut, "lengths", payload_shape(model, "lengths"),
                              lengths.tolist(), seed=2, stall=stall)),
        cocotb.start_soon(put(dut, "x", payload_shape(model, "x"), fed.reshape(-1).tolist(),
                              seed=3, stall=stall)),
    ]
    count = (steps + 1) * batch * hidden
    words, _ = await get(dut, "o", payload_shape(model, "o"), count, seed=4, stall=stall)
    (status,), _ = await get(dut, "status", payload_shape(model, "status"), 1)
    await Combine(*producers)
    assert status["error"] == 0, status
    data = np.array([word["data"] for word in words])
    per_step = data[:steps * batch * hidden].reshape(steps, batch, hidden)
    if p["reverse"]:
        per_step = per_step[::-1]
    assert np.array_equal(per_step, expected), "outputs differ from golden"
    assert np.array_equal(data[steps * batch * hidden:].reshape(1, batch, hidden),
                          expected_h_n), "final states differ from golden"
    assert words[-1]["last"] == 1 and all(word["final"] for word in words[-batch * hidden:])
