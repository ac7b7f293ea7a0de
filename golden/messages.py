"""Frames and payloads of the wire protocol, encoded and decoded (``docs/protocol.md``).

The codes, the CRC and COBS come from :mod:`gatework.golden.protocol`, the one definition the
gateware shares; this module lays out the bodies and payloads with them. It serves both ends:
the host encodes requests and decodes responses, the device model
(:mod:`.device_model`) does the reverse with the same functions, so that the layout of every
payload is written down once.

Arrays go in and come out as NumPy integer codes; on the wire they are little-endian int16.
Encoders raise ``ValueError`` for arguments that cannot be sent; decoders raise
:class:`ProtocolError` for bytes that break the protocol.
"""

from dataclasses import dataclass
import math
from typing import Optional

import numpy as np

from .config import BuildConfig
from .fixed import QFormat
from .formats import NumberFormats
from .gru import DIRECTIONS, GRUDirectionWeights
from .protocol import (CRC, GLU_HEADER, INFO_BIDIRECTIONAL, INFO_CONFIG_SIZES, INFO_FORMATS,
                       INFO_LANE_WIDTH, INFO_LANE_WIDTH_SHIFT, INFO_LAYOUT, INFO_NO_GLU,
                       INFO_SIMULATED, LOAD_H0_HEADER, LOAD_HEADER, MAX_PAYLOAD,
                       PROTOCOL_VERSION, REQUEST_HEADER, RESPONSE_FLAG, RESPONSE_HEADER,
                       RUN_HEADER, Command, FrameError, LoadFlag, RunFlag, Status, cobs_decode,
                       cobs_encode, crc16, info_payload)


__all__ = [
    "MAX_PAYLOAD", "REQUEST_OVERHEAD", "RESPONSE_OVERHEAD", "FRAME_STATUSES", "LoadFlag",
    "RunFlag", "ProtocolError", "DeviceError", "command_name", "max_encoded_length",
    "encode_request", "encode_response", "Request", "Response", "decode_request",
    "decode_response", "FrameReader", "DeviceInfo", "encode_info_response",
    "decode_info_response", "LoadRequest", "load_payload_length", "encode_load_request",
    "decode_load_request", "RunRequest", "RunResponse", "run_payload_length",
    "run_response_length", "encode_run_request", "decode_run_request", "encode_run_response",
    "decode_run_response", "glu_payload_length", "encode_glu_request", "decode_glu_request",
    "encode_glu_response", "decode_glu_response",
]


REQUEST_OVERHEAD = REQUEST_HEADER.size + CRC.size
"""Bytes of a request body besides its payload: command, sequence, length, CRC."""

RESPONSE_OVERHEAD = RESPONSE_HEADER.size + CRC.size
"""Bytes of a response body besides its payload: the request's four, and the status."""

FRAME_STATUSES = frozenset({Status.TOO_LARGE, Status.BAD_FRAME, Status.BAD_CRC})
"""Statuses a device decides before the CRC vouched for the frame: their command and
sequence bytes are not to be trusted."""

_CODE = np.dtype("<i2")
_LENGTH = np.dtype("<u2")


class ProtocolError(Exception):
    """Bytes that break the protocol: a damaged frame, or a payload that does not fit.

    Parameters
    ----------
    message : str
        What was wrong, and what to do.
    status : Status, optional
        What a device answers to the request that raised this; decoders of requests set it.
    """

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


