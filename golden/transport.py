"""The interface of a byte pipe to a device, which the protocol's frames travel over.

:class:`Transport` is defined here, beside the wire protocol, so that both sides can implement
it without depending on each other: the host's serial port and loopback
(:mod:`gatework.host.transport`) and the simulated accelerator (:mod:`gatework.sim.device`).
Framing, matching responses and per-request timeouts are the host client's.
"""


__all__ = ["Transport"]


class Transport:
    """A byte pipe to a device. Subclasses set ``name`` (shown in error messages)."""

    name = "transport"

    def write(self, data):
        """Send ``data`` (bytes), all of it, or raise."""
        raise NotImplementedError

    def read(self, max_bytes, timeout):
        """Wait up to ``timeout`` seconds for bytes; return at most ``max_bytes`` of them.

        Returns an empty ``bytes`` when none arrived in time.
        """
        raise NotImplementedError

    def close(self):
        """Release the pipe."""

    def transfer_seconds(self, byte_count):
        """Time the wire itself takes to carry ``byte_count`` bytes (0 when negligible)."""
        return 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"
