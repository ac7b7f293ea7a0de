"""A Python model of the accelerator that speaks the wire protocol (``docs/protocol.md``).

:class:`DeviceModel` consumes the bytes a host sends and returns the bytes the device would
answer. It computes with the golden model's bit-exact functions (the transposer, the
fixed-point GRU and GLU), so a host driven against it gets exactly the integers the
gateware must produce, and it enforces a build's maxima as the gateware does. It is the
reference for the link's behaviour on bad input: it never raises on any bytes, answers every
frame with one response, and recovers at the next zero.

:func:`gatework.sim.server.serve_tcp` puts a model behind a TCP socket on the loopback
interface, so that ``socket://127.0.0.1:PORT`` drives it through pyserial like a board.
"""


import numpy as np

from . import transposer
from .config import BuildConfig
from .glu import glu_fixed
from .gru import GRUDirectionWeights, GRUWeights, QuantizedGRUWeights, gru_fixed
from .protocol import Command, Status
from .messages import (MAX_PAYLOAD, REQUEST_OVERHEAD, DeviceInfo, FrameReader, ProtocolError,
                       RunResponse, decode_glu_request, decode_load_request, decode_request,
                       decode_run_request, encode_glu_response, encode_info_response,
                       encode_response, encode_run_response, max_encoded_length)


__all__ = ["DeviceModel"]


class _Refusal(Exception):
    """A request the device answers with an error status."""

    def __init__(self, status):
        super().__init__(status.name)
        self.status = status


def _first_body_bytes(frame):
    """Command and sequence bytes of a frame, as a streaming COBS decoder first sees them.

    Works on frames too long or too broken to decode whole; missing bytes read as zero.
    """
    body = bytearray()
    index = 0
    while len(body) < 2 and index < len(frame):
        code = frame[index]
        body += frame[index + 1:index + code]
        index += code
        if code != 255:
            body.append(0)
    body += bytes(2)
    return body[0], body[1]


