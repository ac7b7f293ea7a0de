"""WeightSlots: its NOT_LOADED answer against a model of the slots, after random LOADs."""

import pytest
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.slots import WeightSlots


CONFIG = BuildConfig(lanes=2, max_input_size=4, max_hidden_size=3, max_batch=2, max_steps=2,
                     max_layers=2, bidirectional=True)


def model_not_loaded(records, run):
    """docs/protocol.md's NOT_LOADED: a slot the RUN uses is empty or does not match it."""
    directions = 2 if run["bidirectional"] else 1
    features = directions * run["hidden_size"]
    for layer in range(run["num_layers"]):
        for direction in range(directions):
            record = records.get(layer * CONFIG.directions + direction)
            if record is None:
                return True
            if (record["input_size"] != (run["input_size"] if layer == 0 else features) or
                    record["hidden_size"] != run["hidden_size"] or
                    record["linear_before_reset"] != run["linear_before_reset"] or
                    (run["use_h0"] and (not record["has_h0"] or
                                        record["batch"] != run["batch"]))):
                return True
    return False


def random_entry(rng):
    return {"input_size": int(rng.integers(1, 5)), "hidden_size": int(rng.integers(1, 4)),
            "linear_before_reset": int(rng.integers(2)), "has_h0": int(rng.integers(2)),
            "batch": int(rng.integers(1, 3))}


@pytest.mark.parametrize("operations", [600])
def test_not_loaded_follows_what_was_loaded(operations, rng):
    dut = WeightSlots(CONFIG)
    records = {}
    answers = {True: 0, False: 0}

    async def testbench(ctx):
        for _ in range(operations):
            operation = rng.choice(["load", "forget", "clear", "run"], p=[0.4, 0.05, 0.02, 0.53])
            if operation == "run":
                # Mostly a RUN that matches slot 0's record, so that both answers occur.
                base = records.get(0) or random_entry(rng)
                run = {"num_layers": int(rng.choice([1, 1, 1, 2])),
                       "bidirectional": int(rng.random() < 0.2),
                       "input_size": base["input_size"], "hidden_size": base["hidden_size"],
                       "linear_before_reset": base["linear_before_reset"],
                       "use_h0": base["has_h0"] & int(rng.random() < 0.9),
                       "batch": base["batch"]}
                if rng.random() < 0.2:
                    run["hidden_size"] = int(rng.integers(1, 0x10000))
                for name, value in run.items():
                    ctx.set(getattr(dut.run, name), value)
                expected = model_not_loaded(records, run)
                assert ctx.get(dut.not_loaded) == expected, (run, records)
                answers[expected] += 1
                continue
            slot = int(rng.integers(CONFIG.weight_sets))
            ctx.set(dut.slot, slot)
            if operation == "clear":
                ctx.set(dut.clear, 1)
                records.clear()
            elif operation == "forget":
                ctx.set(dut.forget, 1)
                records.pop(slot, None)
            else:
                entry = random_entry(rng)
                for name, value in entry.items():
                    ctx.set(getattr(dut.entry, name), value)
                ctx.set(dut.record, 1)
                records[slot] = entry
            await ctx.tick()
            for port in (dut.clear, dut.forget, dut.record):
                ctx.set(port, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert min(answers.values()) > 10, answers
