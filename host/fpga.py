"""The ``fpga`` backend: GRUs and GLUs on a gatework device, through the wire protocol.

It takes the same float64 arrays as every backend (see :mod:`.backends`), converts them to
the device's formats with the golden model's rules, and sends integer codes; the device's
answers are the golden model's integers, so its results equal ``device="golden"`` exactly.

The device's INFO is read once. A model that does not fit the device, or whose number formats
differ from the device's, is refused before anything else is sent. Weights are loaded once
and sent again only when they (or the initial states that travel with them) change. A batch
larger than one request carries is split into requests of whole sequences, which the GRU
runs independently anyway.
"""

import logging
import math

import numpy as np

from ..golden import transposer
from ..golden.fixed import SaturationCounter
from ..golden.gru import quantize_gru
from ..golden.protocol import DEFAULT_BAUD, GLU_HEADER, Status
from .backend import Backend, warn_saturation
from .client import Client, check_fits
from ..golden.messages import (MAX_PAYLOAD, DeviceError, LoadRequest, encode_load_request,
                               glu_payload_length, load_payload_length, run_payload_length,
                               run_response_length)
from .transport import SerialTransport, Transport


__all__ = ["FpgaBackend", "fpga_backend", "BOARD_TIMEOUT", "SIMULATION_TIMEOUT",
           "SIMULATED_CYCLES_PER_SECOND"]


logger = logging.getLogger("gatework")

#: Seconds a board has to answer a request, beyond the time its UART takes to carry the bytes.
BOARD_TIMEOUT = 5.0
#: Seconds of wall-clock time a simulated device has to answer, on top of the time its work
#: takes at :data:`SIMULATED_CYCLES_PER_SECOND`.
SIMULATION_TIMEOUT = 600.0
#: The fewest clock cycles a second a simulated device is taken to run. The Amaranth simulator
#: runs the accelerator's RTL at 600 to 900 cycles a second on one core of a 2-core AMD EPYC
#: (measured, LOAD and RUN alike); a sixth of that leaves room for a slower or busier machine.
#: A RUN of 4 sequences of 8 steps through a 16 -> 32 GRU (23,459 cycles, about 40 s to
#: simulate) is then given 954 s; one of 8 sequences of 32 steps through a 64 -> 64 GRU (about
#: 850,000 cycles, some 20 minutes), three hours.
SIMULATED_CYCLES_PER_SECOND = 100.0


