"""``device=`` strings that name a board, and ``auto`` finding one or falling back."""

import logging
import socket

import numpy as np
import pytest

from gatework.golden.config import BuildConfig
from gatework.host import GRU
from gatework.host import backends
from gatework.golden.device_model import DeviceModel
from gatework.sim.server import serve_tcp


CONFIG = BuildConfig(lanes=2, max_input_size=8, max_hidden_size=8, max_batch=4,
                     max_steps=8, max_layers=1, bidirectional=False)


@pytest.fixture
def fresh_log(monkeypatch):
    monkeypatch.setattr(backends, "_announced", set())


def test_fpga_url_over_tcp_is_bit_exact_with_golden(rng, fresh_log):
    x = rng.standard_normal((5, 3, 4))
    with serve_tcp(DeviceModel(CONFIG)) as port:
        board = GRU(4, 6, device=f"fpga:socket://127.0.0.1:{port}", seed=1)
        assert board.device == "fpga"
        output, h_n = board(x, lengths=[5, 2, 4])
    golden = GRU(4, 6, device="golden", seed=1)
    expected, expected_h_n = golden(x, lengths=[5, 2, 4])
    assert np.array_equal(output, expected) and np.array_equal(h_n, expected_h_n)


def test_auto_prefers_a_board_that_answers(monkeypatch, caplog, fresh_log):
    with serve_tcp(DeviceModel(CONFIG)) as port:
        monkeypatch.setenv("GATEWORK_DEVICE", f"socket://127.0.0.1:{port}")
        with caplog.at_level(logging.INFO, logger="gatework"):
            gru = GRU(4, 6, device="auto", seed=1)
        assert gru.device == "fpga"
        assert any("fpga" in record.getMessage() for record in caplog.records)


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_auto_falls_back_when_the_board_is_silent(monkeypatch, caplog, fresh_log):
    monkeypatch.setenv("GATEWORK_DEVICE", f"socket://127.0.0.1:{_closed_port()}")
    with caplog.at_level(logging.INFO, logger="gatework"):
        gru = GRU(4, 6, device="auto", seed=1)
    assert gru.device in ("torch:cpu", "torch:cuda", "numpy")
    assert any("did not answer" in record.getMessage() for record in caplog.records)


def test_plain_fpga_needs_a_url(monkeypatch):
    monkeypatch.delenv("GATEWORK_DEVICE", raising=False)
    with pytest.raises(RuntimeError, match="GATEWORK_DEVICE"):
        GRU(4, 6, device="fpga")


def test_unknown_device_names_the_choices():
    with pytest.raises(ValueError, match="fpga:URL"):
        GRU(4, 6, device="tpu")


def test_sim_runs_glu_on_the_rtl_bit_exact_with_golden(rng, fresh_log):
    from gatework.host import GLU
    x = rng.standard_normal((3, 8))
    simulated = GLU(device="sim")
    assert simulated.device in ("sim:verilator", "sim:amaranth")
    assert np.array_equal(simulated(x), GLU(device="golden")(x))


def test_sim_runs_a_gru_on_the_rtl_bit_exact_with_golden(rng, fresh_log):
    x = rng.standard_normal((2, 1, 2))
    simulated = GRU(2, 3, device="sim", seed=0)
    assert simulated.device in ("sim:verilator", "sim:amaranth")
    output, h_n = simulated(x)
    expected_output, expected_h_n = GRU(2, 3, device="golden", seed=0)(x)
    assert np.array_equal(output, expected_output)
    assert np.array_equal(h_n, expected_h_n)


def test_the_simulated_rtl_served_over_tcp_through_pyserial(rng, fresh_log):
    from gatework.sim.device import simulated_accelerator
    x = rng.standard_normal((4, 2, 3))
    with serve_tcp(simulated_accelerator(CONFIG)) as port:
        board = GRU(3, 4, device=f"fpga:socket://127.0.0.1:{port}", seed=2,
                    linear_before_reset=False)
        output, h_n = board(x, lengths=[4, 2])
    expected, expected_h_n = GRU(3, 4, device="golden", seed=2, linear_before_reset=False)(
        x, lengths=[4, 2])
    assert np.array_equal(output, expected) and np.array_equal(h_n, expected_h_n)


def test_sim_server_command_serves_until_interrupted():
    import signal
    import subprocess
    import sys
    from gatework.host.client import Client
    from gatework.host.transport import SerialTransport
    with subprocess.Popen([sys.executable, "-m", "gatework.host.tools.cli", "sim-server"],
                          stdout=subprocess.PIPE, text=True) as server:
        try:
            line = server.stdout.readline()
            port = int(line.split("socket://127.0.0.1:")[1].split(":")[0])
            with Client(SerialTransport(f"socket://127.0.0.1:{port}", 115200, 30),
                        30) as client:
                assert client.info().config.lanes == 8
        finally:
            server.send_signal(signal.SIGINT)
            try:
                returncode = server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                raise
        assert returncode == 0
