"""Fixed-point arithmetic in gateware against golden, in the Amaranth simulator."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from gatework.golden.fixed import QFormat, rescale as golden_rescale
from gatework.hdl.arith import (MultiplyAccumulate, Rescale, SequentialMultiplier, multiply,
                                pipelined_product)
from gatework.sim.streams import run


@pytest.mark.parametrize("input_width, from_fraction, fmt", [
    (40, 25, "q4.12"), (24, 16, "q4.12"), (24, 13, "q5.13"), (20, 8, "q4.12"),
    (12, 3, "q8.4")])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_rescale_matches_golden(input_width, from_fraction, fmt, stall):
    seed = 5 + input_width
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fmt = QFormat.parse(fmt)
    low, high = -(1 << (input_width - 1)), (1 << (input_width - 1)) - 1
    # Random values of every magnitude, the extremes, and exact rounding ties.
    values = np.concatenate([
        rng.integers(low, high, 150, endpoint=True),
        (rng.integers(-1000, 1000, 50) << max(from_fraction - fmt.fraction_bits, 0)) +
        (1 << max(from_fraction - fmt.fraction_bits - 1, 0)),
        [low, high, 0, -1, 1]])
    values = np.clip(values, low, high)
    expected = golden_rescale(values, from_fraction, fmt)
    dut = Rescale(input_width, from_fraction, fmt)
    (received,), cycles = run(dut, inputs=[(dut.i, values.tolist())],
                              outputs=[(dut.o, len(values))], seed=seed, stall=stall)
    assert received == expected.tolist()
    if stall == 0:
        assert cycles <= len(values) + 2


@pytest.mark.parametrize("data_format, weight_format, terms", [
    ("q4.12", "q3.13", 130), ("q4.12", "q2.14", 7), ("q8.8", "q1.7", 33)])
@pytest.mark.parametrize("stall", [0.0, 0.25])
def test_multiply_accumulate_is_exact(data_format, weight_format, terms, stall):
    seed = 17 + terms
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    data_format, weight_format = QFormat.parse(data_format), QFormat.parse(weight_format)
    dut = MultiplyAccumulate(data_format, weight_format, terms)
    operands, expected = [], []
    # Sums of random lengths, including the worst case: every operand at its most negative.
    lengths = [terms, 1, *rng.integers(1, terms, 6, endpoint=True).tolist()]
    for index, length in enumerate(lengths):
        if index == 0:
            a = np.full(length, data_format.min_int)
            b = np.full(length, weight_format.min_int)
        else:
            a = rng.integers(data_format.min_int, data_format.max_int, length, endpoint=True)
            b = rng.integers(weight_format.min_int, weight_format.max_int, length,
                             endpoint=True)
        expected.append(int(np.dot(a.astype(object), b.astype(object))))
        for k in range(length):
            operands.append({"data": int(a[k]), "weight": int(b[k]),
                             "first": int(k == 0), "last": int(k == length - 1)})
    (received,), cycles = run(dut, inputs=[(dut.i, operands)],
                              outputs=[(dut.o, len(lengths))], seed=seed, stall=stall)
    assert received == expected
    if stall == 0:
        assert cycles <= len(operands) + 3


@pytest.mark.parametrize("a_signed", [False, True])
@pytest.mark.parametrize("b_signed", [False, True])
@pytest.mark.parametrize("a_bits, b_bits", [(5, 4), (4, 5), (6, 6), (3, 1), (1, 1)])
def test_multiply_in_logic_cells_is_bit_identical(a_bits, b_bits, a_signed, b_signed):
    """Every pair of operands: the shift-and-add form has the value and shape of a * b."""
    a = Signal(signed(a_bits) if a_signed else unsigned(a_bits))
    b = Signal(signed(b_bits) if b_signed else unsigned(b_bits))
    product = multiply(a, b, lut=True)
    assert product.shape() == (a * b).shape()
    assert repr(multiply(a, b, lut=False)) == repr(a * b)
    sim = Simulator(Module())
    wrong = []

    def codes(shape):
        if shape.signed:
            return range(-(1 << (shape.width - 1)), 1 << (shape.width - 1))
        return range(1 << shape.width)

    async def testbench(ctx):
        for x in codes(a.shape()):
            for y in codes(b.shape()):
                ctx.set(a, x)
                ctx.set(b, y)
                if ctx.get(product) != x * y:
                    wrong.append((x, y, ctx.get(product)))
    sim.add_testbench(testbench)
    sim.run()
    assert wrong == []


def test_sequential_multiplier_is_exact_and_flags_overflow():
    """Every pair of 5-bit operands: the product or its overflow, in 1 + b.bit_length()."""
    width = 5
    dut = SequentialMultiplier(width)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    results = []

    async def testbench(ctx):
        for a in range(1 << width):
            for b in range(1 << width):
                ctx.set(dut.start, 1)
                ctx.set(dut.a, a)
                ctx.set(dut.b, b)
                await ctx.tick()
                ctx.set(dut.start, 0)
                # Operands that change after the start must not matter.
                ctx.set(dut.a, ~a)
                ctx.set(dut.b, ~b)
                cycles = 1
                while ctx.get(dut.busy):
                    await ctx.tick()
                    cycles += 1
                results.append((a, b, ctx.get(dut.product), ctx.get(dut.overflow), cycles))
    sim.add_testbench(testbench)
    sim.run()
    for a, b, product, overflow, cycles in results:
        assert overflow == (a * b >= 1 << width), (a, b)
        if not overflow:
            assert product == a * b, (a, b)
        assert cycles == 1 + b.bit_length(), (a, b)


def test_vcd_on_demand(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWORK_VCD", str(tmp_path))
    dut = Rescale(20, 14, "q4.12")
    run(dut, inputs=[(dut.i, [1, 2, 3])], outputs=[(dut.o, 3)], name="waves")
    files = list(tmp_path.glob("test_vcd_on_demand*waves.vcd"))
    assert len(files) == 1
    assert "$var" in files[0].read_text()


class _Product(wiring.Component):
    """:func:`pipelined_product` of two signed operands, for ``platform``."""

    def __init__(self, a_bits=16, b_bits=16):
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)), "enable": In(1),
                          "product": Out(signed(a_bits + b_bits))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.product.eq(pipelined_product(m, self.a, self.b, enable=self.enable,
                                                      platform=platform, name="lane"))
        return m


def test_pipelined_product_takes_operands_and_product_where_enabled():
    seed = 23
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    dut = _Product()
    cycles = 300
    a = rng.integers(-(1 << 15), 1 << 15, cycles).tolist()
    b = rng.integers(-(1 << 15), 1 << 15, cycles).tolist()
    a[:2], b[:2] = [-(1 << 15)] * 2, [-(1 << 15), (1 << 15) - 1]      # the extremes
    enable = (rng.random(cycles) < 0.7).tolist()
    mismatches = []

    async def bench(ctx):
        operands, product = (0, 0), 0      # the registers of the model
        for cycle in range(cycles):
            ctx.set(dut.a, a[cycle])
            ctx.set(dut.b, b[cycle])
            ctx.set(dut.enable, enable[cycle])
            await ctx.tick()
            if enable[cycle]:
                product, operands = operands[0] * operands[1], (a[cycle], b[cycle])
            if ctx.get(dut.product) != product:
                mismatches.append(cycle)

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    assert mismatches == []
