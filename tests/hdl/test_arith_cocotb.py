"""The generated Verilog of the arithmetic units under cocotb on Icarus Verilog."""

import pathlib

import pytest

from gatework.sim.verilog import build_component, icarus_available, run_cocotb


BENCHES = pathlib.Path(__file__).parent / "benches"

pytestmark = pytest.mark.skipif(not icarus_available(),
                                reason="Icarus Verilog is not installed (apt-get install iverilog)")


@pytest.mark.parametrize("input_width, from_fraction, fmt, stall", [
    (40, 25, "q4.12", 0.0), (24, 16, "q4.12", 0.3)])
def test_rescale_on_icarus(input_width, from_fraction, fmt, stall, tmp_path):
    spec = {"component": "gatework.hdl.arith:Rescale",
            "args": {"input_width": input_width, "from_fraction": from_fraction, "fmt": fmt},
            "seed": input_width, "stall": stall}
    print(f"seed {spec['seed']}")
    run_cocotb(build_component(spec), test_module="bench_arith", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=spec)


@pytest.mark.parametrize("data_format, weight_format, terms, stall", [
    ("q4.12", "q3.13", 130, 0.0), ("q8.8", "q1.7", 9, 0.3)])
def test_multiply_accumulate_on_icarus(data_format, weight_format, terms, stall, tmp_path):
    spec = {"component": "gatework.hdl.arith:MultiplyAccumulate",
            "args": {"data_format": data_format, "weight_format": weight_format,
                     "terms": terms},
            "seed": terms, "stall": stall}
    print(f"seed {spec['seed']}")
    run_cocotb(build_component(spec), test_module="bench_arith", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=spec)


def test_waves_on_demand(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWORK_WAVES", "1")
    spec = {"component": "gatework.hdl.arith:Rescale",
            "args": {"input_width": 20, "from_fraction": 14, "fmt": "q4.12"},
            "seed": 1, "stall": 0.0}
    run_cocotb(build_component(spec), test_module="bench_arith", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=spec)
    waves = tmp_path / "build" / "top.fst"
    assert waves.exists() and waves.stat().st_size > 100