_ADVICE = {
    Status.BAD_CRC: "a frame reached the device damaged (its CRC did not match) and was not "
                    "executed; check the link (baud rate, cable, electrical noise) and send "
                    "the request again",
    Status.UNKNOWN_COMMAND: "the device does not know this command: its bitstream speaks "
                            "another protocol version than this host; compare them with "
                            "Client.info() and update one of the two",
    Status.TOO_LARGE: "the request was longer than the device's receive buffer (max_payload "
                      f"in INFO), or its response would exceed {MAX_PAYLOAD} bytes; send fewer "
                      "sequences or steps per request",
    Status.NOT_LOADED: "the weights this RUN names are not loaded with these sizes, this form "
                       "and this batch of initial states; LOAD them first (a device that was "
                       "reset or power-cycled has forgotten them)",
    Status.MALFORMED: "the device found the request's fields inconsistent; this is a bug in "
                      "the host software, or the device speaks another protocol version",
    Status.BEYOND_MAXIMA: "a size is beyond the build's maxima; read them with Client.info() "
                          "and make the model or the batch fit",
    Status.BAD_FRAME: "a frame reached the device damaged (not valid COBS, or shorter than a "
                      "header) and was not executed; check the link (baud rate, cable, "
                      "electrical noise) and send the request again",
}


class DeviceError(RuntimeError):
    """The device answered a request with a status other than ``OK``.

    Parameters
    ----------
    status : Status
    command : str
        Name of the request, such as ``"RUN"``.
    detail : str, optional
        What else the host knows, appended to the message.
    """

    def __init__(self, status, command, detail=None):
        self.status = Status(status)
        self.command = command
        message = f"the device answered {command} with {self.status.name}: {_ADVICE[self.status]}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


def command_name(command):
    """Name of a command code: ``"RUN"``, or ``"command 0x42"`` for a code of no command."""
    try:
        return Command(command).name
    except ValueError:
        return f"command 0x{command:02X}"


# --- frames ----------------------------------------------------------------------------------

def max_encoded_length(body_length):
    """The most bytes COBS makes of a body of ``body_length`` bytes (the zero not counted)."""
    return body_length + body_length // 254 + 1


def _frame(body):
    return cobs_encode(body + CRC.pack(crc16(body))) + b"\x00"


def _check_payload_size(payload):
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"a payload of {len(payload)} bytes does not fit a frame, whose length "
                         f"field counts at most {MAX_PAYLOAD}; split the work into smaller "
                         f"requests")


def encode_request(command, sequence, payload=b""):
    """Frame a request: ``COBS(body) + b"\\x00"``.

    Parameters
    ----------
    command : int
        A :class:`Command`, or any other code below 0x80, so that tests can send codes of
        no command.
    sequence : int
        Taken modulo 256.
    payload : bytes
    """
    if not 0 <= command < RESPONSE_FLAG:
        raise ValueError(f"a request's command is 0..0x7F (bit 7 marks responses), not "
                         f"{command:#x}")
    payload = bytes(payload)
    _check_payload_size(payload)
    return _frame(REQUEST_HEADER.pack(command, sequence & 0xFF, len(payload)) + payload)


def encode_response(command, sequence, status, payload=b""):
    """Frame a response to request ``command`` (the response flag is set here)."""
    payload = bytes(payload)
    _check_payload_size(payload)
    return _frame(RESPONSE_HEADER.pack(command | RESPONSE_FLAG, sequence & 0xFF, len(payload),
                                        status) + payload)


@dataclass(frozen=True)
class Request:
    """A decoded request body."""

    command: int
    sequence: int
    payload: bytes


@dataclass(frozen=True)
class Response:
    """A decoded response body; ``command`` is the request's, without the response flag."""

    command: int
    sequence: int
    status: Status
    payload: bytes


def _crc_matches(body):
    return crc16(body[:-CRC.size]) == CRC.unpack_from(body, len(body) - CRC.size)[0]


