"""The generated Verilog of the sequence transposer under cocotb on Icarus Verilog."""

import pathlib

import pytest

from gatework.sim.verilog import build_component, icarus_available, run_cocotb


BENCHES = pathlib.Path(__file__).parent / "benches"

pytestmark = pytest.mark.skipif(not icarus_available(),
                                reason="Icarus Verilog is not installed (apt-get install iverilog)")

BLOCKS = {"pack": "gatework.hdl.transposer:SequencePack",
          "unpack": "gatework.hdl.transposer:SequenceUnpack"}


@pytest.mark.parametrize("direction", ["pack", "unpack"])
@pytest.mark.parametrize("args, stall", [
    pytest.param({"width": 16, "max_batch": 4, "max_steps": 6, "max_features": 3}, 0.0,
                 id="default"),
    pytest.param({"width": 5, "max_batch": 3, "max_steps": 5, "max_features": 2,
                  "capacity": 17}, 0.3, id="capacity-stalls")])
def test_transposer_on_icarus(direction, args, stall, tmp_path):
    spec = {"component": BLOCKS[direction], "args": args, "direction": direction,
            "seed": 3 * args["width"] + args["max_batch"], "stall": stall}
    print(f"seed {spec['seed']}")
    run_cocotb(build_component(spec), test_module="bench_transposer", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=spec)