class DeviceModel:
    """The accelerator as the protocol sees it: bytes in, bytes out.

    Parameters
    ----------
    config : BuildConfig, optional
        The build it models: maxima, lanes and number formats; the default build if omitted.
    max_payload : int
        The largest request payload it accepts (its receive buffer), at most 65535.
    clock_hz : int
        The clock INFO reports; 0 for unknown.

    Attributes
    ----------
    answered : dict
        Responses sent so far, counted by :class:`Status`.
    """

    def __init__(self, config=None, max_payload=MAX_PAYLOAD, clock_hz=0):
        config = BuildConfig() if config is None else config
        if not isinstance(config, BuildConfig):
            raise TypeError(f"config must be a BuildConfig, not {type(config).__name__}")
        if not 1 <= max_payload <= MAX_PAYLOAD:
            raise ValueError(f"max_payload must be in 1..{MAX_PAYLOAD}, not {max_payload}")
        formats = config.formats
        for name in ("data", "weight", "bias"):
            if getattr(formats, name).total_bits > 16:
                raise ValueError(f"the {name} format {getattr(formats, name)} is wider than "
                                 f"the 16-bit codes protocol version 1 carries")
        self.info = DeviceInfo(config, max_payload, clock_hz)
        self._info_payload = encode_info_response(self.info)
        self._reader = FrameReader(max_encoded_length(REQUEST_OVERHEAD + max_payload))
        self._slots = {}
        self._handlers = {Command.INFO: self._info, Command.LOAD: self._load,
                          Command.RUN: self._run, Command.GLU: self._glu,
                          Command.RESET: self._reset}
        self.answered = {status: 0 for status in Status}

    @property
    def config(self):
        return self.info.config

    def feed(self, data):
        """Take bytes from the host; return the bytes of every response they complete."""
        return b"".join(self._answer(frame) for frame in self._reader.feed(data))

    def loaded_slots(self):
        """``(layer, direction)`` of every slot that holds weights."""
        return sorted(self._slots)

    def _respond(self, command, sequence, status, payload=b""):
        self.answered[status] += 1
        return encode_response(command, sequence, status, payload)

    def _answer(self, frame):
        try:
            request = decode_request(frame, self.info.max_payload)
        except ProtocolError as error:
            if error.status == Status.BAD_FRAME:
                return self._respond(0, 0, Status.BAD_FRAME)
            return self._respond(*_first_body_bytes(frame), error.status)
        handler = self._handlers.get(request.command)
        if handler is None:
            return self._respond(request.command, request.sequence, Status.UNKNOWN_COMMAND)
        try:
            payload = handler(request.payload)
        except ProtocolError as error:
            return self._respond(request.command, request.sequence, error.status)
        except _Refusal as refusal:
            return self._respond(request.command, request.sequence, refusal.status)
        return self._respond(request.command, request.sequence, Status.OK, payload)

    # --- checks ------------------------------------------------------------------------------

    def _beyond(self, condition):
        if condition:
            raise _Refusal(Status.BEYOND_MAXIMA)

    def _check_codes(self, codes, fmt):
        codes = np.asarray(codes)
        if codes.size and (codes.min() < fmt.min_int or codes.max() > fmt.max_int):
            raise _Refusal(Status.MALFORMED)

    # --- commands ----------------------------------------------------------------------------

    def _info(self, payload):
        if payload:
            raise _Refusal(Status.MALFORMED)
        return self._info_payload

    def _reset(self, payload):
        if payload:
            raise _Refusal(Status.MALFORMED)
        self._slots.clear()
        return b""

    def _load(self, payload):
        request = decode_load_request(payload)
        config, formats = self.config, self.config.formats
        self._beyond(request.layer >= config.max_layers
                     or request.direction >= config.directions
                     or request.input_size > config.max_input_size
                     or request.hidden_size > config.max_hidden_size
                     or (request.h0 is not None and len(request.h0) > config.max_batch))
        cell = request.cell
        self._check_codes(cell.weight_ih, formats.weight)
        self._check_codes(cell.weight_hh, formats.weight)
        if cell.bias:
            self._check_codes(cell.bias_ih, formats.bias)
            self._check_codes(cell.bias_hh, formats.bias)
        else:
            # A cell without biases is the same cell with zero biases.
            zeros = np.zeros(3 * cell.hidden_size, dtype=np.int64)
            cell = GRUDirectionWeights(cell.weight_ih, cell.weight_hh, zeros, zeros)
        if request.h0 is not None:
            self._check_codes(request.h0, formats.data)
        self._slots[request.layer, request.direction] = (cell, request.linear_before_reset,
                                                         request.h0)
        return b""

    def _run(self, payload):
        request = decode_run_request(payload)
        config = self.config
        directions = request.num_directions
        hidden, batch = request.hidden_size, request.batch
        self._beyond(request.num_layers > config.max_layers
                     or directions > config.directions
                     or batch > config.max_batch
                     or request.steps > config.max_steps
                     or request.input_size > config.max_input_size
                     or hidden > config.max_hidden_size
                     or (request.num_layers > 1 and directions * hidden > config.max_input_size)
                     or (request.glu and not config.glu))
        self._check_codes(request.inputs, config.formats.data)
        layers, h0 = [], []
        for layer in range(request.num_layers):
            cells = []
            for direction in range(directions):
                slot = self._slots.get((layer, direction))
                input_size = request.input_size if layer == 0 else directions * hidden
                if (slot is None or slot[0].input_size != input_size
                        or slot[0].hidden_size != hidden
                        or slot[1] != request.linear_before_reset
                        or (request.use_h0 and (slot[2] is None or len(slot[2]) != batch))):
                    raise _Refusal(Status.NOT_LOADED)
                cells.append(slot[0])
                h0.append(slot[2])
            layers.append(tuple(cells))
        if request.response_length() > MAX_PAYLOAD:
            raise _Refusal(Status.TOO_LARGE)
        return run_response(tuple(layers), np.stack(h0) if request.use_h0 else None, request,
                            config.formats)

    def _glu(self, payload):
        values = decode_glu_request(payload)
        self._beyond(values.shape[1] // 2 > self.config.max_hidden_size or not self.config.glu)
        self._check_codes(values, self.config.formats.data)
        return encode_glu_response(glu_fixed(values, -1, self.config.formats))

    def __repr__(self):
        return f"<DeviceModel {self.config} max_payload={self.info.max_payload}>"


def run_response(layers, h0, request, formats):
    """Golden's response payload to an accepted RUN.

    ``layers`` are the slots' integer cells, ``[layer][direction]``; ``h0`` their initial
    states stacked ``(layers * directions, N, H)``, or None. Pack the ragged inputs, run the
    fixed-point GRU, unpack (and GLU) the outputs: what the gateware does, in golden.
    """
    weights = QuantizedGRUWeights(GRUWeights(layers, request.linear_before_reset,
                                             request.direction), formats)
    output, h_n = gru_fixed(weights, transposer.pack(request.inputs, request.lengths), h0,
                            request.lengths)
    outputs = None
    if not request.final_only:
        outputs = transposer.unpack(output, request.lengths)
        if request.glu:
            outputs = glu_fixed(outputs, -1, formats)
    return encode_run_response(RunResponse(outputs, h_n))
