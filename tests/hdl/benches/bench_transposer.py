"""cocotb bench: the sequence transposer against golden pack/unpack, on Icarus."""

import cocotb
import numpy as np
from cocotb.triggers import Combine

from gatework.golden.transposer import pack, unpack
from gatework.hdl.transposer import Refusal
from gatework.sim.cocotb_streams import get, put, reset, start_clock
from gatework.sim.verilog import bench_parameters, build_component, payload_shape


def request(rng, direction, width, max_batch, max_steps, max_features, capacity):
    """Words in and payloads out of one request with ragged lengths, 1 and the maximum among
    them (two when the batch allows), whose time-major words fit ``capacity``."""
    while True:
        features = int(rng.integers(1, max_features, endpoint=True))
        lengths = rng.integers(1, max_steps, rng.integers(1, max_batch, endpoint=True),
                               endpoint=True)
        lengths[rng.permutation(lengths.size)[:2]] = [max_steps, 1][:lengths.size]
        if lengths.max() * lengths.size * features <= capacity:
            break
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = rng.integers(low, high, (int(lengths.sum()), features), endpoint=True)
    padded = pack(values, lengths)
    if direction == "pack":
        words = values.ravel()
        out = [{"data": int(padded[t, n, d]), "first": int(n == 0 and d == 0),
                "last": int(n == lengths.size - 1 and d == features - 1)}
               for t, n, d in np.ndindex(padded.shape)]
    else:
        words = padded.ravel()
        out = []
        for sequence in np.split(unpack(padded, lengths), np.cumsum(lengths)[:-1]):
            flat = sequence.ravel()
            out += [{"data": int(word), "first": int(k == 0), "last": int(k == flat.size - 1)}
                    for k, word in enumerate(flat)]
    command = {"batch": int(lengths.size), "features": features}
    return command, lengths.tolist(), words.tolist(), out


@cocotb.test()
async def transposer_matches_golden(dut):
    p = bench_parameters()
    model = build_component(p)
    args = p["args"]
    rng = np.random.default_rng(p["seed"])
    requests = [request(rng, p["direction"], args["width"], args["max_batch"],
                        args["max_steps"], args["max_features"], model.capacity)
                for _ in range(3)]
    # A refused request in between: a length of 0 consumes its lengths and words, emits nothing.
    refused_lengths, features = [2, 0], 1
    if p["direction"] == "pack":
        refused_words = sum(refused_lengths) * features
    else:
        refused_words = max(refused_lengths) * len(refused_lengths) * features
    requests.insert(1, ({"batch": len(refused_lengths), "features": features}, refused_lengths,
                        [-1] * refused_words, []))
    inputs = {"command": [r[0] for r in requests],
              "lengths": [n for r in requests for n in r[1]],
              "i": [w for r in requests for w in r[2]]}
    expected = [word for r in requests for word in r[3]]
    start_clock(dut)
    await reset(dut)
    producers = [cocotb.start_soon(put(dut, name, payload_shape(model, name), payloads,
                                       seed=p["seed"] + index, stall=p["stall"]))
                 for index, (name, payloads) in enumerate(inputs.items())]
    statuses = cocotb.start_soon(get(dut, "status", payload_shape(model, "status"),
                                     len(requests), seed=p["seed"] + 10, stall=p["stall"]))
    received, _ = await get(dut, "o", payload_shape(model, "o"), len(expected),
                            seed=p["seed"] + 11, stall=p["stall"])
    status, _ = await statuses
    await Combine(*producers)
    assert received == expected, f"{p['direction']} differs from golden"
    assert [s["refusal"] for s in status] == [Refusal.NONE, Refusal.LENGTH, Refusal.NONE,
                                              Refusal.NONE], f"statuses {status}"
    assert [s["error"] for s in status] == [0, 1, 0, 0], f"statuses {status}"
    assert [s["steps"] for s in status] == [max(r[1]) for r in requests]
