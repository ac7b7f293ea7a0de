# amaranth: UnusedElaboratable=no
"""The GRU engine's element-wise stage on its own: a job's sums in, golden's gates, new states
and outputs out, with a real activation unit and state memory beside it."""

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.fixed import align, rescale
from gatework.hdl.activation import Activation
from gatework.hdl.gru_elementwise import ElementwiseStage
from gatework.hdl.gru_layouts import LEAVE, Kind
from gatework.sim.streams import get, put


class Bench(Elaboratable):
    """The stage with an activation unit, a state memory holding ``states`` and an r * h
    memory."""

    def __init__(self, config, states):
        self.config = config
        self.stage = ElementwiseStage(config)
        bits = config.formats.data.total_bits
        self.state = Memory(shape=signed(bits), depth=len(states), init=states)
        self.rh = Memory(shape=signed(bits), depth=config.max_hidden_size, init=[])

    def elaborate(self, platform):
        m = Module()
        m.submodules.stage = stage = self.stage
        m.submodules.activation = activation = Activation(self.config.formats)
        wiring.connect(m, activation, stage.activation)
        m.submodules.state = self.state
        m.submodules.rh = self.rh
        wiring.connect(m, self.state.read_port(), stage.state_read)
        wiring.connect(m, self.state.write_port(), stage.state_write)
        wiring.connect(m, self.rh.write_port(), stage.rh_write)
        return m


def unit(kind, j, hidden, sequence, read_bank, *, gi=0, hn=0, last_sequence=False, config):
    return {"gi": gi, "hn": hn, "kind": kind, "unit": j,
            "state_offset": sequence * config.max_hidden_size + j, "read_bank": read_bank,
            "h_valid": 1, "last_unit": j == hidden - 1, "last_group": 1,
            "last_sequence": last_sequence}


def expected_job(formats, sums, h, linear_before_reset):
    """Golden's numbers for one job: r * h and the new state from the gates' sums."""
    acc_f = formats.product_fraction_bits
    preact, act, data = formats.preactivation, formats.activation, formats.data
    table = formats.table
    r = table.sigmoid(rescale(sums["r"], acc_f, preact))
    z = table.sigmoid(rescale(sums["z"], acc_f, preact))
    rh = rescale(r * h, act.fraction_bits + data.fraction_bits, data)
    if linear_before_reset:
        hn = rescale(sums["hn"], acc_f, preact)
        reset_f = act.fraction_bits + preact.fraction_bits
        common_f = max(acc_f, reset_f)
        n_acc = align(sums["n"], acc_f, common_f) + align(r * hn, reset_f, common_f)
        n = table.tanh(rescale(n_acc, common_f, preact))
    else:
        n = table.tanh(rescale(sums["n"], acc_f, preact))
    update_f = max(data.fraction_bits, act.fraction_bits)
    n_u = align(n, act.fraction_bits, update_f)
    h_u = align(h, data.fraction_bits, update_f)
    blended = align(n_u, 0, act.fraction_bits) + z * (h_u - n_u)
    return rh, rescale(blended, update_f + act.fraction_bits, data)