def decode_request(frame, max_payload=MAX_PAYLOAD):
    """Decode a request frame (its COBS bytes, the zero removed) as a device does.

    Parameters
    ----------
    frame : bytes
    max_payload : int
        The largest payload the device accepts.

    Raises
    ------
    ProtocolError
        With ``status`` the device's answer: ``TOO_LARGE``, ``BAD_FRAME``, ``BAD_CRC`` or
        ``MALFORMED``, checked in that order (``docs/protocol.md``).
    """
    limit = REQUEST_OVERHEAD + max_payload
    if len(frame) > max_encoded_length(limit):
        raise ProtocolError(f"a frame of {len(frame)} COBS bytes is longer than any request "
                            f"of at most {max_payload} payload bytes", Status.TOO_LARGE)
    try:
        body = cobs_decode(frame)
    except FrameError as error:
        raise ProtocolError(f"a frame is not valid COBS: {error}", Status.BAD_FRAME) from None
    if len(body) > limit:
        raise ProtocolError(f"a request body of {len(body)} bytes carries more than "
                            f"{max_payload} payload bytes", Status.TOO_LARGE)
    if len(body) < REQUEST_OVERHEAD:
        raise ProtocolError(f"a body of {len(body)} bytes is shorter than a request's "
                            f"{REQUEST_OVERHEAD}", Status.BAD_FRAME)
    if not _crc_matches(body):
        raise ProtocolError("a request's CRC does not match its body", Status.BAD_CRC)
    command, sequence, length = REQUEST_HEADER.unpack_from(body)
    if length != len(body) - REQUEST_OVERHEAD:
        raise ProtocolError(f"a request's length field says {length} payload bytes; the body "
                            f"holds {len(body) - REQUEST_OVERHEAD}", Status.MALFORMED)
    return Request(command, sequence, body[REQUEST_HEADER.size:-CRC.size])


def decode_response(frame):
    """Decode a response frame (its COBS bytes, the zero removed) as the host does.

    Raises
    ------
    ProtocolError
        The frame was damaged, or is no response of this protocol.
    """
    advice = ("it was damaged on its way from the device; if this recurs, check the link "
              "(baud rate, cable, electrical noise)")
    if len(frame) > max_encoded_length(RESPONSE_OVERHEAD + MAX_PAYLOAD):
        raise ProtocolError(f"a frame of {len(frame)} or more bytes is longer than any "
                            f"response: {advice}")
    try:
        body = cobs_decode(frame)
    except FrameError as error:
        raise ProtocolError(f"a response frame is not valid COBS ({error}): {advice}") from None
    if len(body) < RESPONSE_OVERHEAD:
        raise ProtocolError(f"a response body of {len(body)} bytes is shorter than a "
                            f"response header: {advice}")
    if not _crc_matches(body):
        raise ProtocolError(f"a response's CRC does not match its body: {advice}")
    command, sequence, length, status = RESPONSE_HEADER.unpack_from(body)
    if not command & RESPONSE_FLAG:
        raise ProtocolError(f"a frame with command byte 0x{command:02X} lacks the response "
                            f"flag: the host reads a request, so something echoes the "
                            f"host's bytes back (a loopback plug, or a terminal's local echo)")
    if length != len(body) - RESPONSE_OVERHEAD:
        raise ProtocolError(f"a response's length field says {length} payload bytes; the body "
                            f"holds {len(body) - RESPONSE_OVERHEAD}: the device breaks the "
                            f"protocol")
    try:
        status = Status(status)
    except ValueError:
        raise ProtocolError(f"a response has status 0x{status:02X}, which protocol version "
                            f"{PROTOCOL_VERSION} does not define: the device speaks another "
                            f"version") from None
    if status != Status.OK and length:
        raise ProtocolError(f"a {status.name} response carries {length} payload bytes; error "
                            f"responses carry none: the device breaks the protocol")
    return Response(command & ~RESPONSE_FLAG, sequence, status,
                    body[RESPONSE_HEADER.size:-CRC.size])


