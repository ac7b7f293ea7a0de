"""LoadCommand: LOAD requests made with golden's encoder, as the accelerator top drives them.

A sequence of good and refused LOADs into one harness (a request reader, the size multiplier
and the weight slots shared with the command, an ``h0`` memory, and the engine's load register
emptied after random delays): each answer's status and drain, the load words against
:func:`~gatework.hdl.gru.engine_load_words`, the ``h0`` memory's words, the slots' forget and
record, and the ``NOT_LOADED`` answer of a RUN after each LOAD.
"""

import dataclasses
import random

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.gru import GRUDirectionWeights
from gatework.golden.messages import LoadRequest, encode_load_request
from gatework.golden.protocol import LOAD_HEADER, Status
from gatework.hdl.arith import SequentialMultiplier
from gatework.hdl.gru import LoadRegion, engine_load_words
from gatework.hdl.load_command import LoadCommand
from gatework.hdl.request import RequestReader
from gatework.hdl.share import share
from gatework.hdl.slots import WeightSlots
from gatework.sim.streams import put, to_python

from command_harness import harness_members, header_states, shared_request


CONFIG = BuildConfig(lanes=2, max_input_size=4, max_hidden_size=3, max_batch=2, max_steps=3,
                     max_layers=2, bidirectional=True)
MAX_PAYLOAD = 256
SIZES_WIDTH = 17
H0_ADDRESS_BITS = 5
#: What the h0 memory holds where no LOAD wrote.
UNWRITTEN = 0x7ABC
#: The RUN whose NOT_LOADED answer is asked after each LOAD: every slot, with h0.
RUN = {"num_layers": 2, "bidirectional": 1, "input_size": 3, "hidden_size": 2,
       "linear_before_reset": 1, "use_h0": 1, "batch": 2}


class LoadHarness(wiring.Component):
    """A request's payload into a :class:`LoadCommand`, as the top drives it; the engine's
    load register, emptied by ``empty``. ``idle``: ready for the next request."""

    def __init__(self, config):
        self._config = config
        self.request = RequestReader(MAX_PAYLOAD)
        self.sizes = SequentialMultiplier(SIZES_WIDTH)
        self.slots = WeightSlots(config)
        self.h0 = Memory(shape=signed(config.formats.data.total_bits),
                         depth=1 << H0_ADDRESS_BITS, init=[UNWRITTEN] * (1 << H0_ADDRESS_BITS))
        self.command = LoadCommand(config, MAX_PAYLOAD, sizes_width=SIZES_WIDTH,
                                   h0_address_bits=H0_ADDRESS_BITS)
        super().__init__(harness_members(MAX_PAYLOAD, empty=In(1), full=Out(1)))

    def elaborate(self, platform):
        m = Module()
        request, sizes, slots, command = self.request, self.sizes, self.slots, self.command
        m.submodules.request, m.submodules.sizes = request, sizes
        m.submodules.slots, m.submodules.command = slots, command
        m.submodules.h0 = self.h0
        own_request = shared_request(m, self, request, command, MAX_PAYLOAD)
        share(m, sizes, command.sizes)
        share(m, slots, command.slots)
        share(m, self.h0.write_port(), command.h0)
        m.d.comb += command.header.eq(request.header(LOAD_HEADER))

        # The engine's load register: it takes a word only when empty.
        m.d.comb += command.load.ready.eq(~self.full)
        with m.If(self.empty):
            m.d.sync += self.full.eq(0)
        with m.If(command.load.valid):
            m.d.sync += self.full.eq(1)

        with m.FSM():
            header_states(m, self, request, own_request, command, LOAD_HEADER)
            with m.State("COMMAND"):
                with m.If(command.done):
                    with m.If(command.drain):
                        m.next = "DRAIN"
                    with m.Else():
                        m.next = "IDLE"
        return m


def random_cell(rng, input_size, hidden_size, bias=True):
    def codes(*shape):
        return rng.integers(-0x8000, 0x8000, shape)
    biases = (codes(3 * hidden_size), codes(3 * hidden_size)) if bias else ()
    return GRUDirectionWeights(codes(3 * hidden_size, input_size),
                               codes(3 * hidden_size, hidden_size), *biases)