@pytest.mark.parametrize("linear_before_reset", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_a_job_gives_golden_states_then_final_states(seed, linear_before_reset):
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    config = BuildConfig(lanes=2, max_input_size=4, max_hidden_size=8, max_batch=2,
                         max_steps=2, max_layers=1, bidirectional=False)
    formats = config.formats
    hidden, sequence, max_h = int(rng.integers(1, 9)), 1, config.max_hidden_size
    # Sums up to eight in magnitude: the pre-activations saturate now and then.
    bound = 8 << formats.product_fraction_bits
    sums = {name: rng.integers(-bound, bound, hidden) for name in ("r", "z", "n", "hn")}
    h = formats.data.quantize(rng.uniform(-1, 1, hidden))
    # h is read from bank 1 of sequence 1; the new state goes to bank 0.
    states = [0] * (2 * config.max_batch * max_h)
    for j in range(hidden):
        states[config.max_batch * max_h + sequence * max_h + j] = int(h[j])
    expected_rh, expected_state = expected_job(formats, sums, h, linear_before_reset)

    dut = Bench(config, states)
    stage = dut.stage
    job = [[unit(kind, j, hidden, sequence, 1, config=config,
                 gi=int(sums[name][j]), hn=int(sums["hn"][j]) if name == "n" else 0)
            for j in range(hidden)]
           for kind, name in ((Kind.R, "r"), (Kind.Z, "z"), (Kind.N, "n"))]
    finals = [unit(Kind.FINAL, j, hidden, sequence, 0, last_sequence=True, config=config)
              for j in range(hidden)]
    pulses = {"r_done": 0, "job_done": 0, "run_done": 0}
    results = {}

    async def producer(ctx):
        ctx.set(stage.command.linear_before_reset, linear_before_reset)
        ctx.set(stage.command.emit_steps, 1)
        stall = random.Random(seed)
        await put(ctx, stage.sums, job[0] + job[1], rng=stall, stall=0.3)
        # The n units read r (PyTorch's form) or the lanes r * h (the original form): the
        # scheduler issues them once the job's last r unit is through.
        while not pulses["r_done"]:
            await ctx.tick()
        await put(ctx, stage.sums, job[2], rng=stall, stall=0.3)
        await put(ctx, stage.sums, finals, rng=stall, stall=0.3)

    async def consumer(ctx):
        results["o"], _ = await get(ctx, stage.o, 2 * hidden, rng=random.Random(seed + 1),
                                    stall=0.3, timeout=2_000)
        await ctx.tick().repeat(3)
        results["state"] = [ctx.get(dut.state.data[sequence * max_h + j])
                            for j in range(hidden)]
        results["rh"] = [ctx.get(dut.rh.data[j]) for j in range(hidden)]

    async def pulse_counter(ctx):
        async for _, _, *values in ctx.tick().sample(*(getattr(stage, name)
                                                       for name in pulses)):
            for name, value in zip(pulses, values):
                pulses[name] += value

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(pulse_counter, background=True)
    sim.run()

    assert [word["data"] for word in results["o"]] == list(expected_state) * 2
    assert [word["final"] for word in results["o"]] == [0] * hidden + [1] * hidden
    assert [word["last"] for word in results["o"]] == [0] * (2 * hidden - 1) + [1]
    assert results["state"] == list(expected_state)
    if not linear_before_reset:
        assert results["rh"] == list(expected_rh)
    assert pulses == {"r_done": 1, "job_done": 1, "run_done": 1}


def test_skipped_units_emit_zeros_after_the_stage_latency():
    config = BuildConfig(lanes=2, max_input_size=4, max_hidden_size=4, max_batch=1,
                         max_steps=2, max_layers=1, bidirectional=False)
    dut = Bench(config, [100] * 8)
    stage = dut.stage
    skip = [dict(unit(Kind.SKIP, j, 3, 0, 0, config=config), gi=12345) for j in range(3)]
    seen = {}

    async def testbench(ctx):
        ctx.set(stage.command.emit_steps, 1)
        ctx.set(stage.o.ready, 1)
        ctx.set(stage.sums.valid, 1)
        for payload in skip:
            ctx.set(stage.sums.payload, payload)
            await ctx.tick()
        ctx.set(stage.sums.valid, 0)
        words, cycle = [], len(skip)
        while len(words) < 3:
            _, _, valid, payload, job_done = await ctx.tick().sample(
                stage.o.valid, stage.o.payload, stage.job_done)
            if valid:
                words.append(payload.data)
                seen.setdefault("latency", cycle)
            if job_done:
                seen["job_done"] = len(words)
            cycle += 1
        seen["words"] = words

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    # The first unit, taken in cycle 0, is offered on o in cycle LEAVE + 6; the job ends with
    # its last unit, as the second word leaves.
    assert seen == {"latency": LEAVE + 6, "job_done": 2, "words": [0, 0, 0]}