class FrameReader:
    """Split a byte stream into frames at its zero bytes.

    Garbage costs at most the frames it touches: it becomes a frame of its own or part of the
    frame it precedes, either of which then fails to decode, and the next zero starts afresh.
    Empty frames (consecutive zeros) are skipped.

    Parameters
    ----------
    max_frame : int
        Longest frame to keep. A longer one is cut to ``max_frame + 1`` bytes, so memory stays
        bounded while its length still shows that it was too long.
    """

    def __init__(self, max_frame):
        self.max_frame = max_frame
        self._partial = bytearray()

    def feed(self, data):
        """Take bytes; return the frames they complete (COBS bytes, zeros removed)."""
        *complete, rest = bytes(data).split(b"\x00")
        frames = []
        for piece in complete:
            self._append(piece)
            if self._partial:
                frames.append(bytes(self._partial))
                self._partial.clear()
        self._append(rest)
        return frames

    def _append(self, piece):
        room = self.max_frame + 1 - len(self._partial)
        if room > 0:
            self._partial += piece[:room]

    @property
    def pending(self):
        """Bytes of an unfinished frame held."""
        return len(self._partial)

    def clear(self):
        """Forget an unfinished frame."""
        self._partial.clear()


# --- payload fields --------------------------------------------------------------------------

class _Fields:
    """Reads a payload field by field; a payload that runs short or long is MALFORMED."""

    def __init__(self, payload, command):
        self._payload = payload
        self._offset = 0
        self._command = command

    def _take(self, size, what):
        if self._offset + size > len(self._payload):
            raise ProtocolError(f"a {self._command} payload of {len(self._payload)} bytes ends "
                                f"inside its {what}", Status.MALFORMED)
        start = self._offset
        self._offset += size
        return start

    def unpack(self, layout, what):
        return layout.unpack_from(self._payload, self._take(layout.size, what))

    def array(self, dtype, shape, what):
        count = math.prod(shape)
        start = self._take(count * dtype.itemsize, what)
        values = np.frombuffer(self._payload, dtype, count, start)
        return values.astype(np.int64).reshape(shape)

    def finish(self):
        extra = len(self._payload) - self._offset
        if extra:
            raise ProtocolError(f"a {self._command} payload has {extra} bytes beyond its "
                                f"fields", Status.MALFORMED)


def _code_bytes(codes, name):
    codes = np.asarray(codes)
    if codes.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integer codes, not {codes.dtype}; quantise them first")
    if codes.size and (codes.min() < -0x8000 or codes.max() > 0x7FFF):
        raise ValueError(f"{name} hold codes outside int16 [-32768, 32767]; protocol version "
                         f"{PROTOCOL_VERSION} carries 16-bit codes only")
    return codes.astype(_CODE).tobytes()


# --- INFO ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeviceInfo:
    """What a device reports about itself in answer to INFO.

    Parameters
    ----------
    config : BuildConfig
        Maxima, lanes and number formats of the build.
    max_payload : int
        The largest request payload the device accepts, in bytes.
    clock_hz : int
        The accelerator's clock, 0 when unknown.
    protocol_version : int
    simulated : bool
        The device is the RTL in a simulator (INFO's flag), whose answers take wall-clock
        seconds to minutes where a board's take microseconds.
    """

    config: BuildConfig
    max_payload: int
    clock_hz: int = 0
    protocol_version: int = PROTOCOL_VERSION
    simulated: bool = False


def encode_info_response(info):
    """The payload of an INFO response."""
    return info_payload(info.config, info.max_payload, info.clock_hz, info.protocol_version,
                        simulated=info.simulated)