def payload_order(config, cell, slot):
    """:func:`engine_load_words`'s weight and bias words, in the order the payload carries
    them: every row's input weights, then every row's recurrent weights, then ``bias_ih``,
    then ``bias_hh`` (engine_load_words lists each row's together)."""
    words = [word for word in engine_load_words(config, cell, slot)
             if word["region"] != LoadRegion.STATE]
    inputs, hidden = cell.input_size, cell.hidden_size
    row_words = inputs + hidden + 2
    rows = [words[row * row_words:(row + 1) * row_words] for row in range(3 * hidden)]
    return ([word for row in rows for word in row[:inputs]] +
            [word for row in rows for word in row[inputs:inputs + hidden]] +
            [row[-2] for row in rows] + [row[-1] for row in rows])


def model_not_loaded(config, records, run):
    """docs/protocol.md's NOT_LOADED for ``run``, from the slots' ``records``."""
    directions = 2 if run["bidirectional"] else 1
    for layer in range(run["num_layers"]):
        for direction in range(directions):
            record = records.get(layer * config.directions + direction)
            expected_input = run["input_size"] if layer == 0 else directions * run["hidden_size"]
            if (record is None or record["input_size"] != expected_input or
                    record["hidden_size"] != run["hidden_size"] or
                    record["linear_before_reset"] != run["linear_before_reset"] or
                    (run["use_h0"] and (not record["has_h0"] or
                                        record["batch"] != run["batch"]))):
                return True
    return False


class Case:
    """One LOAD: its payload and what it must do."""

    def __init__(self, config, rng, layer, direction, input_size, hidden_size, *, bias=True,
                 batch=None, linear_before_reset=True, status=Status.OK, drain=0,
                 edit=None):
        self.cell = random_cell(rng, input_size, hidden_size, bias)
        self.h0 = None if batch is None else rng.integers(-0x8000, 0x8000, (batch, hidden_size))
        self.payload = encode_load_request(LoadRequest(layer, direction, self.cell,
                                                       linear_before_reset, self.h0))
        if edit is not None:
            self.payload = edit(self.payload)
        self.status, self.drain = status, drain
        self.slot = layer * config.directions + direction
        # The sizes fit the build and the header is good: the slot's weights are overwritten
        # as they arrive, whatever the answer at the end.
        self.in_build = (drain == 0 and layer < config.max_layers and
                         direction < config.directions and
                         input_size <= config.max_input_size and
                         hidden_size <= config.max_hidden_size)
        self.entry = {"input_size": input_size, "hidden_size": hidden_size,
                      "linear_before_reset": int(linear_before_reset),
                      "has_h0": int(batch is not None), "batch": batch or 0}


def cases(config, rng):
    def extra_bytes(payload):
        return payload + b"\x01\x02"

    def truncated(payload):
        return payload[:40]

    def reserved_flag(payload):
        flags = LOAD_HEADER.offset("flags")
        return payload[:flags] + bytes([payload[flags] | 0x08]) + payload[flags + 1:]

    return [
        Case(config, rng, 0, 0, 3, 2, batch=2),
        Case(config, rng, 0, 1, 3, 2, bias=False, batch=2),
        Case(config, rng, 1, 0, 4, 2, batch=2),
        Case(config, rng, 1, 1, 4, 2, batch=2),
        # Too short for its weights: refused at once, the slot untouched, the rest drained.
        Case(config, rng, 1, 1, 4, 2, batch=2, edit=truncated, status=Status.MALFORMED,
             drain=1),
        # Beyond the build: the weights go nowhere.
        Case(config, rng, 2, 0, 3, 2, batch=2, status=Status.BEYOND_MAXIMA),
        Case(config, rng, 0, 0, 5, 2, status=Status.BEYOND_MAXIMA),
        # Bytes past the initial states: known at the end only, the slot emptied.
        Case(config, rng, 0, 1, 3, 2, batch=2, edit=extra_bytes, status=Status.MALFORMED),
        Case(config, rng, 0, 1, 3, 2, batch=2),
        # More initial states than the build holds: known at the end only, the slot emptied.
        Case(config, rng, 1, 0, 4, 2, batch=3, status=Status.BEYOND_MAXIMA),
        Case(config, rng, 1, 0, 4, 2, batch=2, linear_before_reset=False),
        # The largest sizes, one row of initial states.
        Case(config, rng, 0, 0, 4, 3, batch=1),
        Case(config, rng, 0, 0, 3, 2, batch=2, edit=reserved_flag, status=Status.MALFORMED,
             drain=1),
        Case(config, rng, 1, 0, 4, 2, bias=False, batch=2),
        Case(config, rng, 0, 0, 3, 2, batch=2),
    ]


