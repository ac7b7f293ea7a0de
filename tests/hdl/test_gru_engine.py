# amaranth: UnusedElaboratable=no
"""The GRU engine against golden's fixed-point GRU, integer for integer, in the Amaranth
simulator: randomised sizes, lanes, batches, lengths, both forms, layers, directions, h0."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.gru import GRUDirectionWeights, GRUWeights, gru_fixed, quantize_gru
from gatework.hdl.gru import GRUEngine, LoadRegion, Refusal, engine_load_words
from gatework.hdl.gru_lanes import Lanes
from gatework.sim.gru import simulate_gru
from gatework.sim.streams import get, put


def random_model(rng, input_size, hidden_size, num_layers, direction, linear_before_reset,
                 bias=True):
    """Float weights drawn like PyTorch's initialisation, a little wider to reach saturation."""
    bound = 1.5 / np.sqrt(hidden_size)
    directions = 2 if direction == "bidirectional" else 1
    layers = []
    for k in range(num_layers):
        inputs = input_size if k == 0 else hidden_size * directions
        layers.append(tuple(GRUDirectionWeights(
            rng.uniform(-bound, bound, (3 * hidden_size, inputs)),
            rng.uniform(-bound, bound, (3 * hidden_size, hidden_size)),
            rng.uniform(-bound, bound, 3 * hidden_size) if bias else None,
            rng.uniform(-bound, bound, 3 * hidden_size) if bias else None)
            for _ in range(directions)))
    return GRUWeights(tuple(layers), linear_before_reset, direction)


