"""Byte pipes to a device: a serial port (or any pyserial URL) and an in-process loopback.

A :class:`Transport` moves bytes and nothing else; framing, matching and timeouts per request
are the :class:`~.client.Client`'s. Every wait here is bounded by the timeout it is given.
"""

import time

from ..golden.protocol import DEFAULT_BAUD
# The base class sits in golden, beside the protocol, so that the simulated device in sim can
# be a Transport without sim importing the host.
from ..golden.transport import Transport


__all__ = ["Transport", "SerialTransport", "LoopbackTransport"]


class SerialTransport(Transport):
    """A serial port, or anything else pyserial's ``serial_for_url`` opens.

    ``/dev/ttyUSB1``, ``COM3``, ``socket://127.0.0.1:5000`` (a TCP socket, such as a simulated
    device's) and ``loop://`` all work.

    Parameters
    ----------
    url : str
    baudrate : int
        Bits per second of a UART; ignored by ``socket://``.
    timeout : float
        Seconds a write may take beyond the wire's own time.
    """

    def __init__(self, url, baudrate=DEFAULT_BAUD, timeout=2.0):
        import serial

        self._serial = serial
        self.name = url
        self.baudrate = baudrate
        self.timeout = timeout
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout,
                                               write_timeout=timeout)
        except (serial.SerialException, ValueError) as error:
            raise ConnectionError(
                f"could not open {url!r} ({error}); check that the board is plugged in and "
                f"powered, that the path or URL is right (a serial device such as "
                f"/dev/ttyUSB1, or socket://HOST:PORT), and that you may use it (on Linux, "
                f"membership of the dialout group)") from error

    def transfer_seconds(self, byte_count):
        # A UART byte is 10 bits on the wire: start, 8 data, stop.
        return 10 * byte_count / self.baudrate

    def write(self, data):
        allowed = self.timeout + self.transfer_seconds(len(data))
        try:
            self._port.write_timeout = allowed
            self._port.write(data)
        except self._serial.SerialTimeoutException:
            raise TimeoutError(
                f"writing {len(data)} bytes to {self.name} took longer than {allowed:.3g} s; "
                f"check that the board is connected and that it reads its UART (hardware "
                f"flow control, if the port uses it, must be wired)") from None
        except self._serial.SerialException as error:
            raise ConnectionError(f"writing to {self.name} failed ({error}); "
                                  f"{self._what_to_check()}") from error

    def _what_to_check(self):
        if self.name.startswith("socket://"):
            return ("the server closed the connection: was it stopped, or did it fail? Check "
                    "its output, and start it again (gatework sim-server)")
        return "check that the board is still connected"

    def read(self, max_bytes, timeout):
        try:
            self._port.timeout = max(timeout, 0.0)
            data = self._port.read(1)
            if data and max_bytes > 1:
                # Then whatever else has arrived, without waiting for more.
                self._port.timeout = 0
                data += self._port.read(max_bytes - 1)
            return data
        except self._serial.SerialException as error:
            raise ConnectionError(f"reading from {self.name} failed ({error}); "
                                  f"{self._what_to_check()}") from error

    def close(self):
        self._port.close()


class LoopbackTransport(Transport):
    """Hand bytes to an in-process device object and keep its answers for reading.

    Parameters
    ----------
    device : object
        Anything with ``feed(data) -> bytes``, such as a
        :class:`~gatework.golden.device_model.DeviceModel`. It answers synchronously, inside
        :meth:`write`.
    """

    def __init__(self, device):
        self.device = device
        self.name = f"loopback to {type(device).__name__}"
        self._pending = bytearray()

    def write(self, data):
        self._pending += self.device.feed(bytes(data))

    def read(self, max_bytes, timeout):
        if not self._pending:
            # The device answers inside write(), so nothing more can come: wait out the
            # timeout as a real link would, then report that nothing arrived.
            time.sleep(max(timeout, 0.0))
            return b""
        data = bytes(self._pending[:max_bytes])
        del self._pending[:max_bytes]
        return data
