"""A real YoWASP synthesis in the default run: the multiply-accumulate unit maps onto DSPs."""

from gatework.boards.synthesis import synthesize
from gatework.hdl.arith import MultiplyAccumulate, Rescale


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
