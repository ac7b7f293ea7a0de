"""The GRU engine's run control on its own: refusals, a run's set-up and its status."""

from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.gru_control import RunControl
from gatework.hdl.gru_layouts import Refusal
from gatework.sim.streams import get, put


CONFIG = BuildConfig(lanes=2, lane_width=2, max_input_size=5, max_hidden_size=3, max_batch=2,
                     max_steps=4, max_layers=2, bidirectional=True)
COMMAND = {"input_size": 5, "hidden_size": 3, "batch": 2, "steps": 4, "weight_set": 3,
           "linear_before_reset": 1, "reverse": 0, "initial_state": 0, "emit_steps": 1}


def test_refusals_runs_and_load_errors():
    dut = RunControl(CONFIG)
    seen = {}

    async def testbench(ctx):
        ctx.set(dut.status.ready, 1)
        # A batch beyond the build: refused at once, no lengths taken.
        await put(ctx, dut.command, [{**COMMAND, "batch": 3}])
        status, _ = await get(ctx, dut.status, 1)
        assert status == [{"error": 1, "refusal": Refusal.BATCH, "load_error": 0}]
        # A load word refused between runs shows in the next command's status.
        assert ctx.get(dut.idle)
        ctx.set(dut.load_refused, 1)
        await ctx.tick()
        ctx.set(dut.load_refused, 0)
        assert ctx.get(dut.load_error)
        # A good run: its weight set found while the lengths arrive, then running.
        await put(ctx, dut.command, [COMMAND])
        assert not ctx.get(dut.load_error)
        await put(ctx, dut.lengths, [4, 2])
        start_cycles = 0
        while not ctx.get(dut.running):
            start_cycles += ctx.get(dut.start)
            await ctx.tick()
        seen["start_cycles"] = start_cycles
        run = ctx.get(dut.run)
        seen["run"] = {name: int(getattr(run, name))
                       for name in ("terms", "final_term", "input_cycles", "last_input_cycle",
                                    "input_tail", "hidden_tail", "pass_base", "bias_base",
                                    "r_wait")}
        seen["lengths"] = [ctx.get(length) for length in dut.sequence_lengths]
        ctx.set(dut.issued, 1)
        await ctx.tick()
        ctx.set(dut.issued, 0)
        assert not ctx.get(dut.running) and not ctx.get(dut.status.valid)
        ctx.set(dut.finished, 1)
        await ctx.tick()
        ctx.set(dut.finished, 0)
        status, _ = await get(ctx, dut.status, 1)
        assert status == [{"error": 0, "refusal": Refusal.NONE, "load_error": 1}]
        # A length beyond the steps: the inputs are drained, then the refusal.
        await put(ctx, dut.command, [{**COMMAND, "weight_set": 0}])
        await put(ctx, dut.lengths, [5, 1])
        await ctx.tick().until(dut.drain)
        await ctx.tick().repeat(3)
        assert ctx.get(dut.drain) and not ctx.get(dut.status.valid)
        ctx.set(dut.drained, 1)
        await ctx.tick()
        ctx.set(dut.drained, 0)
        status, _ = await get(ctx, dut.status, 1)
        assert status == [{"error": 1, "refusal": Refusal.LENGTH, "load_error": 0}]
        assert not ctx.get(dut.running)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    # Five inputs and three units, two a cycle: three and two cycles, the last of each with
    # one term; weight set 3 starts three sets of words (two weights a word) and biases in.
    assert seen["run"] == {"terms": 5, "final_term": 4, "input_cycles": 3,
                           "last_input_cycle": 2, "input_tail": 0b01, "hidden_tail": 0b01,
                           "pass_base": 3 * CONFIG.weight_set_words // 2,
                           "bias_base": 3 * CONFIG.bias_set_words, "r_wait": 1}
    assert seen["lengths"] == [4, 2]
    # The weight set is counted up one a cycle from the command on: with two lengths, three
    # sets take a cycle more than the lengths.
    assert seen["start_cycles"] == 2
