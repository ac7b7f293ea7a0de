"""Real YoWASP syntheses in the default run: the multiply-accumulate unit maps onto DSPs, and
the accelerator top uses DSPs for its datapath's multipliers only, or for its lanes alone."""

import pytest

from gatework.boards.synthesis import synthesize
from gatework.golden.config import BuildConfig
from gatework.hdl.arith import MultiplyAccumulate, Rescale
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
