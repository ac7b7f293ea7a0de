"""A device on a loopback TCP port: the simulated RTL, or anything that answers bytes.

:func:`serve_tcp` serves any object with ``feed(bytes) -> bytes``: the accelerator's RTL in
the simulator (:class:`~.device.SimulatedDevice`, what ``gatework sim-server`` serves) or the
protocol-level model (:class:`gatework.golden.device_model.DeviceModel`). A host then reaches it
at ``socket://127.0.0.1:PORT`` through pyserial, exactly as it reaches a board.
"""

import contextlib
import ipaddress
import select
import socket
import threading


__all__ = ["serve_tcp"]


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
    same connection; connections take turns at the device.

    Parameters
    ----------
    device : DeviceModel
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

    def serve(connection):
        # A host that stops reading cannot hold the server past this many seconds.
        connection.settimeout(5.0)
        with connection:
            while not stop.is_set():
                readable, _, _ = select.select([connection], [], [], poll_seconds)
                if not readable:
                    continue
                try:
                    data = connection.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                with turn:
                    answer = device.feed(data)
                if answer:
                    try:
                        connection.sendall(answer)
                    except OSError:
                        return

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