def decode_info_response(payload):
    """Decode an INFO response's payload into a :class:`DeviceInfo`.

    Raises
    ------
    ProtocolError
        The device speaks another protocol version, or reports a configuration that cannot be.
    """
    if not payload:
        raise ProtocolError("an INFO response carries no payload; it must start with the "
                            "protocol version")
    if payload[0] != PROTOCOL_VERSION:
        raise ProtocolError(f"the device speaks protocol version {payload[0]}, this host "
                            f"version {PROTOCOL_VERSION}: update gatework or the bitstream so "
                            f"that they agree")
    if len(payload) != INFO_LAYOUT.size:
        raise ProtocolError(f"an INFO response of protocol version {PROTOCOL_VERSION} carries "
                            f"{INFO_LAYOUT.size} bytes, not {len(payload)}: the device breaks the "
                            f"protocol")
    fields = INFO_LAYOUT.as_dict(payload)
    flags = fields["flags"]
    if flags & ~(INFO_BIDIRECTIONAL | INFO_NO_GLU | INFO_LANE_WIDTH | INFO_SIMULATED):
        raise ProtocolError(f"INFO's flags byte is {flags:#04x}, which has bits this version "
                            f"does not define: the device breaks the protocol")
    try:
        formats = NumberFormats(
            **{name: QFormat(fields[f"{name}_integer_bits"], fields[f"{name}_fraction_bits"])
               for name in INFO_FORMATS},
            table_range_log2=fields["table_range_log2"],
            table_segments_log2=fields["table_segments_log2"])
        config = BuildConfig(**{name: fields[name] for name in INFO_CONFIG_SIZES},
                             bidirectional=bool(flags & INFO_BIDIRECTIONAL),
                             glu=not flags & INFO_NO_GLU, formats=formats,
                             lane_width=1 << ((flags & INFO_LANE_WIDTH) >> INFO_LANE_WIDTH_SHIFT))
    except ValueError as error:
        raise ProtocolError(f"the device reports a configuration that cannot be ({error}): "
                            f"its bitstream is broken or speaks another protocol") from None
    return DeviceInfo(config, fields["max_payload"], fields["clock_hz"], PROTOCOL_VERSION,
                      simulated=bool(flags & INFO_SIMULATED))


# --- LOAD ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class LoadRequest:
    """One LOAD: the weights of one layer and direction, and optionally initial states.

    Parameters
    ----------
    layer, direction : int
        The slot. ``direction`` is 1 only for the reverse half of a bidirectional GRU.
    cell : GRUDirectionWeights
        Integer codes; without biases is the same as zero biases.
    linear_before_reset : bool
    h0 : numpy.ndarray, optional
        ``(N, H)`` codes: the initial state of each sequence a RUN with ``use_h0`` starts from.
    """

    layer: int
    direction: int
    cell: GRUDirectionWeights
    linear_before_reset: bool = True
    h0: Optional[np.ndarray] = None

    @property
    def input_size(self):
        return self.cell.input_size

    @property
    def hidden_size(self):
        return self.cell.hidden_size

    @property
    def batch(self):
        """``N`` of the initial states, or ``None`` without them."""
        return None if self.h0 is None else len(self.h0)

    def payload_length(self):
        return load_payload_length(self.input_size, self.hidden_size, self.cell.bias,
                                   self.batch)


def load_payload_length(input_size, hidden_size, bias, h0_batch=None):
    """Bytes of a LOAD payload; ``h0_batch`` is ``None`` without initial states."""
    length = LOAD_HEADER.size + 2 * 3 * hidden_size * (input_size + hidden_size)
    if bias:
        length += 2 * 6 * hidden_size
    if h0_batch is not None:
        length += LOAD_H0_HEADER.size + 2 * h0_batch * hidden_size
    return length


def encode_load_request(request):
    """The payload of a LOAD request."""
    cell, h0 = request.cell, request.h0
    flags = LoadFlag(0)
    if cell.bias:
        flags |= LoadFlag.HAS_BIAS
    if request.linear_before_reset:
        flags |= LoadFlag.LINEAR_BEFORE_RESET
    if h0 is not None:
        flags |= LoadFlag.HAS_H0
    parts = [LOAD_HEADER.encode(layer=request.layer, direction=request.direction,
                                input_size=cell.input_size, hidden_size=cell.hidden_size,
                                flags=flags),
             _code_bytes(cell.weight_ih, "weight_ih"), _code_bytes(cell.weight_hh, "weight_hh")]
    if cell.bias:
        parts += [_code_bytes(cell.bias_ih, "bias_ih"), _code_bytes(cell.bias_hh, "bias_hh")]
    if h0 is not None:
        h0 = np.asarray(h0)
        if h0.ndim != 2 or h0.shape[1] != cell.hidden_size or not h0.shape[0]:
            raise ValueError(f"h0 must have shape (N, {cell.hidden_size}) with N >= 1, not "
                             f"{h0.shape}")
        parts += [LOAD_H0_HEADER.encode(batch=h0.shape[0]), _code_bytes(h0, "h0")]
    return b"".join(parts)


