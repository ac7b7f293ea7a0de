"""Real YoWASP syntheses in the default run: the multiply-accumulate unit maps onto DSPs, and
the accelerator top uses DSPs for its datapath's multipliers only, or for its lanes alone; a
memory with no_rw_check has no bypass logic around its RAM."""

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from gatework.boards.synthesis import mark_read_write_collisions, synthesize
from gatework.golden.config import BuildConfig
from gatework.hdl.arith import MultiplyAccumulate, Rescale, pipelined_product
from gatework.hdl.top import AcceleratorTop


def test_multiply_accumulate_uses_one_ice40_dsp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = synthesize(MultiplyAccumulate("q4.12", "q3.13", 130), "ice40")
    print(cells)
    assert cells.get("SB_MAC16") == 1, "the 16x16 product must land in one SB_MAC16"
    assert cells.get("SB_LUT4", 0) < 200


def test_rescale_needs_no_multiplier_on_ecp5(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = synthesize(Rescale(40, 25, "q4.12"), "ecp5")
    print(cells)
    assert not any(name.startswith("MULT") for name in cells)
    assert cells.get("TRELLIS_FF", 0) >= 17, "16 output bits and a valid flag are registered"


@pytest.mark.parametrize("lut_multipliers", [False, True])
def test_accelerator_top_uses_dsps_for_its_datapath_only(tmp_path, monkeypatch, lut_multipliers):
    # Maxima that are not powers of two: a size or an address multiplied by one of them would
    # be a multiplier, which Yosys puts on an SB_MAC16 of the eight an iCE40UP5K has.
    monkeypatch.chdir(tmp_path)
    config = BuildConfig(lanes=2, max_input_size=5, max_hidden_size=3, max_batch=3,
                         max_steps=5, max_layers=2, bidirectional=True)
    cells = synthesize(AcceleratorTop(config, max_payload=256, lut_multipliers=lut_multipliers),
                       "ice40")
    print(cells)
    if lut_multipliers:
        # The lanes alone.
        assert cells.get("SB_MAC16") == config.lanes
    else:
        # One for each lane, for the interpolation of the activation unit the engine and
        # the GLU share and for the GLU's product; two for each of the element-wise stage's
        # products, which are wider than an SB_MAC16's 16 x 16 bits (16 x 18 and 16 x 20
        # at the default formats).
        assert cells.get("SB_MAC16") == config.lanes + 2 + 2 * 2


def test_cells_by_block(tmp_path, monkeypatch):
    # The GLU unit's activation unit is a block of its own: its ROM and its interpolation's
    # multiplier are counted there, not in the GLU's own cells.
    from gatework.hdl.glu import GLUUnit

    monkeypatch.chdir(tmp_path)
    blocks = synthesize(GLUUnit(), "ice40", by_block=True)
    print(blocks)
    assert {"top", "top.activation"} <= set(blocks)
    assert blocks["top.activation"].get("SB_MAC16") == 1
    assert blocks["top.activation"].get("SB_RAM40_4K", 0) >= 1
    flat = synthesize(GLUUnit(), "ice40")
    assert sum(cells.get("SB_MAC16", 0) for cells in blocks.values()) == flat["SB_MAC16"]


class _Memories(wiring.Component):
    """Three memories: with no_rw_check, without, and with it but a transparent read port."""

    addr: In(8)
    data: In(16)
    en: In(1)
    o: Out(48)

    def __init__(self, marked=(True, False, True)):
        self._marked = marked
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        for index, marked in enumerate(self._marked):
            attrs = {"no_rw_check": 1} if marked else {}
            m.submodules[f"memory_{index}"] = memory = Memory(shape=16, depth=256, init=[],
                                                              attrs=attrs)
            write = memory.write_port()
            read = memory.read_port(transparent_for=(write,) if index == 2 else ())
            m.d.comb += [write.addr.eq(self.addr + index), write.data.eq(self.data),
                         write.en.eq(self.en), read.addr.eq(self.addr),
                         self.o[16 * index:16 * (index + 1)].eq(read.data)]
        return m


def test_marking_sets_the_collision_mask_of_marked_ports_only():
    text = mark_read_write_collisions(rtlil.convert(_Memories(), name="top", emit_src=False))
    masks = {}
    for block in text.split("cell $memrd_v2")[1:]:
        memory = block.split('parameter \\MEMID "\\\\')[1].split('"')[0]
        masks[memory] = block.split("parameter \\COLLISION_X_MASK ")[1].split()[0]
    print(masks)
    assert masks == {"memory_0": "1'1", "memory_1": "1'0", "memory_2": "1'0"}


def test_a_marked_memory_has_no_bypass_logic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flops = {}
    for marked in (True, False):
        cells = synthesize(_Memories((marked,) * 2), "ice40")
        print(marked, cells)
        assert cells["SB_RAM40_4K"] == 2
        flops[marked] = sum(count for cell, count in cells.items() if "DFF" in cell)
    # Yosys' bypass of a read port that is not transparent: the old word and the
    # collision registered, at least a word of flip-flops a RAM.
    assert flops[True] == 0 and flops[False] >= 2 * 16


class _Product(wiring.Component):
    a: In(signed(16))
    b: In(signed(16))
    enable: In(1)
    product: Out(signed(32))

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.product.eq(pipelined_product(m, self.a, self.b, enable=self.enable,
                                                      platform=platform, name="lane"))
        return m


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_a_pipelined_product_keeps_its_registers_in_the_dsp_block(tmp_path, monkeypatch,
                                                                     family):
    # On an ECP5 the MULT18X18D's input and output registers, which nextpnr times from
    # register to register: no flip-flop outside it. On an iCE40 Yosys takes the same
    # registers into the SB_MAC16.
    monkeypatch.chdir(tmp_path)
    cells = synthesize(_Product(), family)
    print(cells)
    if family == "ecp5":
        assert cells.get("MULT18X18D") == 1 and cells.get("TRELLIS_FF", 0) == 0
    else:
        assert cells.get("SB_MAC16") == 1
        assert not any("DFF" in cell for cell in cells)


def test_the_ecp5_product_uses_the_input_and_output_registers_only():
    # The simulation's model is two register stages (operands, product): the MULT18X18D must
    # register A, B and P on the one clock and enable, and not its pipeline register, which
    # would add a third. Operands are sign-extended to 18 bits.
    class Ecp5:
        family, device = "ecp5", ""

    text = rtlil.convert(_Product(), name="top", emit_src=False, platform=Ecp5())
    cell = text[text.index("cell \\MULT18X18D"):]
    cell = cell[:cell.index("\n  end\n")]
    parameters = dict(line.split()[1:3] for line in cell.splitlines()
                      if line.strip().startswith("parameter"))
    connections = dict(line.split(None, 2)[1:] for line in cell.splitlines()
                       if line.strip().startswith("connect"))
    print(parameters)
    for register in ("INPUTA", "INPUTB", "OUTPUT"):
        assert parameters[f"\\REG_{register}_CLK"] == '"CLK0"'
        assert parameters[f"\\REG_{register}_CE"] == '"CE0"'
    assert parameters["\\REG_PIPELINE_CLK"] == '"NONE"'
    assert connections["\\CE0"] == "\\enable [0]"
    assert connections["\\SIGNEDA"] == connections["\\SIGNEDB"] == "1'1"
    assert connections["\\A17"] == "\\a [15]" and connections["\\B16"] == "\\b [15]"