@pytest.mark.parametrize("lane_width", [1, 2])
def test_loads_against_the_engines_layout_and_the_protocol(lane_width, rng, seed):
    config = dataclasses.replace(CONFIG, lane_width=lane_width)
    requests = cases(config, rng)
    dut = LoadHarness(config)
    command, slots = dut.command, dut.slots
    events = [{"answers": [], "words": [], "forget": [], "record": [], "not_loaded": None}
              for _ in requests]
    memory = {}

    async def testbench(ctx):
        stalls = random.Random(seed)
        for name, value in RUN.items():
            ctx.set(getattr(slots.run, name), value)
        for index, case in enumerate(requests):
            ctx.set(dut.length, len(case.payload))
            ctx.set(dut.begin, 1)
            await ctx.tick()
            ctx.set(dut.begin, 0)
            await put(ctx, dut.payload, [{"data": byte, "last": 0} for byte in case.payload],
                      rng=stalls, stall=0.2)
            for _ in range(1000):
                if ctx.get(dut.idle):
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"LOAD {index} was never answered")
            events[index]["not_loaded"] = ctx.get(slots.not_loaded)
        for address in range(1 << H0_ADDRESS_BITS):
            memory[address] = ctx.get(dut.h0.data[address])

    async def monitor(ctx):
        rng = random.Random(seed + 1)
        index = 0
        while True:
            # The load register empties after a random delay.
            ctx.set(dut.empty, ctx.get(dut.full) and rng.random() < 0.4)
            (_, _, idle, full, done, status, drain, valid, word, forget, record, slot,
             entry) = await ctx.tick().sample(
                dut.idle, dut.full, command.done, command.status, command.drain,
                command.load.valid, command.load.payload, slots.forget, slots.record,
                slots.slot, slots.entry)
            if idle:
                continue
            seen = events[index]
            if valid:
                assert not full, "a load word offered while the register is full"
                word = to_python(word)
                seen["words"].append({**word, "region": LoadRegion(word["region"])})
            if forget:
                seen["forget"].append(slot)
            if record:
                seen["record"].append((slot, to_python(entry)))
            if done:
                seen["answers"].append((Status(status), drain))
                index += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.add_testbench(monitor, background=True)
    sim.run()

    records = {}
    expected_memory = {address: UNWRITTEN for address in range(1 << H0_ADDRESS_BITS)}
    rows = config.max_batch * config.max_hidden_size
    for index, (case, seen) in enumerate(zip(requests, events)):
        message = f"LOAD {index}"
        assert seen["answers"] == [(case.status, case.drain)], message
        expected_words = payload_order(config, case.cell, case.slot) if case.in_build else []
        assert seen["words"] == expected_words, message
        assert seen["forget"] == ([case.slot] if case.in_build else []), message
        ok = case.status == Status.OK
        assert seen["record"] == ([(case.slot, case.entry)] if ok else []), message
        if case.in_build:
            records.pop(case.slot, None)
            # A refused LOAD's slot is empty: what it left in h0 does not matter.
            base = case.slot * rows
            for address in range(base, base + rows):
                expected_memory[address] = None
        if ok:
            records[case.slot] = case.entry
            if case.h0 is not None:
                for b, state in enumerate(case.h0):
                    for j, value in enumerate(state):
                        expected_memory[base + b * config.max_hidden_size + j] = int(value)
        assert seen["not_loaded"] == model_not_loaded(config, records, RUN), message
    assert {address: value for address, value in memory.items()
            if expected_memory[address] is not None} == {
        address: value for address, value in expected_memory.items() if value is not None}
    # The runs asked both ways.
    assert {seen["not_loaded"] for seen in events} == {0, 1}