def decode_load_request(payload):
    """Decode a LOAD request's payload; ``ProtocolError`` (``MALFORMED``) if it breaks it."""
    fields = _Fields(payload, "LOAD")
    layer, direction, input_size, hidden_size, flags = fields.unpack(LOAD_HEADER, "header")
    if flags & ~sum(LoadFlag):
        raise ProtocolError(f"LOAD flags 0x{flags:02X} set reserved bits", Status.MALFORMED)
    if not input_size or not hidden_size:
        raise ProtocolError(f"LOAD sizes must be at least 1: input_size {input_size}, "
                            f"hidden_size {hidden_size}", Status.MALFORMED)
    three_h = 3 * hidden_size
    weight_ih = fields.array(_CODE, (three_h, input_size), "weight_ih")
    weight_hh = fields.array(_CODE, (three_h, hidden_size), "weight_hh")
    biases = ()
    if flags & LoadFlag.HAS_BIAS:
        biases = (fields.array(_CODE, (three_h,), "bias_ih"),
                  fields.array(_CODE, (three_h,), "bias_hh"))
    h0 = None
    if flags & LoadFlag.HAS_H0:
        (batch,) = fields.unpack(LOAD_H0_HEADER, "batch of h0")
        if not batch:
            raise ProtocolError("LOAD's h0 batch must be at least 1", Status.MALFORMED)
        h0 = fields.array(_CODE, (batch, hidden_size), "h0")
    fields.finish()
    return LoadRequest(layer, direction, GRUDirectionWeights(weight_ih, weight_hh, *biases),
                       bool(flags & LoadFlag.LINEAR_BEFORE_RESET), h0)


# --- RUN -------------------------------------------------------------------------------------

def run_payload_length(batch, total_steps, input_size):
    """Bytes of a RUN payload: ``batch`` sequences of ``total_steps`` steps in all."""
    return RUN_HEADER.size + 2 * batch + 2 * total_steps * input_size


def run_response_length(batch, total_steps, num_layers, directions, hidden_size,
                        final_only=False, glu=False):
    """Bytes of a RUN response's payload: ``batch`` sequences of ``total_steps`` steps in all."""
    features = directions * hidden_size // (2 if glu else 1)
    outputs = 0 if final_only else 2 * total_steps * features
    return outputs + 2 * num_layers * directions * batch * hidden_size


