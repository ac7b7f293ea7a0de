"""RunResults with the real ResponseWriter and GLUUnit: the last layer's bank sent ragged and
batch-major (through the GLU when asked), then ``h_n``, byte for byte as golden's transposer
and GLU make them, under random stalls, up to the response's last byte."""

import struct
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.glu import glu_fixed
from gatework.golden.messages import run_response_length
from gatework.golden.protocol import RUN_HEADER, RunFlag
from gatework.golden.transposer import unpack
from gatework.hdl.glu import GLUUnit
from gatework.hdl.response import ResponseWriter
from gatework.hdl.run import BufferLayout, RunResults
from gatework.hdl.memory import held_read
from gatework.hdl.share import share
from gatework.hdl.walk import WalkReader, WalkUser


CONFIG = BuildConfig(lanes=2, max_input_size=6, max_hidden_size=3, max_batch=3, max_steps=4,
                     max_layers=2, bidirectional=True)


def read_port(m, memory, address, enable, two_cycle_reads):
    """A read port of ``memory`` read as RunMemories reads its own (:func:`held_read`)."""
    port = memory.read_port()
    m.d.comb += [port.addr.eq(address), port.en.eq(enable)]
    return held_read(m, enable, port.data, registered=two_cycle_reads)


def send_results(config, runs, buffer_init, h_n_init, rng, two_cycle_reads, stall):
    """Simulate RunResults for each ``(header, lengths, output_bytes, response_length)`` in
    turn; return the bytes of each response and the bytes offered after its end."""
    layout = BufferLayout(config)
    address_bits = layout.address_bits
    count_range = layout.count_range()
    word = signed(config.formats.data.total_bits)
    m = Module()
    m.submodules.walk = walk = WalkReader(count_range, address_bits, range(layout.state_words),
                                          two_cycle_reads=two_cycle_reads)
    m.submodules.results = dut = RunResults(
        config, walk=WalkUser(count_range, address_bits, range(layout.state_words)),
        address_bits=address_bits, output_bytes_width=18)
    m.submodules.buffer = buffer = Memory(shape=word, depth=len(buffer_init), init=buffer_init)
    m.submodules.h_n = h_n = Memory(shape=word, depth=len(h_n_init), init=h_n_init)
    m.submodules.response = response = ResponseWriter(bytes(4))
    m.submodules.glu = glu = GLUUnit(config.formats, max_channels=config.max_hidden_size,
                                     shared_activation=False)
    share(m, walk, dut.walk)
    share(m, SimpleNamespace(glu_input=glu.i, glu_output=glu.o, words=response.words,
                             send=response.send), dut.response)
    response_length = Signal(17)
    m.d.comb += [
        dut.buffer_data.eq(read_port(m, buffer, walk.address, walk.advance, two_cycle_reads)),
        dut.h_n_data.eq(read_port(m, h_n, walk.address, walk.advance, two_cycle_reads)),
        dut.sent.eq(response.sent),
        # The top's: the response's last byte leaves.
        dut.end.eq(response.o.valid & response.o.ready &
                   (response.sent == response_length - 1)),
        glu.channels.eq(dut.header.hidden_size << dut.header.flags.bidirectional >> 1),
    ]
    received = []

    async def testbench(ctx):
        for header, lengths, output_bytes, length in runs:
            ctx.set(dut.header.as_value(), int.from_bytes(RUN_HEADER.encode(**header),
                                                          "little"))
            ctx.set(dut.lengths, lengths + [0] * (config.max_batch - len(lengths)))
            ctx.set(dut.output_bytes, output_bytes)
            ctx.set(response_length, length)
            ctx.set(response.begin, 1)
            await ctx.tick()
            ctx.set(response.begin, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            data, ended = [], False
            for _ in range(40 * length + 200):
                ready = rng.random() >= stall
                ctx.set(response.o.ready, ready)
                if ready and ctx.get(response.o.valid):
                    data.append(ctx.get(response.o.payload))
                    ended = bool(ctx.get(dut.end))
                await ctx.tick()
                if ended:
                    break
            # Some cycles after the end: nothing more is offered.
            after = 0
            for _ in range(20):
                after += ctx.get(response.o.valid)
                await ctx.tick()
            ctx.set(response.o.ready, 0)
            received.append((bytes(data), ended, after))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return received


def expected_response(config, buffer, h_n, header, lengths):
    """Golden's response payload from the buffer's last bank and h_n."""
    layout = BufferLayout(config)
    flags, hidden, num_layers = header["flags"], header["hidden_size"], header["num_layers"]
    directions = 2 if flags & RunFlag.BIDIRECTIONAL else 1
    batch, steps, features = len(lengths), max(lengths), directions * hidden
    # One layer reads bank 0 and writes bank 1, the next writes bank 0 back.
    base = (num_layers % 2) * layout.bank_words
    padded = np.array([[[buffer[base + t * layout.step_stride + b * layout.features + f]
                         for f in range(features)] for b in range(batch)]
                       for t in range(steps)])
    outputs = unpack(padded, np.array(lengths))
    if flags & RunFlag.GLU:
        outputs = glu_fixed(outputs, -1, config.formats)
    words = [] if flags & RunFlag.FINAL_ONLY else outputs.ravel().tolist()
    for row in range(num_layers * directions):
        words += [h_n[row * layout.state_words + b * config.max_hidden_size + j]
                  for b in range(batch) for j in range(hidden)]
    return struct.pack(f"<{len(words)}h", *words)


CASES = [
    # num_layers, direction, H, lengths, final_only, glu
    (1, "forward", 3, [2, 4, 1], False, False),
    (2, "bidirectional", 3, [3, 1], False, False),
    (2, "reverse", 2, [1], False, True),
    (1, "bidirectional", 3, [4, 2, 3], False, True),
    (2, "bidirectional", 2, [2, 3], True, False),
    (1, "forward", 1, [4, 4, 4], True, False),
]


@pytest.mark.parametrize("two_cycle_reads", [False, True])
def test_results_are_the_outputs_ragged_then_h_n(rng, two_cycle_reads):
    config = CONFIG
    layout = BufferLayout(config)
    buffer = [int(value) for value in rng.integers(-0x8000, 0x8000, 2 * layout.bank_words)]
    h_n = [int(value) for value in rng.integers(-0x8000, 0x8000,
                                                config.weight_sets * layout.state_words)]
    runs, expected = [], []
    for num_layers, direction, hidden, lengths, final_only, glu in CASES:
        directions = 2 if direction == "bidirectional" else 1
        flags = ((RunFlag.BIDIRECTIONAL if direction == "bidirectional" else 0) |
                 (RunFlag.REVERSE if direction == "reverse" else 0) |
                 (RunFlag.FINAL_ONLY if final_only else 0) | (RunFlag.GLU if glu else 0))
        header = {"num_layers": num_layers, "flags": flags, "batch": len(lengths),
                  "steps": config.max_steps, "input_size": 1, "hidden_size": hidden}
        length = run_response_length(len(lengths), sum(lengths), num_layers, directions,
                                     hidden, final_only, glu)
        output_bytes = length - 2 * num_layers * directions * len(lengths) * hidden
        runs.append((header, lengths, output_bytes, length))
        expected.append(expected_response(config, buffer, h_n, header, lengths))
        assert len(expected[-1]) == length
    received = send_results(config, runs, buffer, h_n, rng, two_cycle_reads, stall=0.3)
    for case, (data, ended, after), payload in zip(CASES, received, expected, strict=True):
        assert ended, case
        assert data == payload, case
        assert after == 0, case
