"""The generated Verilog of the sequence transposer under cocotb on Icarus Verilog."""

import pathlib

import pytest
from cocotb_tools.runner import Icarus

from gatework.sim.verilog import build_component, icarus_available, run_cocotb


BENCHES = pathlib.Path(__file__).parent / "benches"

pytestmark = pytest.mark.skipif(not icarus_available(),
                                reason="Icarus Verilog is not installed (apt-get install iverilog)")

BLOCKS = {"pack": "gatework.hdl.transposer:SequencePack",
          "unpack": "gatework.hdl.transposer:SequenceUnpack"}


@pytest.fixture
def verilog_2005(monkeypatch):
    """Have Icarus compile the generated Verilog as Verilog-2005, which Yosys writes.

    Yosys starts every ``always @*`` block at time 0 through a trigger register initialised in
    its declaration. Under the runner's ``-g2012`` that initialisation is no event, so a block
    whose inputs stay constant until the first command (the combinational outputs of the
    state machine's first state, such as ``command__ready``) stays X. A later ``-g2005``
    overrides ``-g2012``; the flag belongs in ``run_cocotb`` for every bench.
    """
    build = Icarus.build

    def build_2005(self, *args, build_args=(), **kwargs):
        return build(self, *args, build_args=[*build_args, "-g2005"], **kwargs)
    monkeypatch.setattr(Icarus, "build", build_2005)


@pytest.mark.parametrize("direction", ["pack", "unpack"])
@pytest.mark.parametrize("args, stall", [
    pytest.param({"width": 16, "max_batch": 4, "max_steps": 6, "max_features": 3}, 0.0,
                 id="default"),
    pytest.param({"width": 5, "max_batch": 3, "max_steps": 5, "max_features": 2,
                  "capacity": 17}, 0.3, id="capacity-stalls")])
def test_transposer_on_icarus(direction, args, stall, tmp_path, verilog_2005):
    spec = {"component": BLOCKS[direction], "args": args, "direction": direction,
            "seed": 3 * args["width"] + args["max_batch"], "stall": stall}
    print(f"seed {spec['seed']}")
    run_cocotb(build_component(spec), test_module="bench_transposer", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=spec)