class FpgaBackend(Backend):
    """Run models on a gatework device: a board, or anything that speaks its protocol.

    Parameters
    ----------
    device : str or Transport
        A pyserial URL (``/dev/ttyUSB1``, ``socket://127.0.0.1:5000``) or an open transport.
    baudrate : int
        Of a serial port (default: the boards' 3,000,000).
    timeout : float, optional
        Seconds to wait for each response beyond the wire's own time, whatever the device.
        By default :data:`BOARD_TIMEOUT` for a board; for a device whose INFO says it is a
        simulation (``gatework sim-server``, ``device="sim"``), which takes seconds to hours
        of wall-clock time per request, :data:`SIMULATION_TIMEOUT` plus the time the request's
        estimated cycles (:func:`~gatework.host.client.estimated_cycles`) take at
        :data:`SIMULATED_CYCLES_PER_SECOND`. A server that is stopped fails the client at
        once all the same: its connection closes.

    Examples
    --------
    A served simulation (``gatework sim-server --port 5000``) with a wait of your own, passed
    where a module takes ``device=``:

    >>> from gatework.host import GRU
    >>> backend = FpgaBackend("socket://127.0.0.1:5000", timeout=3600)
    >>> gru = GRU(8, 16, device=backend)

    Attributes
    ----------
    client : Client
    info : DeviceInfo
        What the device reported when the backend was made.
    """

    name = "fpga"
    fixed_point = True

    def __init__(self, device, *, baudrate=DEFAULT_BAUD, timeout=None):
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        if isinstance(device, Transport):
            transport = device
        elif isinstance(device, str):
            transport = SerialTransport(device, baudrate, timeout or BOARD_TIMEOUT)
        else:
            raise TypeError(f"device must be a URL such as '/dev/ttyUSB1' or a Transport, not "
                            f"{type(device).__name__}")
        # INFO itself is answered at once, simulated or not; only then is it known which
        # device this is.
        self.client = Client(transport, timeout or BOARD_TIMEOUT, simulation_rate=(
            SIMULATED_CYCLES_PER_SECOND if timeout is None else None))
        self.info = self.client.info()
        if timeout is None and self.info.simulated:
            self.client.timeout = SIMULATION_TIMEOUT
        self._quantized = None
        self._loaded = {}

    def close(self):
        """Release the transport."""
        self.client.close()

    def __repr__(self):
        return f"<FpgaBackend on {self.client.transport.name}>"

    # --- GRU ---------------------------------------------------------------------------------

    def gru(self, weights, formats, x, h0, lengths):
        steps, batch, _ = x.shape
        lengths = self._checked_lengths(weights, formats, x, lengths)
        chunks = self._plan(weights, lengths, h0 is not None)
        qweights, x_codes, h0_codes = self._codes(weights, formats, x, h0)
        directions, hidden = weights.num_directions, weights.hidden_size
        output = np.zeros((steps, batch, directions * hidden), dtype=np.int64)
        h_n = np.zeros((weights.num_layers * directions, batch, hidden), dtype=np.int64)
        for start, stop in chunks:
            part = slice(start, stop)
            part_lengths = lengths[part]
            inputs = transposer.unpack(x_codes[:, part], part_lengths)
            h0_part = None if h0_codes is None else h0_codes[:, part]
            response = self._run(qweights.weights, inputs, part_lengths, h0_part)
            output[:part_lengths.max(), part] = transposer.pack(response.outputs, part_lengths)
            h_n[:, part] = response.h_n
        return formats.data.to_float(output), formats.data.to_float(h_n)

    def _checked_lengths(self, weights, formats, x, lengths):
        """The call's lengths (all ``T`` when None), once its formats and sizes are checked
        against the device's."""
        steps, batch, _ = x.shape
        lengths = (np.full(batch, steps, dtype=np.int64) if lengths is None
                   else np.asarray(lengths, dtype=np.int64))
        self._check_formats(formats)
        check_fits(self.info.config, num_layers=weights.num_layers,
                   direction=weights.direction, input_size=weights.input_size,
                   hidden_size=weights.hidden_size, steps=int(lengths.max()))
        return lengths

    def _codes(self, weights, formats, x, h0):
        """The weights', inputs' and ``h0``'s codes, warning of the values they saturate."""
        qweights = self._quantize(weights, formats)
        counter = SaturationCounter()
        x_codes = formats.data.quantize(x, counter, "inputs")
        h0_codes = None if h0 is None else formats.data.quantize(h0, counter, "h0 values")
        warn_saturation(counter, "this call")
        return qweights, x_codes, h0_codes

    def _check_formats(self, formats):
        device_formats = self.info.config.formats
        if formats != device_formats:
            raise ValueError(f"the model computes in {formats.describe()}, but the device was "
                             f"built for {device_formats.describe()}; make the module with "
                             f"formats=backend.info.config.formats, or use a bitstream built "
                             f"for the model's formats")

    def _quantize(self, weights, formats):
        cached = self._quantized
        if cached is None or cached[0] is not weights or cached[1] != formats:
            counter = SaturationCounter()
            cached = (weights, formats, quantize_gru(weights, formats, counter))
            self._quantized = cached
            warn_saturation(counter, "loading the weights")
        return cached[2]

    def _plan(self, weights, lengths, with_h0):
        """Split the batch into runs of consecutive sequences that fit one request each."""
        config, max_payload = self.info.config, self.info.max_payload
        directions, hidden = weights.num_directions, weights.hidden_size
        layer_inputs = [weights.input_size] + [directions * hidden] * (weights.num_layers - 1)

        def load_length(batch):
            return max(load_payload_length(size, hidden, weights.bias, batch)
                       for size in layer_inputs)

        def fits(batch, total_steps):
            return (batch <= config.max_batch
                    and run_payload_length(batch, total_steps, weights.input_size) <= max_payload
                    and run_response_length(batch, total_steps, weights.num_layers, directions,
                                            hidden) <= MAX_PAYLOAD
                    and (not with_h0 or load_length(batch) <= max_payload))

        if load_length(1 if with_h0 else None) > max_payload:
            raise ValueError(f"loading a layer's weights takes a request of "
                             f"{load_length(1 if with_h0 else None)} bytes; the device accepts "
                             f"at most max_payload {max_payload}: make the model smaller")
        chunks, start, total = [], 0, 0
        for index, length in enumerate(lengths.tolist()):
            if not fits(index + 1 - start, total + length):
                if index == start:
                    raise ValueError(
                        f"sequence {index} alone ({length} steps) needs a RUN request of "
                        f"{run_payload_length(1, length, weights.input_size)} bytes (the device "
                        f"accepts {max_payload}) and a response of "
                        f"{run_response_length(1, length, weights.num_layers, directions, hidden)}"
                        f" bytes (a frame carries {MAX_PAYLOAD}); split it into shorter "
                        f"sequences")
                chunks.append((start, index))
                start, total = index, 0
            total += length
        chunks.append((start, len(lengths)))
        return chunks

    def _run(self, weights, inputs, lengths, h0):
        def run():
            return self.client.run(inputs, lengths, num_layers=weights.num_layers,
                                   hidden_size=weights.hidden_size, direction=weights.direction,
                                   linear_before_reset=weights.linear_before_reset,
                                   use_h0=h0 is not None)
        self._load(weights, h0)
        try:
            return run()
        except DeviceError as error:
            if error.status != Status.NOT_LOADED:
                raise
        logger.warning("the device on %s no longer held the weights (was it reset or "
                       "power-cycled?); loading them again", self.client.transport.name)
        self._loaded.clear()
        self._load(weights, h0)
        return run()

    def _load(self, weights, h0):
        directions = weights.num_directions
        for layer, cells in enumerate(weights.layers):
            for direction, cell in enumerate(cells):
                state = None if h0 is None else h0[layer * directions + direction]
                payload = encode_load_request(LoadRequest(layer, direction, cell,
                                                          weights.linear_before_reset, state))
                if self._loaded.get((layer, direction)) == payload:
                    continue
                try:
                    self.client.load(layer, direction, cell, weights.linear_before_reset, state)
                except BaseException:
                    # A LOAD that failed may have emptied any slot (docs/protocol.md).
                    self._loaded.clear()
                    raise
                self._loaded[layer, direction] = payload

    # --- GLU ---------------------------------------------------------------------------------

    def glu(self, formats, x, dim):
        self._check_formats(formats)
        if not self.info.config.glu:
            raise ValueError(f"{self.client.transport.name} was built without a GLU unit (its "
                             f"INFO says so); run the GLU on another device, such as 'golden'")
        moved_shape = np.moveaxis(x, dim, -1).shape
        channels = moved_shape[-1] // 2
        out_shape = moved_shape[:-1] + (channels,)
        if not math.prod(out_shape):
            return np.moveaxis(np.zeros(out_shape), -1, dim)
        # Each output channel needs only its own a and b: a wide GLU goes in pieces of
        # channels the device's unit holds, and in as many vectors as a request carries.
        piece = min(channels, self.info.config.max_hidden_size)
        max_payload = self.info.max_payload
        per_request = min(GLU_HEADER.maximum("count"),
                          (max_payload - glu_payload_length(0, piece)) // (4 * piece))
        if per_request < 1:
            raise ValueError(f"one GLU vector of {2 * piece} values needs a request of "
                             f"{glu_payload_length(1, piece)} bytes; the device accepts at "
                             f"most max_payload {max_payload}")
        counter = SaturationCounter()
        codes = formats.data.quantize(x, counter, "inputs")
        warn_saturation(counter, "this call")
        vectors = np.moveaxis(codes, dim, -1).reshape(-1, 2 * channels)
        a, b = vectors[:, :channels], vectors[:, channels:]
        out = np.zeros((len(vectors), channels), dtype=np.int64)
        for first in range(0, channels, piece):
            part = slice(first, first + piece)
            halves = np.concatenate([a[:, part], b[:, part]], axis=1)
            for row in range(0, len(vectors), per_request):
                rows = slice(row, row + per_request)
                out[rows, part] = self.client.glu(halves[rows])
        result = np.moveaxis(out.reshape(out_shape), -1, dim)
        return formats.data.to_float(result)


def fpga_backend(device, **options):
    """Make an :class:`FpgaBackend` from a ``device=`` string, ``"fpga:URL"``.

    ``"fpga:/dev/ttyUSB1"`` opens a serial port, ``"fpga:socket://127.0.0.1:5000"`` a TCP
    socket. ``options`` go to :class:`FpgaBackend` (``baudrate``, ``timeout``).
    """
    prefix = "fpga:"
    if not isinstance(device, str) or not device.startswith(prefix) or device == prefix:
        raise ValueError(f"an FPGA device is written 'fpga:URL', such as 'fpga:/dev/ttyUSB1' "
                         f"or 'fpga:socket://127.0.0.1:5000'; got {device!r}")
    return FpgaBackend(device[len(prefix):], **options)
