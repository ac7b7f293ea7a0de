"""The GRU engine's scheduler on its own: the order of terms and the waits of a chasing job."""

from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.hdl.gru_layouts import Gate, Kind
from gatework.hdl.gru_scheduler import JobScheduler


INPUTS, HIDDEN, LANES, TERMS = 2, 3, 2, 5


def expected_job(sequence, read_bank, h_valid):
    """Each pass of a job, gate after gate and group after group, term after term."""
    terms = []
    for gate in Gate:
        for group in range(2):
            pass_index = gate.value * 2 + group
            for k in range(TERMS):
                terms.append({
                    "kind": Kind(gate.value), "group_base": group * LANES, "first": k == 0,
                    "split": k == INPUTS, "last": k == TERMS - 1, "use_input": k < INPUTS,
                    "restart": gate == Gate.N, "state_row": sequence * HIDDEN,
                    "read_bank": read_bank, "h_valid": h_valid,
                    "weight_address": pass_index * TERMS + k,
                    "bias_address": 2 * pass_index + (k != 0)})
    return terms


def test_jobs_issue_back_to_back_and_a_chasing_job_waits_for_the_state():
    config = BuildConfig(lanes=LANES, max_input_size=INPUTS, max_hidden_size=HIDDEN,
                         max_batch=2, max_steps=2, max_layers=1, bidirectional=False)
    dut = JobScheduler(config)
    seen = {}

    async def cycle(ctx):
        """This cycle's issued term (None: none) and whether the slot is freed."""
        issued, free = ctx.get(dut.issued), ctx.get(dut.free_slot)
        term = None
        if issued.valid:
            term = {name: getattr(issued, name)
                    for name in ("kind", "group_base", "first", "split", "last", "use_input",
                                 "restart", "state_row", "read_bank", "h_valid")}
            term = {name: value if name == "kind" else int(value)
                    for name, value in term.items()}
            term["weight_address"] = ctx.get(dut.weight_address[0])
            term["bias_address"] = ctx.get(dut.bias_address)
        await ctx.tick()
        return term, free

    async def testbench(ctx):
        ctx.set(dut.run.command, {"input_size": INPUTS, "hidden_size": HIDDEN, "batch": 2,
                                  "steps": 2, "linear_before_reset": 1})
        ctx.set(dut.run.terms, TERMS)
        ctx.set(dut.run.final_term, TERMS - 1)
        for length, value in zip(dut.lengths, [2, 1]):
            ctx.set(length, value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.running, 1)
        ctx.set(dut.vector_ready, 1)
        ctx.set(dut.advance, 1)
        # Step 0: both sequences' jobs, 30 terms each, with no gap.
        results = [await cycle(ctx) for _ in range(60)]
        seen["step_0"] = [term for term, _ in results]
        seen["freed"] = [index for index, (_, free) in enumerate(results) if free]
        # Step 1, sequence 0: the job of step 0 is still in flight, so this one chases it.
        # Its input terms issue; each recurrent term waits for that unit's state.
        results = [await cycle(ctx) for _ in range(5)]
        seen["chasing"] = [term["use_input"] for term, _ in results if term is not None]
        ctx.set(dut.state_cycle_written, 1)
        await ctx.tick()
        ctx.set(dut.state_cycle_written, 0)
        results = [await cycle(ctx) for _ in range(5)]
        seen["one_unit_written"] = [term is not None for term, _ in results]
        # The older job done: the rest issues at once.
        ctx.set(dut.job_done, 1)
        await ctx.tick()
        ctx.set(dut.job_done, 0)
        results = [await cycle(ctx) for _ in range(27)]
        seen["rest"] = [term for term, _ in results]
        # Sequence 1 is past its length at step 1: one SKIP token, its slot freed.
        term, free = await cycle(ctx)
        seen["skip"] = (term["kind"], free)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert seen["step_0"] == expected_job(0, 0, 0) + expected_job(1, 0, 0)
    assert seen["freed"] == [29, 59]
    assert seen["chasing"] == [1, 1]
    assert seen["one_unit_written"] == [True, False, False, False, False]
    # The chasing job reads the bank its sequence's job of step 0 wrote, a started state.
    assert seen["rest"] == expected_job(0, 1, 1)[3:]
    assert seen["skip"] == (Kind.SKIP, 1)
