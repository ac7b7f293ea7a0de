"""The generated Verilog of the activation and GLU units under cocotb on Icarus Verilog."""

import pathlib

import pytest

from gatework.golden.formats import DEFAULT_FORMATS
from gatework.hdl.activation import Activation
from gatework.hdl.glu import GLUUnit
from gatework.sim.verilog import icarus_available, run_cocotb


BENCHES = pathlib.Path(__file__).parent / "benches"

pytestmark = pytest.mark.skipif(not icarus_available(),
                                reason="Icarus Verilog is not installed (apt-get install iverilog)")

# Format changes from the defaults, as JSON for the bench; the benches build the same unit.
SECOND_FORMATS = {"preactivation": "q6.12", "activation": "q2.14", "table_segments_log2": 7}


@pytest.mark.parametrize("formats, stall", [({}, 0.0), (SECOND_FORMATS, 0.3)],
                         ids=["default", "q6.12-q2.14-128-stalls"])
def test_activation_on_icarus(formats, stall, tmp_path):
    parameters = {"formats": formats, "seed": 3 + len(formats), "stall": stall}
    print(f"seed {parameters['seed']}")
    run_cocotb(Activation(DEFAULT_FORMATS.replace(**formats)), test_module="bench_activation",
               test_dir=BENCHES, build_dir=tmp_path / "build", parameters=parameters)


@pytest.mark.parametrize("formats, max_channels, stall", [
    ({}, 16, 0.0), ({"data": "q6.10", "preactivation": "q4.13"}, 5, 0.3)],
    ids=["default-16", "q6.10-q4.13-5-stalls"])
def test_glu_on_icarus(formats, max_channels, stall, tmp_path):
    parameters = {"formats": formats, "max_channels": max_channels, "seed": 7 + max_channels,
                  "stall": stall}
    print(f"seed {parameters['seed']}")
    run_cocotb(GLUUnit(DEFAULT_FORMATS.replace(**formats), max_channels=max_channels),
               test_module="bench_glu", test_dir=BENCHES, build_dir=tmp_path / "build",
               parameters=parameters)
