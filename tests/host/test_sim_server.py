"""The served simulation: the accelerator's RTL behind ``serve_tcp`` and ``gatework sim-server``,
driven over TCP by the board's own backend (``device="fpga:socket://127.0.0.1:PORT"``),
bit-exact with golden; the client waits as long as a simulated request takes; a server that
dies fails the client at once, saying so; a host that hangs up mid-request, or a server that
is stopped, does not leave the simulation computing for nobody."""

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from gatework.golden.formats import DEFAULT_FORMATS
from gatework.golden.gru import quantize_gru
from gatework.golden.messages import (LoadRequest, RunRequest, encode_load_request,
                                      encode_request, encode_run_request)
from gatework.golden.protocol import Command
from gatework.host import GLU, GRU
from gatework.host.fpga import SIMULATED_CYCLES_PER_SECOND, SIMULATION_TIMEOUT, FpgaBackend
from gatework.sim.device import simulated_accelerator
from gatework.sim.server import serve_tcp


def long_request(seed):
    """Wire bytes of a LOAD that is answered in about a second and of a RUN that then computes
    for about a minute (8 sequences of 128 steps through a 2 -> 4 GRU)."""
    cell = quantize_gru(GRU(2, 4, seed=seed, device="golden").weights,
                        DEFAULT_FORMATS).weights.layers[0][0]
    load = encode_request(Command.LOAD, 1, encode_load_request(LoadRequest(0, 0, cell)))
    run = RunRequest(np.ones((8 * 128, 2), dtype=np.int64), np.full(8, 128), 1, 4)
    return b"\x00" + load + b"\x00" + encode_request(Command.RUN, 2, encode_run_request(run))


def wait_for_answers(connection, count, seconds=30):
    """Read from a raw socket until ``count`` frames have come (each ends with a zero)."""
    connection.settimeout(seconds)
    came = b""
    while came.count(0) < count:
        data = connection.recv(65536)
        assert data, f"the server closed the connection after {came!r}"
        came += data
    return came


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


def test_the_served_simulation_is_bit_exact_with_golden(rng):
    device = simulated_accelerator()
    x = rng.standard_normal((3, 2, 3))
    h0 = 0.5 * rng.standard_normal((2, 2, 4))
    values = rng.standard_normal((3, 8))
    with serve_tcp(device) as port:
        start = time.monotonic()
        gru = GRU(3, 4, bidirectional=True, seed=7, device=f"fpga:socket://127.0.0.1:{port}")
        assert gru.backend.info.simulated
        output, h_n = gru(x, h0, lengths=[3, 2])
        glu = GLU(device=gru.backend)(values)
        print(f"INFO, two LOADs, RUN and GLU over TCP: {device.cycles} cycles simulated in "
              f"{time.monotonic() - start:.1f} s")
        gru.backend.close()
    expected, expected_h_n = GRU(3, 4, bidirectional=True, seed=7, device="golden")(
        x, h0, lengths=[3, 2])
    assert np.count_nonzero(expected[:2]) == expected[:2].size
    np.testing.assert_array_equal(output, expected)
    np.testing.assert_array_equal(h_n, expected_h_n)
    np.testing.assert_array_equal(glu, GLU(device="golden")(values))


@contextlib.contextmanager
def sim_server(engine="auto"):
    """``gatework sim-server`` as a user starts it; yields the process and the device URL. A
    server still running at the end is interrupted, as Ctrl-C would, and must exit cleanly."""
    with subprocess.Popen([sys.executable, "-m", "gatework.host.tools.cli", "sim-server",
                           "--engine", engine], stdout=subprocess.PIPE, text=True) as server:
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


def test_a_server_killed_mid_run_fails_the_client_at_once():
    outcome, started = {}, []
    # The Amaranth simulator, so that the RUN is still computing when the server is killed.
    with sim_server("amaranth") as (server, url):
        backend = FpgaBackend(url[len("fpga:"):])
        request = backend.client.request

        def recorded(command, *args, **kwargs):
            started.append(command)
            return request(command, *args, **kwargs)

        backend.client.request = recorded
        # One RUN of 8 sequences of 128 steps: about a minute to simulate.
        gru = GRU(2, 4, seed=2, device=backend)
        x = np.random.default_rng(2).standard_normal((128, 8, 2))

        def run():
            try:
                gru(x)
            except ConnectionError as error:
                outcome["error"] = error

        client = threading.Thread(target=run)
        client.start()
        deadline = time.monotonic() + 30
        while started[-1:] != [Command.RUN] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started[-1:] == [Command.RUN], f"no RUN was sent in 30 s: {started}"
        time.sleep(1)
        assert client.is_alive()
        killed = time.monotonic()
        server.kill()
        server.wait(timeout=30)
        client.join(timeout=60)
        failed_after = time.monotonic() - killed
        backend.close()
    print(f"the client failed {failed_after:.2f} s after the server was killed")
    assert not client.is_alive()
    assert failed_after < 10
    message = str(outcome["error"])
    assert "the server closed the connection" in message
    assert "start it again (gatework sim-server)" in message


