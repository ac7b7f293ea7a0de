# amaranth: UnusedElaboratable=no
# (a UART whose divisor is refused is never elaborated)
"""The UART against a bit-level model of an 8N1 line, in the Amaranth simulator."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from gatework.hdl.uart import UARTReceiver, UARTTransmitter
from gatework.sim.streams import run


def line_levels(frames, bit_cycles, *, idle_bits=2.0):
    """Per-cycle levels of a line carrying ``frames``, each ``(byte, stop_level, gap_bits)``:
    a start bit, 8 data bits least significant first, the stop bit, then ``gap_bits`` of
    idle line. ``bit_cycles`` may be fractional: a sender whose baud rate is off."""
    edges = [(0.0, 1)]
    time = idle_bits * bit_cycles
    for byte, stop, gap in frames:
        for level in [0] + [byte >> k & 1 for k in range(8)] + [stop]:
            edges.append((time, level))
            time += bit_cycles
        if gap:
            edges.append((time, 1))
            time += gap * bit_cycles
    edges.append((time, 1))
    time += idle_bits * bit_cycles
    levels, edge = [], 0
    for cycle in range(int(time) + 1):
        while edge + 1 < len(edges) and edges[edge + 1][0] <= cycle:
            edge += 1
        levels.append(edges[edge][1])
    return levels


def decode_line(levels, divisor):
    """Bytes on a recorded line, checked bit for bit against 8N1 at ``divisor`` cycles per
    bit: the line is high between frames, each bit holds for exactly ``divisor`` cycles.
    Returns ``(bytes, start cycles)``."""
    received, starts = [], []
    cycle = 0
    while cycle < len(levels):
        if levels[cycle]:
            cycle += 1
            continue
        assert cycle + 10 * divisor <= len(levels), f"a frame at cycle {cycle} is cut off"
        bits = []
        for bit in range(10):
            levels_of_bit = levels[cycle + bit * divisor:cycle + (bit + 1) * divisor]
            assert len(set(levels_of_bit)) == 1, \
                f"bit {bit} of the frame at cycle {cycle} changes: {levels_of_bit}"
            bits.append(levels_of_bit[0])
        assert bits[0] == 0 and bits[9] == 1, f"bad start or stop bit at cycle {cycle}"
        received.append(sum(bit << k for k, bit in enumerate(bits[1:9])))
        starts.append(cycle)
        cycle += 10 * divisor
    return received, starts


def record_transmitter(divisor, data, *, seed, stall):
    """Send ``data`` through a transmitter; return the line's level at every cycle and the
    cycle each byte was taken."""
    dut = UARTTransmitter(divisor)
    levels, taken = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        rng = random.Random(seed)
        pending = list(data)
        idle_after = 0
        while idle_after < 12 * divisor:
            offered = bool(pending) and rng.random() >= stall
            ctx.set(dut.i.valid, offered)
            if offered:
                ctx.set(dut.i.payload, pending[0])
            _, _, ready, tx = await ctx.tick().sample(dut.i.ready, dut.tx)
            if offered and ready:
                taken.append(len(levels))
                pending.pop(0)
            levels.append(tx)
            idle_after = 0 if pending else idle_after + 1

    sim.add_testbench(bench)
    sim.run()
    return levels, taken


@pytest.mark.parametrize("divisor, stall", [(4, 0.0), (5, 0.5), (1, 0.0)])
def test_transmitter_bit_timing(divisor, stall):
    seed = divisor + int(stall * 10)
    print(f"seed {seed}")
    rng = random.Random(seed)
    data = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80] + [rng.randrange(256) for _ in range(30)]
    levels, taken = record_transmitter(divisor, data, seed=seed, stall=stall)
    received, starts = decode_line(levels, divisor)
    assert received == data
    # The start bit is on the line the cycle after its byte is taken.
    assert starts == [cycle + 1 for cycle in taken]
    if stall == 0:
        # Back to back: each frame follows the last with no idle time.
        assert all(b - a == 10 * divisor for a, b in zip(starts, starts[1:]))


def simulate_receiver(divisor, levels, *, seed, ready_stall=0.0, hold_ready_low=()):
    """Drive ``rx`` with ``levels``; return the bytes taken from ``o`` and the cycles at
    which ``error`` and ``overrun`` were high. ``hold_ready_low`` is a range of cycles in
    which ``o`` is not read."""
    dut = UARTReceiver(divisor)
    received, errors, overruns = [], [], []
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def bench(ctx):
        rng = random.Random(seed)
        for cycle, level in enumerate(levels):
            ctx.set(dut.rx, level)
            ready = cycle not in hold_ready_low and rng.random() >= ready_stall
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload, error, overrun = await ctx.tick().sample(
                dut.o.valid, dut.o.payload, dut.error, dut.overrun)
            if valid and ready:
                received.append(payload)
            if error:
                errors.append(cycle)
            if overrun:
                overruns.append(cycle)

    sim.add_testbench(bench)
    sim.run()
    return received, errors, overruns


@pytest.mark.parametrize("divisor, baud_error", [(4, 0.0), (8, 0.03), (8, -0.03), (7, 0.0),
                                                 (2, 0.0)])
def test_receiver_decodes_model_line(divisor, baud_error):
    seed = 100 + divisor + int(baud_error * 100)
    print(f"seed {seed}")
    rng = random.Random(seed)
    data = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(40)]
    # Back to back mostly, some idle gaps, some of them shorter than a bit.
    frames = [(byte, 1, rng.choice([0, 0, 0, 0.4, 1, 3])) for byte in data]
    levels = line_levels(frames, divisor * (1 + baud_error))
    received, errors, overruns = simulate_receiver(divisor, levels, seed=seed,
                                                   ready_stall=0.3)
    assert received == data
    assert errors == [] and overruns == []


def test_receiver_drops_bad_stop_bit_and_recovers():
    seed = 7
    print(f"seed {seed}")
    rng = random.Random(seed)
    divisor = 6
    data = [rng.randrange(256) for _ in range(24)]
    bad = {3, 10, 11, 20}
    # A low stop bit, then the line high for a bit: the next start bit is found again.
    frames = [(byte, 0 if index in bad else 1, 1 if index in bad else rng.choice([0, 2]))
              for index, byte in enumerate(data)]
    levels = line_levels(frames, divisor)
    received, errors, overruns = simulate_receiver(divisor, levels, seed=seed)
    assert received == [byte for index, byte in enumerate(data) if index not in bad]
    assert len(errors) == len(bad)
    assert overruns == []


def test_receiver_ignores_glitches_and_recovers_from_a_break():
    divisor = 8
    # A glitch, shorter than half a bit: no start bit (else a byte 0xFF would follow).
    levels = [1] * 40 + [0] * 2 + [1] * (12 * divisor)
    # A break, the line low for 25 bits: one framing error.
    levels += [0] * (25 * divisor) + [1] * (2 * divisor)
    levels += line_levels([(0x3C, 1, 0), (0xC3, 1, 0)], divisor)
    received, errors, overruns = simulate_receiver(divisor, levels, seed=0)
    assert received == [0x3C, 0xC3]
    assert len(errors) == 1
    assert overruns == []


def test_receiver_keeps_unread_byte_and_flags_overrun():
    divisor = 4
    data = [0x11, 0x22, 0x33, 0x44]
    levels = line_levels([(byte, 1, 0) for byte in data], divisor)
    # The frames start 2 bits in and end 10 bits apart. Not read until the middle of the
    # fourth frame: the first byte waits, the next two are lost, the fourth arrives.
    received, errors, overruns = simulate_receiver(
        divisor, levels, seed=0, hold_ready_low=range((2 + 34) * divisor))
    assert received == [0x11, 0x44]
    assert len(overruns) == 2
    assert errors == []


def test_divisor_is_checked():
    with pytest.raises(ValueError, match="divisor must be an int >= 2"):
        UARTReceiver(1)
    with pytest.raises(ValueError, match="divisor must be an int >= 1"):
        UARTTransmitter(0)


class Loop(wiring.Component):
    """A transmitter's line straight into a receiver."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, divisor):
        self._divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.transmitter = transmitter = UARTTransmitter(self._divisor)
        m.submodules.receiver = receiver = UARTReceiver(self._divisor)
        wiring.connect(m, wiring.flipped(self.i), transmitter.i)
        wiring.connect(m, receiver.o, wiring.flipped(self.o))
        m.d.comb += receiver.rx.eq(transmitter.tx)
        return m


@pytest.mark.parametrize("divisor", [3, 4, 9])
def test_transmitter_to_receiver(divisor):
    seed = 200 + divisor
    print(f"seed {seed}")
    rng = random.Random(seed)
    data = [0x00, 0xFF] + [rng.randrange(256) for _ in range(60)]
    dut = Loop(divisor)
    # Stalls on the output shorter than a frame lose nothing.
    (received,), cycles = run(dut, inputs=[(dut.i, data)], outputs=[(dut.o, len(data))],
                              seed=seed, stall=0.2, timeout=20 * divisor * len(data))
    assert received == data
    assert cycles <= 10 * divisor * len(data) * 1.5
