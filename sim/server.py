"""A device on a loopback TCP port: the simulated RTL, or anything that answers bytes.

:func:`serve_tcp` serves any object with ``feed(bytes) -> bytes``: the accelerator's RTL in
the simulator (:class:`~.device.SimulatedDevice`, what ``gatework sim-server`` serves) or the
protocol-level model (:class:`gatework.golden.device_model.DeviceModel`). A host then reaches it
at ``socket://127.0.0.1:PORT`` through pyserial, exactly as it reaches a board.
"""

import contextlib
import ipaddress
import logging
import select
import socket
import threading


__all__ = ["serve_tcp"]


logger = logging.getLogger("gatework")


def _check_loopback(host):
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"serve_tcp listens on a loopback address only (127.0.0.1, ::1 or "
                         f"localhost), so that nothing outside this machine reaches the "
                         f"model; got {host!r}")


@contextlib.contextmanager
def serve_tcp(device, host="127.0.0.1", port=0):
    """Serve ``device`` (anything with ``feed(bytes) -> bytes``) on a loopback TCP port.

    Each connection's bytes go to the device in arrival order and its answers go back on the
    same connection; connections take turns at the device, a turn lasting from a frame's
    first bytes until its answer is out.

    A device that computes for long, such as the simulated RTL
    (:class:`~.device.SimulatedDevice`), also has ``pending_responses`` (the answers it owes),
    ``feed(data, timeout=seconds)`` and ``restart()``. It is fed in slices of a fraction of a
    second while it owes answers, so that the server notices within a slice a host that hangs
    up and a server that is being stopped. A host that hangs up while answers are owed to it
    has the device restarted, as a board is power-cycled: the next host then does not wait
    for work nobody will read. No other limit bounds how long a request computes: a host
    waits as long as its own timeout allows, and closing its connection ends the work.

    Parameters
    ----------
    device : DeviceModel or SimulatedDevice
    host : str
        A loopback address.
    port : int
        0 picks a free port.

    Yields
    ------
    int
        The port: connect to ``socket://127.0.0.1:PORT``. Leaving the ``with`` block closes
        every connection and stops the server.
    """
    _check_loopback(host)
    listener = socket.create_server((host, port))
    stop = threading.Event()
    turn = threading.Lock()
    threads = []
    poll_seconds = 0.05
    computes_long = hasattr(device, "pending_responses")

    def owed():
        return device.pending_responses if computes_long else 0

    def feed(data):
        if computes_long:
            # A slice: each returns after at most this long (and one read of the simulation).
            return device.feed(data, timeout=poll_seconds)
        return device.feed(data)

    def take_turn():
        while not stop.is_set():
            if turn.acquire(timeout=poll_seconds):
                return True
        return False

    def serve(connection):
        # A host that stops reading cannot hold the server past this many seconds.
        connection.settimeout(5.0)
        holding = False
        mid_frame = False
        try:
            with connection:
                while not stop.is_set():
                    # While the device owes this connection answers, it computes on; otherwise
                    # the connection waits for bytes.
                    computing = holding and owed() > 0
                    wait = 0 if computing else poll_seconds
                    readable, _, _ = select.select([connection], [], [], wait)
                    data = b""
                    if readable:
                        try:
                            data = connection.recv(65536)
                        except OSError:
                            return
                        if not data:
                            return
                        # A zero ends a frame: one that TCP delivers in pieces keeps the turn,
                        # so that no other connection's bytes land in its middle.
                        mid_frame = data[-1] != 0
                    elif not computing:
                        continue
                    if not holding:
                        holding = take_turn()
                        if not holding:
                            return
                    answer = feed(data)
                    if not owed() and not mid_frame:
                        holding = False
                        turn.release()
                    if answer:
                        try:
                            connection.sendall(answer)
                        except OSError:
                            return
        finally:
            if holding:
                if owed() and not stop.is_set():
                    logger.warning(
                        "a host hung up while the device computed %d answer(s) for it; the "
                        "simulation starts again from reset (loaded weights are forgotten), so "
                        "that the next host does not wait for work nobody will read",
                        owed())
                    device.restart()
                turn.release()

    def accept():
        while not stop.is_set():
            readable, _, _ = select.select([listener], [], [], poll_seconds)
            if not readable:
                continue
            connection, _ = listener.accept()
            thread = threading.Thread(target=serve, args=(connection,), daemon=True)
            thread.start()
            threads.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join()
        for thread in threads:
            thread.join()
        listener.close()
