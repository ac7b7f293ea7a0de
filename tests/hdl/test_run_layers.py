"""LayerSequencer against a fake engine: each layer and direction's command, lengths, inputs
read from its bank (backward in a reverse run), ``h0`` offered from its slot, outputs written
to the other bank and final states to ``h_n``, ``engine_owns`` and ``done``."""

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.protocol import RUN_HEADER, RunFlag
from gatework.hdl.gru_layouts import LoadRegion
from gatework.hdl.run import BufferLayout, LayerSequencer
from gatework.hdl.memory import held_read
from gatework.hdl.share import share
from gatework.hdl.walk import WalkReader, WalkUser
from gatework.sim.streams import to_python


CONFIG = BuildConfig(lanes=2, max_input_size=6, max_hidden_size=3, max_batch=2, max_steps=3,
                     max_layers=2, bidirectional=True)


def read_port(m, memory, address, enable, two_cycle_reads):
    """A read port of ``memory`` read as RunMemories reads its own (:func:`held_read`)."""
    port = memory.read_port()
    m.d.comb += [port.addr.eq(address), port.en.eq(enable)]
    return held_read(m, enable, port.data, registered=two_cycle_reads)


def run_layers(config, header, lengths, buffer_init, h0_init, rng, two_cycle_reads, stall):
    """Simulate the sequencer with a fake engine; return what crossed its ports, by run."""
    layout = BufferLayout(config)
    address_bits = layout.address_bits
    count_range = layout.count_range()
    word = signed(config.formats.data.total_bits)
    m = Module()
    m.submodules.walk = walk = WalkReader(count_range, address_bits, range(layout.state_words),
                                          two_cycle_reads=two_cycle_reads)
    m.submodules.layers = dut = LayerSequencer(
        config, walk=WalkUser(count_range, address_bits, range(layout.state_words)),
        address_bits=address_bits, two_cycle_reads=two_cycle_reads)
    m.submodules.buffer = buffer = Memory(shape=word, depth=2 * layout.bank_words,
                                          init=buffer_init)
    m.submodules.h0 = h0 = Memory(shape=word, depth=len(h0_init), init=h0_init)
    m.submodules.h_n = h_n = Memory(shape=word, depth=len(h0_init), init=[])
    share(m, walk, dut.walk)
    share(m, buffer.write_port(), dut.buffer)
    share(m, h_n.write_port(), dut.h_n)
    m.d.comb += [
        dut.buffer_data.eq(read_port(m, buffer, walk.address, walk.advance, two_cycle_reads)),
        dut.h0_data.eq(read_port(m, h0, dut.h0_address, walk.advance, two_cycle_reads)),
    ]
    runs = (2 if header["flags"] & RunFlag.BIDIRECTIONAL else 1) * header["num_layers"]
    batch, steps, hidden = header["batch"], header["steps"], header["hidden_size"]
    seen = {"runs": [], "buffer_writes": [], "h_n_writes": [], "done": [], "owns": []}

    async def testbench(ctx):
        cycle = 0

        async def tick():
            nonlocal cycle
            for port, key in ((dut.buffer, "buffer_writes"), (dut.h_n, "h_n_writes")):
                if ctx.get(port.en):
                    seen[key].append((ctx.get(port.addr), ctx.get(port.data)))
            if ctx.get(dut.done):
                seen["done"].append(cycle)
            seen["owns"].append(ctx.get(dut.engine_owns))
            await ctx.tick()
            cycle += 1

        async def take(stream, count):
            words = []
            while len(words) < count:
                ready = rng.random() >= stall
                ctx.set(stream.ready, ready)
                if ready and ctx.get(stream.valid):
                    words.append(to_python(ctx.get(stream.payload)))
                await tick()
            ctx.set(stream.ready, 0)
            return words

        ctx.set(dut.header.as_value(), int.from_bytes(RUN_HEADER.encode(**header), "little"))
        ctx.set(dut.lengths, lengths + [0] * (config.max_batch - len(lengths)))
        ctx.set(dut.last_step, (steps - 1) * layout.step_stride)
        await tick()
        ctx.set(dut.start, 1)
        await tick()
        ctx.set(dut.start, 0)
        for _ in range(runs):
            run = {"start": cycle}
            run["load"] = []
            # The fake engine takes h0 words (none without use_h0) until the command comes.
            while not ctx.get(dut.command.valid):
                ready = rng.random() >= stall
                ctx.set(dut.load.ready, ready)
                if ready and ctx.get(dut.load.valid):
                    run["load"].append(to_python(ctx.get(dut.load.payload)))
                await tick()
                assert cycle - run["start"] < 1000, "no command came"
            ctx.set(dut.load.ready, 0)
            (run["command"],) = await take(dut.command, 1)
            assert not ctx.get(dut.load.valid)
            run["lengths"] = await take(dut.lengths_out, batch)
            run["x"] = await take(dut.x, steps * batch * run["command"]["input_size"])
            # Every step's states, then the final ones; the engine is never stalled.
            words = [int(value) for value in rng.integers(-0x8000, 0x8000,
                                                          (steps + 1) * batch * hidden)]
            run["o"] = words
            for position, value in enumerate(words):
                while rng.random() < stall:
                    ctx.set(dut.o.valid, 0)
                    await tick()
                final = position >= steps * batch * hidden
                ctx.set(dut.o.valid, 1)
                ctx.set(dut.o.payload, {"data": value, "final": final,
                                        "last": position == len(words) - 1})
                assert ctx.get(dut.o.ready)
                await tick()
            ctx.set(dut.o.valid, 0)
            assert not ctx.get(dut.done)
            ctx.set(dut.status.valid, 1)
            ctx.set(dut.status.payload, {"error": 0, "refusal": 0, "load_error": 0})
            assert ctx.get(dut.status.ready)
            await tick()
            ctx.set(dut.status.valid, 0)
            seen["runs"].append(run)
        for _ in range(8):
            assert not ctx.get(dut.command.valid) and not ctx.get(dut.load.valid)
            await tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return seen


