"""The activation unit against golden's table, in the Amaranth simulator."""

import numpy as np
import pytest

from gatework.golden.formats import DEFAULT_FORMATS
from gatework.hdl.activation import Activation, Function, SharedActivation
from gatework.sim.streams import run


# The default table, and one with another input range, output format and segment count.
FORMATS = {
    "default": DEFAULT_FORMATS,
    "q6.12-q2.14-128": DEFAULT_FORMATS.replace(preactivation="q6.12", activation="q2.14",
                                               table_segments_log2=7),
}


def corner_codes(table):
    """Codes where an implementation is most likely to go wrong, for either function.

    0, +-1 and the format's ends; both sides of every segment boundary, for tanh's ``k``
    offset bits and sigmoid's ``k + 1``, up to the end entry and one segment past it; and per
    segment the first offset whose interpolation is an exact rounding tie.
    """
    fmt = table.input_format
    magnitudes = {0, 1, fmt.max_int - 1, fmt.max_int, -fmt.min_int}
    for offset_bits in (table.offset_bits, table.offset_bits + 1):
        starts = np.arange(table.segments + 2) << offset_bits
        magnitudes.update((starts[:, None] + [-1, 0, 1]).ravel().tolist())
        offsets = np.arange(1 << offset_bits)
        ties = (table.slopes[:, None] * offsets) % (1 << offset_bits) == 1 << (offset_bits - 1)
        for segment in np.flatnonzero(ties.any(axis=1)):
            magnitudes.add(int(starts[segment] + np.argmax(ties[segment])))
    codes = {sign * code for code in magnitudes for sign in (1, -1)}
    return np.array(sorted(c for c in codes if fmt.min_int <= c <= fmt.max_int))


def truncating_tanh(table, codes, offset_bits):
    """Golden's tanh steps without the rounding constant: a plausible bug to miss."""
    values = np.append(table.values, table.end_value)
    slopes = np.append(table.slopes, 0)
    magnitude = np.abs(codes)
    index = np.minimum(magnitude >> offset_bits, table.segments)
    offset = magnitude & ((1 << offset_bits) - 1)
    y = values[index] + ((slopes[index] * offset) >> offset_bits)
    return np.where(codes < 0, -y, y)


@pytest.mark.parametrize("stall, lut_multipliers", [(0.0, False), (0.3, False), (0.0, True)])
@pytest.mark.parametrize("name", list(FORMATS))
def test_activation_matches_golden(name, stall, lut_multipliers):
    seed = 11 + len(name) + int(stall * 10)
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    formats = FORMATS[name]
    table, fmt = formats.table, formats.preactivation
    corners = corner_codes(table)
    random_codes = rng.integers(fmt.min_int, fmt.max_int, 4000, endpoint=True)
    # Every corner under both functions, then random codes under random functions, so that
    # the two functions also alternate from one cycle to the next.
    codes = np.concatenate([corners, corners, random_codes])
    is_tanh = np.concatenate([np.zeros(len(corners), bool), np.ones(len(corners), bool),
                              rng.integers(0, 2, len(random_codes)).astype(bool)])
    expected = np.where(is_tanh, table.tanh(codes), table.sigmoid(codes))
    # The sample is one that a missing rounding constant, or a swapped function, would fail.
    assert not np.array_equal(truncating_tanh(table, corners, table.offset_bits),
                              table.tanh(corners))
    assert not np.array_equal(np.where(is_tanh, table.sigmoid(codes), table.tanh(codes)),
                              expected)

    dut = Activation(formats, lut_multipliers=lut_multipliers)
    payloads = [{"value": int(code), "function": Function.TANH if tanh else Function.SIGMOID}
                for code, tanh in zip(codes, is_tanh)]
    (received,), cycles = run(dut, inputs=[(dut.i, payloads)], outputs=[(dut.o, len(codes))],
                              seed=seed, stall=stall, name=f"activation-{name}-{stall}")
    mismatches = np.flatnonzero(np.array(received) != expected)
    assert mismatches.size == 0, (
        f"{mismatches.size} mismatches, first: code {codes[mismatches[0]]} "
        f"{'tanh' if is_tanh[mismatches[0]] else 'sigmoid'}: got {received[mismatches[0]]}, "
        f"golden {expected[mismatches[0]]}")
    if stall == 0:
        # One result per cycle: the last leaves the pipeline's latency after the last input.
        assert cycles <= len(codes) + Activation.latency


def test_latency_and_rom_size_are_as_documented():
    table = DEFAULT_FORMATS.table
    dut = Activation()
    # The table's entries and the end entry, each a value and a slope.
    assert dut.rom_bits == table.rom_bits() + table.output_format.total_bits + table.slope_bits
    (received,), cycles = run(dut, inputs=[(dut.i, [{"value": 3 << 13,
                                                     "function": Function.TANH}])],
                              outputs=[(dut.o, 1)])
    # The consumer counts the clock edge of the input transfer as its first cycle.
    assert cycles == 1 + Activation.latency
    assert received == table.tanh([3 << 13]).tolist()


def test_a_shared_unit_goes_to_the_glu_only_after_the_engines_last_values():
    from amaranth.sim import Simulator

    dut = SharedActivation(DEFAULT_FORMATS)

    async def testbench(ctx):
        ctx.set(dut.engine.i.valid, 1)
        ctx.set(dut.engine.i.payload.value, 123)
        ctx.set(dut.glu.i.valid, 1)
        ctx.set(dut.glu.i.payload.value, -7)
        ctx.set(dut.unit.i.ready, 1)
        ctx.set(dut.unit.o.valid, 1)
        ctx.set(dut.unit.o.payload, 55)
        ctx.set(dut.engine_owns, 1)
        await ctx.tick()
        # The engine's: its requests reach the unit, the GLU's wait, answers go to the engine.
        assert ctx.get(dut.unit.i.valid) and ctx.get(dut.unit.i.payload.value) == 123
        assert ctx.get(dut.engine.i.ready) and not ctx.get(dut.glu.i.ready)
        assert ctx.get(dut.engine.o.valid) and not ctx.get(dut.glu.o.valid)
        ctx.set(dut.engine_owns, 0)
        # The engine's last values are still in the unit for its latency: nobody's turn.
        for _ in range(Activation.latency):
            assert not ctx.get(dut.glu.i.ready) and not ctx.get(dut.glu.o.valid)
            assert not ctx.get(dut.unit.i.valid)
            await ctx.tick()
        assert ctx.get(dut.glu.i.ready) and ctx.get(dut.glu.o.valid)
        assert ctx.get(dut.glu.o.payload) == 55
        assert ctx.get(dut.unit.i.valid) and ctx.get(dut.unit.i.payload.value) == -7

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
