"""The GRU engine's generated Verilog under cocotb on Icarus Verilog."""

import dataclasses
import pathlib

import pytest

from gatework.golden.config import BuildConfig
from gatework.hdl.gru import GRUEngine
from gatework.sim.verilog import icarus_available, run_cocotb


BENCHES = pathlib.Path(__file__).parent / "benches"

pytestmark = pytest.mark.skipif(not icarus_available(),
                                reason="Icarus Verilog is not installed (apt-get install iverilog)")


@pytest.mark.parametrize("case", [
    dict(lanes=2, input_size=3, hidden_size=5, batch=3, steps=3, linear_before_reset=True,
         reverse=False, stall=0.0, seed=1),
    dict(lanes=3, input_size=4, hidden_size=4, batch=2, steps=3, linear_before_reset=False,
         reverse=True, stall=0.3, seed=2),
    dict(lanes=2, lane_width=2, input_size=3, hidden_size=5, batch=2, steps=3,
         linear_before_reset=False, reverse=False, stall=0.2, seed=3),
], ids=["pytorch-form", "original-form-reverse-stalls", "two-terms-a-cycle"])
def test_engine_on_icarus(case, tmp_path):
    config = BuildConfig(lanes=case["lanes"], lane_width=case.get("lane_width", 1),
                         max_input_size=case["input_size"] + 1,
                         max_hidden_size=case["hidden_size"] + 1, max_batch=case["batch"],
                         max_steps=case["steps"], max_layers=1, bidirectional=False)
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if f.name != "formats"}
    parameters = {**case, "config": fields}
    print(f"seed {case['seed']}")
    run_cocotb(GRUEngine(config), test_module="bench_gru", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=parameters)