@dataclass(frozen=True, eq=False)
class RunRequest:
    """One RUN: a GRU over a batch of sequences of their own lengths.

    Parameters
    ----------
    inputs : numpy.ndarray
        ``(sum(lengths), D)`` data codes: the sequences one after the other (batch-major,
        ragged, as :func:`gatework.golden.transposer.unpack` lays them out).
    lengths : numpy.ndarray
        ``(N,)`` valid steps of each sequence, each in ``1..steps``.
    num_layers, hidden_size : int
    steps : int, optional
        ``T``; the longest length when omitted.
    direction : str
        ``"forward"``, ``"reverse"`` or ``"bidirectional"``.
    linear_before_reset : bool
    final_only : bool
        Ask for the final states only.
    use_h0 : bool
        Start from the initial states loaded with the weights.
    glu : bool
        Apply the GLU over the features of the last layer's output.
    """

    inputs: np.ndarray
    lengths: np.ndarray
    num_layers: int
    hidden_size: int
    steps: Optional[int] = None
    direction: str = "forward"
    linear_before_reset: bool = True
    final_only: bool = False
    use_h0: bool = False
    glu: bool = False

    def __post_init__(self):
        lengths = np.asarray(self.lengths)
        if lengths.ndim != 1 or not lengths.size or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be a non-empty 1-D integer array, not "
                             f"{lengths.dtype} of shape {lengths.shape}")
        lengths = lengths.astype(np.int64)
        steps = int(lengths.max()) if self.steps is None else int(self.steps)
        if lengths.min() < 1 or lengths.max() > steps:
            raise ValueError(f"every length must be in 1..{steps} (the steps); got "
                             f"{lengths.tolist()}")
        inputs = np.asarray(self.inputs)
        if inputs.ndim != 2 or inputs.shape[0] != lengths.sum() or not inputs.shape[1]:
            raise ValueError(f"inputs must have shape (sum(lengths), D) = ({lengths.sum()}, D) "
                             f"with D >= 1, not {inputs.shape}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {self.direction!r}")
        if self.num_layers < 1 or self.hidden_size < 1:
            raise ValueError(f"num_layers and hidden_size must be at least 1, not "
                             f"{self.num_layers} and {self.hidden_size}")
        features = self.num_directions * self.hidden_size
        if self.glu and (self.final_only or features % 2):
            raise ValueError(f"glu halves the {features} output features, so it needs them "
                             f"even and sent (not final_only)")
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "steps", steps)

    @property
    def batch(self):
        return len(self.lengths)

    @property
    def input_size(self):
        return self.inputs.shape[1]

    @property
    def num_directions(self):
        return 2 if self.direction == "bidirectional" else 1

    @property
    def output_features(self):
        """Features of each output row: ``directions * H``, halved by the GLU."""
        return self.num_directions * self.hidden_size // (2 if self.glu else 1)

    def payload_length(self):
        return run_payload_length(self.batch, int(self.lengths.sum()), self.input_size)

    def response_length(self):
        return run_response_length(self.batch, int(self.lengths.sum()), self.num_layers,
                                   self.num_directions, self.hidden_size, self.final_only,
                                   self.glu)


@dataclass(frozen=True, eq=False)
class RunResponse:
    """What a RUN returns.

    Parameters
    ----------
    outputs : numpy.ndarray or None
        ``(sum(lengths), F)`` codes, batch-major and ragged; ``None`` for ``final_only``.
    h_n : numpy.ndarray
        ``(num_layers * directions, N, H)`` codes.
    """

    outputs: Optional[np.ndarray]
    h_n: np.ndarray


def encode_run_request(request):
    """The payload of a RUN request."""
    flags = RunFlag(0)
    for flag, on in ((RunFlag.BIDIRECTIONAL, request.direction == "bidirectional"),
                     (RunFlag.REVERSE, request.direction == "reverse"),
                     (RunFlag.LINEAR_BEFORE_RESET, request.linear_before_reset),
                     (RunFlag.FINAL_ONLY, request.final_only), (RunFlag.USE_H0, request.use_h0),
                     (RunFlag.GLU, request.glu)):
        if on:
            flags |= flag
    header = RUN_HEADER.encode(num_layers=request.num_layers, flags=flags,
                               batch=request.batch, steps=request.steps,
                               input_size=request.input_size, hidden_size=request.hidden_size)
    return (header + request.lengths.astype(_LENGTH).tobytes()
            + _code_bytes(request.inputs, "inputs"))


