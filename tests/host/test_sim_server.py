"""The served simulation: the accelerator's RTL behind ``gatework sim-server``, driven over TCP
by the board's own backend (``device="fpga:socket://127.0.0.1:PORT"``), bit-exact with golden;
a server that dies fails the client at once, with a message that says so."""

import contextlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from gatework.golden.formats import DEFAULT_FORMATS
from gatework.golden.gru import quantize_gru
from gatework.golden.protocol import Command
from gatework.host import GLU, GRU
from gatework.host.fpga import SIMULATION_TIMEOUT, FpgaBackend
from gatework.golden.messages import LoadRequest, encode_load_request, encode_request
from gatework.sim.device import simulated_accelerator


def test_feed_waits_for_an_answer_that_takes_long_quiet_computation():
    # A LOAD of a 5 -> 8 cell takes about a thousand cycles after its last byte before it is
    # answered, longer than the idle_cycles after which one read gives control back.
    device = simulated_accelerator()
    cell = quantize_gru(GRU(5, 8, seed=1, device="golden").weights,
                        DEFAULT_FORMATS).weights.layers[0][0]
    frame = encode_request(Command.LOAD, 1, encode_load_request(LoadRequest(0, 0, cell)))
    assert device.idle_cycles == 1024
    # In two pieces, as TCP may deliver it, with the zero the host sends first.
    first = device.feed(b"\x00" + frame[:100])
    answer = device.feed(frame[100:])
    assert first == b""
    assert answer.count(0) == 1 and answer[1] == 0x80 | Command.LOAD
    assert device.cycles > len(frame) + device.idle_cycles


@contextlib.contextmanager
def sim_server():
    """``gatework sim-server`` as a user starts it; yields the process and the device URL. A
    server still running at the end is interrupted, as Ctrl-C would, and must exit cleanly."""
    with subprocess.Popen([sys.executable, "-m", "gatework.host.tools.cli", "sim-server"],
                          stdout=subprocess.PIPE, text=True) as server:
        try:
            port = server.stdout.readline().split("socket://127.0.0.1:")[1].split(":")[0]
            yield server, f"fpga:socket://127.0.0.1:{port}"
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGINT)
                assert server.wait(timeout=30) == 0


def test_sim_server_runs_gru_and_glu_bit_exact_with_golden():
    seed = 5
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    with sim_server() as (_, url):
        gru = GRU(3, 4, num_layers=2, seed=seed, device=url)
        assert gru.backend.info.simulated
        assert gru.backend.client.timeout == SIMULATION_TIMEOUT
        x = rng.standard_normal((3, 2, 3))
        h0 = 0.5 * rng.standard_normal((2, 2, 4))
        output, h_n = gru(x, h0, lengths=[3, 2])
        golden = GRU(3, 4, num_layers=2, seed=seed, device="golden")
        expected, expected_h_n = golden(x, h0, lengths=[3, 2])
        np.testing.assert_array_equal(output, expected)
        np.testing.assert_array_equal(h_n, expected_h_n)
        values = rng.standard_normal((3, 8))
        np.testing.assert_array_equal(GLU(device=gru.backend)(values),
                                      GLU(device="golden")(values))
        gru.backend.close()


def test_a_killed_server_fails_the_client_at_once():
    outcome = {}
    with sim_server() as (server, url):
        backend = FpgaBackend(url[len("fpga:"):])
        gru = GRU(8, 16, seed=2, device=backend)
        x = np.random.default_rng(2).standard_normal((40, 4, 8))

        def run():
            try:
                gru(x)
            except ConnectionError as error:
                outcome["error"] = error

        client = threading.Thread(target=run)
        client.start()
        # The LOAD and RUN of this model take far longer than this to simulate.
        time.sleep(3)
        assert client.is_alive()
        server.kill()
        server.wait(timeout=30)
        killed = time.monotonic()
        client.join(timeout=60)
        assert not client.is_alive()
        assert time.monotonic() - killed < 10
        backend.close()
    assert "server closed the connection" in str(outcome["error"])
    assert "gatework sim-server" in str(outcome["error"])


@pytest.mark.parametrize("timeout", [None, 7.5])
def test_a_simulated_device_gets_the_simulation_timeout_unless_told(timeout):
    backend = FpgaBackend(simulated_accelerator(), timeout=timeout)
    assert backend.info.simulated
    assert backend.client.timeout == (SIMULATION_TIMEOUT if timeout is None else timeout)