# A build with one direction: a slot per layer, no reverse slot to skip.
FORWARD_ONLY = BuildConfig(lanes=2, max_input_size=6, max_hidden_size=3, max_batch=2,
                           max_steps=3, max_layers=2, bidirectional=False)
CASES = [
    # config, num_layers, direction, D, H, lengths, steps, use_h0, linear_before_reset
    (CONFIG, 2, "bidirectional", 4, 3, [3, 1], 3, True, True),
    (CONFIG, 2, "forward", 3, 2, [2], 3, False, False),
    (CONFIG, 2, "reverse", 2, 3, [1, 3], 3, True, True),
    (CONFIG, 1, "bidirectional", 6, 2, [2, 2], 2, False, True),
    (FORWARD_ONLY, 2, "forward", 5, 3, [1, 2], 2, True, False),
    (FORWARD_ONLY, 2, "reverse", 1, 2, [3], 3, False, True),
]


@pytest.mark.parametrize("two_cycle_reads", [False, True])
@pytest.mark.parametrize("case", CASES,
                         ids=lambda case: f"{case[0].directions}-{case[1]}-{case[2]}")
def test_layers_and_directions_run_in_turn(rng, case, two_cycle_reads):
    config, num_layers, direction, inputs, hidden, lengths, steps, use_h0, linear = case
    layout = BufferLayout(config)
    bidirectional = direction == "bidirectional"
    directions = 2 if bidirectional else 1
    flags = ((RunFlag.BIDIRECTIONAL if bidirectional else 0) |
             (RunFlag.REVERSE if direction == "reverse" else 0) |
             (RunFlag.USE_H0 if use_h0 else 0) |
             (RunFlag.LINEAR_BEFORE_RESET if linear else 0))
    batch = len(lengths)
    header = {"num_layers": num_layers, "flags": flags, "batch": batch, "steps": steps,
              "input_size": inputs, "hidden_size": hidden}
    # Every word random, so that a word read from the wrong place shows.
    buffer = [int(value) for value in rng.integers(-0x8000, 0x8000, 2 * layout.bank_words)]
    h0 = [int(value) for value in rng.integers(-0x8000, 0x8000,
                                               config.weight_sets * layout.state_words)]
    seen = run_layers(config, header, lengths, buffer, h0, rng, two_cycle_reads, stall=0.3)

    model = list(buffer)
    buffer_writes, h_n_writes = [], []
    assert len(seen["runs"]) == num_layers * directions
    for index, run in enumerate(seen["runs"]):
        layer, run_direction = divmod(index, directions)
        reverse = run_direction == 1 if bidirectional else direction == "reverse"
        weight_set = config.weight_set(layer, run_direction)
        layer_inputs = inputs if layer == 0 else directions * hidden
        assert run["command"] == {
            "input_size": layer_inputs, "hidden_size": hidden, "batch": batch,
            "steps": steps, "weight_set": weight_set, "linear_before_reset": int(linear),
            "reverse": int(reverse), "initial_state": int(use_h0), "emit_steps": 1}, index
        assert run["lengths"] == lengths
        # h0 of the run's slot, row by row, into the engine's state memory.
        expected_load = []
        if use_h0:
            for b in range(batch):
                for j in range(hidden):
                    address = b * config.max_hidden_size + j
                    expected_load.append({
                        "region": LoadRegion.STATE, "lane": 0, "address": address,
                        "data": h0[weight_set * layout.state_words + address]})
        assert run["load"] == expected_load, index
        # Inputs time-major in processing order from the layer's bank; outputs to the other.
        in_bank, out_bank = (layer % 2) * layout.bank_words, (1 - layer % 2) * layout.bank_words
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        expected_x = [model[in_bank + t * layout.step_stride + b * layout.features + d]
                      for t in order for b in range(batch) for d in range(layer_inputs)]
        assert run["x"] == expected_x, index
        words = iter(run["o"])
        for t in order:
            for b in range(batch):
                for j in range(hidden):
                    address = (out_bank + t * layout.step_stride + b * layout.features +
                               run_direction * hidden + j)
                    value = next(words)
                    buffer_writes.append((address, value))
                    model[address] = value
        for b in range(batch):
            for j in range(hidden):
                h_n_writes.append((index * layout.state_words + b * config.max_hidden_size + j,
                                   next(words)))
    assert seen["buffer_writes"] == buffer_writes
    assert seen["h_n_writes"] == h_n_writes
    # done with the last status alone; the engine is owned from the start to then.
    last_status = len(seen["owns"]) - 9
    assert seen["done"] == [last_status]
    assert seen["owns"] == [0, 0] + [1] * (last_status - 1) + [0] * 8