def decode_run_request(payload):
    """Decode a RUN request's payload; ``ProtocolError`` (``MALFORMED``) if it breaks it."""
    fields = _Fields(payload, "RUN")
    num_layers, flags, batch, steps, input_size, hidden_size = fields.unpack(RUN_HEADER,
                                                                             "header")
    if flags & ~sum(RunFlag):
        raise ProtocolError(f"RUN flags 0x{flags:02X} set reserved bits", Status.MALFORMED)
    flags = RunFlag(flags)
    if RunFlag.BIDIRECTIONAL in flags and RunFlag.REVERSE in flags:
        raise ProtocolError("RUN flags ask for bidirectional and a lone reverse direction at "
                            "once", Status.MALFORMED)
    if not all((num_layers, batch, steps, input_size, hidden_size)):
        raise ProtocolError(f"RUN sizes must be at least 1: num_layers {num_layers}, batch "
                            f"{batch}, steps {steps}, input_size {input_size}, hidden_size "
                            f"{hidden_size}", Status.MALFORMED)
    lengths = fields.array(_LENGTH, (batch,), "lengths")
    inputs = fields.array(_CODE, (int(lengths.sum()), input_size), "inputs")
    fields.finish()
    direction = ("bidirectional" if RunFlag.BIDIRECTIONAL in flags else
                 "reverse" if RunFlag.REVERSE in flags else "forward")
    try:
        return RunRequest(inputs, lengths, num_layers, hidden_size, steps, direction,
                          RunFlag.LINEAR_BEFORE_RESET in flags, RunFlag.FINAL_ONLY in flags,
                          RunFlag.USE_H0 in flags, RunFlag.GLU in flags)
    except ValueError as error:
        raise ProtocolError(f"RUN fields do not fit together: {error}",
                            Status.MALFORMED) from None


def encode_run_response(response):
    """The payload of a RUN response."""
    outputs = b"" if response.outputs is None else _code_bytes(response.outputs, "outputs")
    return outputs + _code_bytes(response.h_n, "h_n")


def decode_run_response(payload, request):
    """Decode the payload of the response to ``request`` (a :class:`RunRequest`)."""
    if len(payload) != request.response_length():
        raise ProtocolError(f"a RUN response carries {len(payload)} bytes; the request asks "
                            f"for {request.response_length()}: the device breaks the protocol")
    fields = _Fields(payload, "RUN response")
    outputs = None
    if not request.final_only:
        outputs = fields.array(_CODE, (int(request.lengths.sum()), request.output_features),
                               "outputs")
    h_n = fields.array(_CODE, (request.num_layers * request.num_directions, request.batch,
                               request.hidden_size), "h_n")
    return RunResponse(outputs, h_n)


# --- GLU -------------------------------------------------------------------------------------

def glu_payload_length(count, channels):
    """Bytes of a GLU request payload: ``count`` vectors of ``2 * channels`` codes."""
    return GLU_HEADER.size + 4 * count * channels


def encode_glu_request(values):
    """The payload of a GLU request; ``values`` ``(M, 2C)`` codes, ``a`` then ``b`` of each."""
    values = np.asarray(values)
    if values.ndim != 2 or not values.shape[0] or not values.shape[1] or values.shape[1] % 2:
        raise ValueError(f"GLU values must have shape (M, 2C) with M, C >= 1, not "
                         f"{values.shape}")
    count, channels = values.shape[0], values.shape[1] // 2
    return (GLU_HEADER.encode(channels=channels, count=count) +
            _code_bytes(values, "GLU values"))


def decode_glu_request(payload):
    """Decode a GLU request's payload into ``(M, 2C)`` codes."""
    fields = _Fields(payload, "GLU")
    channels, count = fields.unpack(GLU_HEADER, "header")
    if not channels or not count:
        raise ProtocolError(f"GLU channels and count must be at least 1, not {channels} and "
                            f"{count}", Status.MALFORMED)
    values = fields.array(_CODE, (count, 2 * channels), "values")
    fields.finish()
    return values


def encode_glu_response(values):
    """The payload of a GLU response: ``(M, C)`` codes."""
    return _code_bytes(values, "GLU outputs")


def decode_glu_response(payload, count, channels):
    """Decode a GLU response's payload into ``(count, channels)`` codes."""
    if len(payload) != 2 * count * channels:
        raise ProtocolError(f"a GLU response carries {len(payload)} bytes; {count} vectors of "
                            f"{channels} need {2 * count * channels}: the device breaks the "
                            f"protocol")
    return _Fields(payload, "GLU response").array(_CODE, (count, channels), "outputs")
