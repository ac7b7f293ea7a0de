"""Register copies (gatework.hdl.fanout): in simulation each copy holds the value one register
would; in synthesis they stay apart only with KEEP_REPLICAS, which board builds run."""

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from gatework.boards.synthesis import synthesize
from gatework.hdl.fanout import replica_of, replicas


class _Copies(wiring.Component):
    """Four copies of an 8-bit register with an enable, each read by its own output."""

    value: In(8)
    enable: In(1)
    outputs: Out(8).array(4)

    def elaborate(self, platform):
        m = Module()
        self.copies = replicas(m, self.value, 4, name="value", enable=self.enable)
        for k, copy in enumerate(self.copies):
            # A different function of each copy, so no output is another's.
            m.d.comb += self.outputs[k].eq(copy + k)
        return m


def test_every_copy_holds_what_one_register_would():
    dut = _Copies()
    seen = []

    async def bench(ctx):
        held = 0
        for step, (value, enable) in enumerate([(5, 1), (9, 0), (200, 1), (7, 0), (255, 1)]):
            ctx.set(dut.value, value)
            ctx.set(dut.enable, enable)
            await ctx.tick()
            held = value if enable else held
            seen.append([ctx.get(copy) for copy in dut.copies])
            assert [ctx.get(output) for output in dut.outputs] == \
                [(held + k) % 256 for k in range(4)], step

    simulator = Simulator(dut)
    simulator.add_clock(1e-6)
    simulator.add_testbench(bench)
    simulator.run()
    assert seen[-1] == [255] * 4 and seen[1] == [5] * 4
    assert [copy.name for copy in dut.copies] == [f"value_replica_{k}" for k in range(4)]


def test_synthesis_keeps_the_copies_apart(tmp_path, monkeypatch):
    # Without the keep, Yosys merges the four registers into one (8 flip-flops).
    monkeypatch.chdir(tmp_path)
    cells = synthesize(_Copies(), "ecp5")
    print(cells)
    assert cells["TRELLIS_FF"] == 4 * 8


def test_loads_split_into_runs_over_the_copies():
    copies = ["a", "b", "c"]
    assert [replica_of(copies, index, 8) for index in range(8)] == list("aaabbbcc")
    assert [replica_of(copies[:1], index, 5) for index in range(5)] == ["a"] * 5
    with pytest.raises(ValueError, match="count"):
        replicas(None, Signal(), 0, name="none")