def estimated_cycles(input_size, hidden_size, lanes, batch, steps, num_layers, directions):
    groups = -(-hidden_size // lanes)
    run = steps * batch * 3 * groups * (input_size + hidden_size + 1) + batch * hidden_size
    loads = 3 * hidden_size * (input_size + hidden_size + 2) * num_layers * directions
    return loads + run * num_layers * directions


def draw_case(rng, budget):
    """A random configuration within the sweep's ranges whose simulation fits ``budget``."""
    while True:
        case = {
            "input_size": int(rng.integers(1, 33)), "hidden_size": int(rng.integers(1, 33)),
            "lanes": int(rng.integers(1, 9)), "batch": int(rng.integers(1, 9)),
            "steps": int(rng.integers(1, 5)), "num_layers": int(rng.integers(1, 3)),
            "direction": str(rng.choice(["forward", "bidirectional", "reverse"])),
            "linear_before_reset": bool(rng.integers(2)), "h0": bool(rng.integers(2)),
            "bias": bool(rng.random() < 0.85)}
        directions = 2 if case["direction"] == "bidirectional" else 1
        if estimated_cycles(case["input_size"], case["hidden_size"], case["lanes"],
                            case["batch"], case["steps"], case["num_layers"],
                            directions) <= budget:
            return case


def check_case(case, seed, stall=0.0, lut_multipliers=False, stale_weights=False):
    print(f"seed {seed}: {case}")
    rng = np.random.default_rng(seed)
    directions = 2 if case["direction"] == "bidirectional" else 1
    hidden = case["hidden_size"]
    config = BuildConfig(
        lanes=case["lanes"], lane_width=case.get("lane_width", 1),
        max_input_size=max(case["input_size"], hidden * directions) + int(rng.integers(0, 3)),
        max_hidden_size=hidden + int(rng.integers(0, 3)),
        max_batch=case["batch"] + int(rng.integers(0, 2)),
        max_steps=case["steps"] + int(rng.integers(0, 3)),
        max_layers=case["num_layers"], bidirectional=directions == 2)
    weights = random_model(rng, case["input_size"], hidden, case["num_layers"],
                           case["direction"], case["linear_before_reset"], case["bias"])
    formats = config.formats
    qweights = quantize_gru(weights, formats)
    steps, batch = case["steps"], case["batch"]
    # Inputs of N(0, 2) reach past q4.12's range now and then: saturated codes on purpose.
    x = formats.data.quantize(rng.normal(0, 2, (steps, batch, case["input_size"])))
    lengths = rng.integers(1, steps + 1, batch)
    lengths[rng.integers(batch)] = steps
    h0 = None
    if case["h0"]:
        h0 = formats.data.quantize(rng.uniform(-1, 1, (case["num_layers"] * directions, batch,
                                                        hidden)))
    expected, expected_h_n = gru_fixed(qweights, x, h0, lengths)
    output, h_n, runs = simulate_gru(config, qweights, x, h0, lengths, seed=seed, stall=stall,
                                     lut_multipliers=lut_multipliers,
                                     stale_weights=stale_weights)
    mismatches = np.count_nonzero(output != expected) + np.count_nonzero(h_n != expected_h_n)
    print(f"  {sum(run.cycles for run in runs)} cycles, {mismatches} mismatches")
    assert mismatches == 0
    assert np.any(expected != 0)


@pytest.mark.parametrize("seed", range(12))
def test_random_configurations(seed):
    check_case(draw_case(np.random.default_rng(1000 + seed), budget=14_000), 1000 + seed)


@pytest.mark.parametrize("case", [
    # One unit, one lane; more lanes than units; units a multiple of the lanes.
    dict(input_size=1, hidden_size=1, lanes=1, batch=1, steps=3, num_layers=1,
         direction="forward", linear_before_reset=True, h0=False, bias=True),
    dict(input_size=3, hidden_size=3, lanes=8, batch=2, steps=3, num_layers=1,
         direction="forward", linear_before_reset=False, h0=True, bias=True),
    dict(input_size=5, hidden_size=8, lanes=4, batch=3, steps=3, num_layers=2,
         direction="bidirectional", linear_before_reset=True, h0=True, bias=False),
    dict(input_size=4, hidden_size=6, lanes=3, batch=4, steps=4, num_layers=2,
         direction="reverse", linear_before_reset=False, h0=False, bias=True),
], ids=["tiny", "wide-lanes", "stacked-bidirectional", "reverse-original-form"])
def test_corner_configurations(case):
    check_case(case, seed=7)


def test_multipliers_in_logic_cells_give_the_same_results():
    # The original form uses both products of the element-wise stage's second multiplier.
    case = dict(input_size=3, hidden_size=4, lanes=2, batch=2, steps=3, num_layers=1,
                direction="bidirectional", linear_before_reset=False, h0=True, bias=True)
    check_case(case, seed=9, lut_multipliers=True)
    # PyTorch's form uses the first, r * (W_hn h + b_hn).
    check_case(dict(case, linear_before_reset=True, direction="reverse"), seed=10,
               lut_multipliers=True)


@pytest.mark.parametrize("case", [
    # Sizes that are not multiples of the width: padded input and recurrent cycles.
    dict(input_size=5, hidden_size=7, lanes=3, batch=2, steps=3, num_layers=1,
         direction="forward", linear_before_reset=True, h0=True, bias=True, lane_width=2),
    dict(input_size=3, hidden_size=5, lanes=2, batch=3, steps=3, num_layers=2,
         direction="bidirectional", linear_before_reset=False, h0=True, bias=True,
         lane_width=2),
    dict(input_size=6, hidden_size=4, lanes=4, batch=2, steps=3, num_layers=1,
         direction="reverse", linear_before_reset=True, h0=False, bias=False, lane_width=2),
    dict(input_size=5, hidden_size=6, lanes=2, batch=2, steps=3, num_layers=2,
         direction="forward", linear_before_reset=False, h0=True, bias=True, lane_width=4),
    dict(input_size=1, hidden_size=1, lanes=1, batch=1, steps=3, num_layers=1,
         direction="forward", linear_before_reset=True, h0=True, bias=True, lane_width=4),
], ids=["odd-sizes-w2", "stacked-bidirectional-original-form-w2", "reverse-no-bias-w2",
        "stacked-w4", "tiny-w4"])
def test_lanes_taking_several_terms_a_cycle(case):
    # Every weight word starts stale, so a padding element taken as anything but zero, or
    # a weight from the wrong granule of its word, shows as a mismatch.
    check_case(case, seed=21, stale_weights=True)


@pytest.mark.parametrize("seed", range(4))
def test_random_configurations_with_lane_widths(seed):
    rng = np.random.default_rng(3000 + seed)
    case = dict(draw_case(rng, budget=10_000), lane_width=int(rng.choice([2, 4])))
    check_case(case, 3000 + seed, stall=0.2 if seed % 2 else 0.0, stale_weights=True)


@pytest.mark.parametrize("lane_width", [1, 4])
@pytest.mark.parametrize("linear_before_reset", [True, False])
@pytest.mark.parametrize("hidden_size", [4, 6, 8])
def test_n_passes_start_before_r_is_through(hidden_size, linear_before_reset, lane_width):
    # One input and lanes for every unit: passes of two or three cycles, so every n pass
    # starts while its job's r units are still in the element-wise stage. PyTorch's form
    # reads r of an n unit there, and waits for r below H = 6; the original form's n passes
    # read r * h through the lanes, unit by unit as it is written.
    case = dict(input_size=1, hidden_size=hidden_size, lanes=8, batch=1, steps=4,
                num_layers=1, direction="forward", linear_before_reset=linear_before_reset,
                h0=True, bias=True, lane_width=lane_width)
    check_case(case, seed=31, stall=0.2 if hidden_size == 6 else 0.0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("seed", [3, 4])
def test_random_backpressure(seed, batch):
    # With a batch of one, each step chases the one before it through stalls.
    case = dict(input_size=4, hidden_size=5, lanes=2, batch=batch, steps=3, num_layers=1,
                direction="bidirectional", linear_before_reset=bool(seed % 2), h0=True,
                bias=True)
    check_case(case, seed, stall=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_random_configurations_long(seed):
    check_case(draw_case(np.random.default_rng(5000 + seed), budget=120_000), 5000 + seed)


def test_cycles_per_step_near_ideal():
    # H >= 4 * lanes and batch >= 2: at least 90 % of the multipliers' cycles do work.
    config = BuildConfig(lanes=4, max_input_size=8, max_hidden_size=16, max_batch=2,
                         max_steps=4, max_layers=1, bidirectional=False)
    rng = np.random.default_rng(11)
    weights = quantize_gru(random_model(rng, 8, 16, 1, "forward", True), config.formats)
    x = config.formats.data.quantize(rng.normal(0, 1, (4, 2, 8)))
    _, _, (run,) = simulate_gru(config, weights, x)
    per_step = np.diff(run.step_ends).mean()
    ideal = 3 * 16 * (8 + 16) * 2 / 4
    print(f"{per_step} cycles per step, ideal {ideal}")
    assert ideal / per_step >= 0.90
    assert per_step >= ideal


def _assert_every_step_takes(cycles, *, input_size, batch, lane_width, linear_before_reset,
                             seed):
    """H = 8 on 8 lanes, 4 steps, bit-exact, and each step after the first ``cycles`` long."""
    config = BuildConfig(lanes=8, lane_width=lane_width, max_input_size=input_size,
                         max_hidden_size=8, max_batch=batch, max_steps=4, max_layers=1,
                         bidirectional=False)
    rng = np.random.default_rng(seed)
    weights = quantize_gru(random_model(rng, input_size, 8, 1, "forward", linear_before_reset),
                           config.formats)
    x = config.formats.data.quantize(rng.normal(0, 1, (4, batch, input_size)))
    output, _, (run,) = simulate_gru(config, weights, x)
    expected, _ = gru_fixed(weights, x)
    assert np.count_nonzero(output != expected) == 0
    per_step = np.diff(run.step_ends)
    print(f"cycles per step {per_step}, ideal {cycles}")
    assert list(per_step) == [cycles] * 3


@pytest.mark.parametrize("lane_width", [1, 2])
@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_a_batch_of_one_takes_the_ideal_cycles_per_step(linear_before_reset, lane_width):
    # One sequence: each step depends on the one before. A step starts while the previous
    # step's states are still being written and reads unit u of the state once it is written;
    # with D / lane_width beyond the element-wise stage's depth no pass waits, so a step takes
    # exactly 3 H (D + H) / (lanes * lane_width) cycles.
    d = 32 * lane_width
    _assert_every_step_takes(3 * 8 * (d + 8) // (8 * lane_width), input_size=d, batch=1,
                             lane_width=lane_width, linear_before_reset=linear_before_reset,
                             seed=12)


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_a_batch_of_two_takes_the_ideal_cycles_per_step(linear_before_reset):
    # Passes of 16 cycles: too short to hide a job's r units in the element-wise stage from
    # its n passes. They start at once all the same (PyTorch's form), or chase r * h (the
    # original form), so a step takes exactly 3 H (D + H) B / lanes cycles.
    _assert_every_step_takes(96, input_size=8, batch=2, lane_width=1,
                             linear_before_reset=linear_before_reset, seed=13)


def _engine_session(config, script, inputs):
    """Simulate ``config``'s engine with ``script(ctx, engine)`` as the testbench.

    ``inputs`` go to the ``x`` stream from a testbench of their own, in order: the engine
    takes them as its runs need them, while the script collects outputs.
    """
    engine = GRUEngine(config)
    sim = Simulator(engine)
    sim.add_clock(1e-8)
    result = {}

    async def feeder(ctx):
        await put(ctx, engine.x, inputs)
    sim.add_testbench(feeder, background=True)

    async def testbench(ctx):
        result["value"] = await script(ctx, engine)
    sim.add_testbench(testbench)
    sim.run()
    return result["value"]


SMALL = BuildConfig(lanes=2, max_input_size=3, max_hidden_size=4, max_batch=2, max_steps=3,
                    max_layers=1, bidirectional=False)


def _command(**changes):
    command = {"input_size": 2, "hidden_size": 3, "batch": 2, "steps": 2, "weight_set": 0,
               "linear_before_reset": 1, "reverse": 0, "initial_state": 0, "emit_steps": 1}
    command.update(changes)
    return command


def _small_case(seed, linear_before_reset, lengths):
    """A one-layer model for SMALL, its inputs, and golden's outputs and final states."""
    rng = np.random.default_rng(seed)
    weights = quantize_gru(random_model(rng, 2, 3, 1, "forward", linear_before_reset),
                           SMALL.formats)
    x = SMALL.formats.data.quantize(rng.normal(0, 1, (2, 2, 2)))
    return (weights.weights.layers[0][0], x) + gru_fixed(weights, x, lengths=lengths)


async def _good_run(ctx, engine, lengths, **changes):
    """Run a good request after whatever came before; its output words and status."""
    await put(ctx, engine.command, [_command(**changes)])
    await put(ctx, engine.lengths, lengths)
    words, _ = await get(ctx, engine.o, 2 * 2 * 3 + 2 * 3, timeout=5000)
    (status,), _ = await get(ctx, engine.status, 1, timeout=100)
    return status, np.array([word["data"] for word in words])


@pytest.mark.parametrize("changes, refusal", [
    (dict(batch=0), Refusal.BATCH),
    (dict(hidden_size=0), Refusal.HIDDEN_SIZE),
    (dict(input_size=0), Refusal.INPUT_SIZE),
    (dict(steps=0), Refusal.STEPS),
])
def test_refused_runs_and_recovery(changes, refusal):
    cell, x, expected, expected_h_n = _small_case(2, True, [2, 1])

    async def script(ctx, engine):
        await put(ctx, engine.load, engine_load_words(SMALL, cell, 0))
        await put(ctx, engine.command, [_command(**changes)])
        (bad,), _ = await get(ctx, engine.status, 1, timeout=100)
        # The next good request runs as if nothing had happened.
        return (bad,) + await _good_run(ctx, engine, [2, 1])

    bad, good, data = _engine_session(SMALL, script, x.reshape(-1).tolist())
    assert bad["error"] == 1 and bad["refusal"] == refusal
    assert good["error"] == 0 and good["refusal"] == Refusal.NONE
    assert np.array_equal(data[:12].reshape(2, 2, 3), expected)
    assert np.array_equal(data[12:].reshape(1, 2, 3), expected_h_n)


def test_bad_length_drains_its_inputs_and_bad_load_is_flagged():
    cell, x, expected, _ = _small_case(4, False, [1, 2])

    async def script(ctx, engine):
        await put(ctx, engine.load, engine_load_words(SMALL, cell, 0))
        # A word beyond the state memory: not written, flagged.
        await put(ctx, engine.load, [{"region": LoadRegion.STATE, "lane": 0,
                                      "address": SMALL.max_batch * SMALL.max_hidden_size,
                                      "data": 1}])
        await ctx.tick()
        flagged = ctx.get(engine.load_error)
        # Lengths of 0 and beyond the steps: refused, and its 8 inputs are consumed.
        await put(ctx, engine.command, [_command(linear_before_reset=0)])
        await put(ctx, engine.lengths, [0, 3])
        (bad,), _ = await get(ctx, engine.status, 1, timeout=100)
        return (flagged, bad) + await _good_run(ctx, engine, [1, 2], linear_before_reset=0)

    # The refused request's 8 inputs come first; the engine must drop exactly those.
    flagged, bad, good, data = _engine_session(SMALL, script,
                                               list(range(8)) + x.reshape(-1).tolist())
    assert flagged == 1
    assert bad["error"] == 1 and bad["refusal"] == Refusal.LENGTH and bad["load_error"] == 1
    assert good["error"] == 0 and good["load_error"] == 0
    assert np.array_equal(data[:12].reshape(2, 2, 3), expected)


def test_memory_words_match_the_build():
    config = BuildConfig(lanes=8, max_input_size=64, max_hidden_size=64, max_batch=8,
                         max_layers=2, bidirectional=True)
    words = config.memory_words()
    # 4 banks of 3 * 64 rows of 128 weights, spread over 8 lanes without padding.
    assert words["weights"] == 4 * 3 * 64 * 128
    assert words["hidden state"] == 2 * 8 * 64
    # The engine's weight banks are its lanes'.
    lanes = Lanes(config)
    assert lanes._bank_depth * config.lane_width * config.lanes == words["weights"]


def test_load_words_cover_every_weight_once():
    config = BuildConfig(lanes=3, max_input_size=5, max_hidden_size=7, max_batch=2,
                         max_layers=1, bidirectional=False)
    rng = np.random.default_rng(0)
    cell = quantize_gru(random_model(rng, 5, 7, 1, "forward", True),
                        config.formats).weights.layers[0][0]
    words = engine_load_words(config, cell, 0)
    weights = [w for w in words if w["region"] == LoadRegion.WEIGHT]
    assert len(weights) == 3 * 7 * (5 + 7)
    assert len({(w["lane"], w["address"]) for w in weights}) == len(weights)
    assert max(w["address"] for w in weights) < 3 * config.groups * config.max_terms
    # With two terms a cycle, D = 5 and H = 7 each take one word of padding per row.
    wide = BuildConfig(lanes=3, lane_width=2, max_input_size=5, max_hidden_size=7,
                       max_batch=2, max_layers=1, bidirectional=False)
    padded = [w for w in engine_load_words(wide, cell, 0) if w["region"] == LoadRegion.WEIGHT]
    assert len(padded) == len(weights)
    addresses = {(w["lane"], w["address"]) for w in padded}
    assert len(addresses) == len(padded)
    assert max(address for _, address in addresses) < wide.weight_set_words
    # Unit 0 of gate r: its inputs at words 0..4, its recurrent weights from word 6 on.
    lane_0 = sorted(address for lane, address in addresses if lane == 0)
    assert lane_0[:12] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    assert random.Random(0).choice(weights)["data"] in set(
        np.concatenate([cell.weight_ih.ravel(), cell.weight_hh.ravel()]).tolist())