def test_a_host_that_hangs_up_mid_run_leaves_the_server_to_the_next(seed, caplog):
    # The Amaranth simulator, whose RUN computes for a minute.
    device = simulated_accelerator(engine="amaranth")
    x = np.random.default_rng(seed).standard_normal((3, 2, 3))
    with serve_tcp(device) as port:
        with socket.create_connection(("127.0.0.1", port)) as abandoned:
            abandoned.sendall(long_request(seed))
            wait_for_answers(abandoned, 1)
            # The LOAD is answered; the RUN computes for a minute, for nobody once this closes.
            time.sleep(1)
        hung_up = time.monotonic()
        # The user's own wait, passed as the backend: INFO must still come within it.
        backend = FpgaBackend(f"socket://127.0.0.1:{port}", timeout=5)
        gru = GRU(3, 4, seed=3, device=backend)
        assert gru.backend is backend and backend.client.timeout == 5
        output, h_n = gru(x)
        answered_after = time.monotonic() - hung_up
        backend.close()
    print(f"the next host was answered {answered_after:.1f} s after the first hung up")
    assert answered_after < 15
    expected, expected_h_n = GRU(3, 4, seed=3, device="golden")(x)
    np.testing.assert_array_equal(output, expected)
    np.testing.assert_array_equal(h_n, expected_h_n)
    assert "hung up while the device computed 1 answer" in caplog.text


def test_stopping_the_server_does_not_wait_for_the_request_it_computes(seed):
    device = simulated_accelerator(engine="amaranth")
    with serve_tcp(device) as port:
        host = socket.create_connection(("127.0.0.1", port))
        host.sendall(long_request(seed))
        wait_for_answers(host, 1)
        stopping = time.monotonic()
    stopped_after = time.monotonic() - stopping
    host.close()
    print(f"stopped {stopped_after:.2f} s into the RUN")
    assert device.pending_responses == 1
    # One slice of the simulation (idle_cycles cycles, about 1.5 s), not the minute the RUN
    # would take.
    assert stopped_after < 10


@pytest.mark.parametrize("timeout", [None, 7.5])
def test_a_simulated_device_gets_time_for_its_work_unless_told(timeout):
    device = simulated_accelerator()
    backend = FpgaBackend(device, timeout=timeout)
    assert backend.info.simulated
    waits, requests = [], []
    wait_seconds, request = backend.client.wait_seconds, backend.client.request

    def recorded_wait(*args, **kwargs):
        waits.append(wait_seconds(*args, **kwargs))
        return waits[-1]

    def measured_request(command, *args, **kwargs):
        start = device.cycles
        result = request(command, *args, **kwargs)
        requests.append((Command(command).name, device.cycles - start, waits[-1]))
        return result

    backend.client.wait_seconds = recorded_wait
    backend.client.request = measured_request
    GRU(3, 4, seed=4, device=backend)(np.random.default_rng(4).standard_normal((3, 2, 3)))
    print(requests)
    assert [name for name, _, _ in requests] == ["LOAD", "RUN"]
    for name, cycles, wait in requests:
        if timeout is None:
            # More time than the simulation needs even at the slowest rate assumed.
            assert (wait - SIMULATION_TIMEOUT) * SIMULATED_CYCLES_PER_SECOND > cycles, name
        else:
            assert wait == timeout, name
    small = RunRequest(np.zeros((2, 3), dtype=np.int64), [1, 1], 1, 4)
    large = RunRequest(np.zeros((64, 3), dtype=np.int64), [32, 32], 1, 4)
    if timeout is None:
        assert backend.client.wait_seconds(100, large) > backend.client.wait_seconds(100, small)
    else:
        assert backend.client.wait_seconds(100, large) == timeout
