"""The generated Verilog of the frame receiver and transmitter under cocotb on Icarus Verilog."""

import pathlib

import pytest

from gatework.sim.verilog import build_component, icarus_available, run_cocotb


BENCHES = pathlib.Path(__file__).parent / "benches"

pytestmark = pytest.mark.skipif(not icarus_available(),
                                reason="Icarus Verilog is not installed (apt-get install iverilog)")


@pytest.mark.parametrize("max_payload, stall", [(300, 0.0), (64, 0.3)],
                         ids=["300", "64-stalls"])
def test_frame_receiver_on_icarus(max_payload, stall, tmp_path):
    spec = {"component": "gatework.hdl.link:FrameReceiver",
            "args": {"max_payload": max_payload}, "seed": max_payload, "stall": stall}
    print(f"seed {spec['seed']}")
    run_cocotb(build_component(spec), test_module="bench_link", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=spec)


@pytest.mark.parametrize("seed, stall", [(1, 0.0), (2, 0.3)], ids=["plain", "stalls"])
def test_frame_transmitter_on_icarus(seed, stall, tmp_path):
    spec = {"component": "gatework.hdl.link:FrameTransmitter", "args": {}, "seed": seed,
            "stall": stall}
    print(f"seed {spec['seed']}")
    run_cocotb(build_component(spec), test_module="bench_link", test_dir=BENCHES,
               build_dir=tmp_path / "build", parameters=spec)
