"""The wire protocol's constants and byte rules, defined once for the host and the gateware.

A frame on the wire is ``COBS(body) + b"\\x00"``: Consistent Overhead Byte Stuffing removes
every zero byte from the body, so a zero always ends a frame and a receiver that lost its
place (garbage, a dropped byte) finds the next frame at the next zero. That is why COBS was
chosen over a length prefix, which needs a sync pattern and a timeout to recover.

Bodies (all integers little-endian)::

    request:  command u8 | sequence u8 | length u16 | payload[length] | crc u16
    response: command | 0x80 u8 | sequence u8 | length u16 | status u8 | payload[length] | crc u16

``crc`` is CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection, no final
xor) of every byte of the body before it. ``length`` counts payload bytes only. A response
echoes its request's command (with bit 7 set) and sequence number. The full protocol,
payloads included, is ``docs/protocol.md``.

Every fixed layout (the body headers, the CRC, the headers of LOAD, RUN and GLU payloads, and
INFO's payload) is a :class:`Header`: a table of named little-endian fields, with the flag
bits of a flags field named by an :class:`enum.IntFlag`. The host packs and unpacks bytes with
it (a :class:`Header` is a :class:`struct.Struct`); the gateware makes its
``amaranth.lib.data`` layouts from the same table (:func:`gatework.hdl.protocol.layout`) and
decodes fields through them, so that no offset, width or flag bit is written twice.
"""

import enum
import struct
from typing import NamedTuple, Optional

from .formats import FORMAT_NAMES


__all__ = ["PROTOCOL_VERSION", "Command", "Status", "RESPONSE_FLAG", "crc16", "cobs_encode",
           "cobs_decode", "FrameError", "Field", "Header", "REQUEST_HEADER", "RESPONSE_HEADER",
           "CRC", "MAX_PAYLOAD", "LoadFlag", "RunFlag", "LOAD_HEADER", "LOAD_H0_HEADER",
           "RUN_HEADER", "GLU_HEADER", "HEADERS", "INFO_LAYOUT", "INFO_CONFIG_SIZES",
           "INFO_FORMATS", "DEFAULT_BAUD",
           "INFO_BIDIRECTIONAL", "INFO_NO_GLU", "INFO_LANE_WIDTH", "INFO_LANE_WIDTH_SHIFT",
           "INFO_SIMULATED", "info_flags", "info_payload"]


PROTOCOL_VERSION = 1

RESPONSE_FLAG = 0x80


class Command(enum.IntEnum):
    """Request codes. Gateware decoder and host encoder both take them from here."""

    INFO = 0x01
    LOAD = 0x02
    RUN = 0x03
    GLU = 0x04
    RESET = 0x05


class Status(enum.IntEnum):
    """The ``status`` field of every response body (it precedes the payload)."""

    OK = 0x00
    BAD_CRC = 0x01           # the frame's CRC did not match: nothing was done
    UNKNOWN_COMMAND = 0x02
    TOO_LARGE = 0x03         # the frame is longer than the device's receive buffer, or the
                             # response would not fit a 16-bit length
    NOT_LOADED = 0x04        # RUN before the weights it names were loaded
    MALFORMED = 0x05         # the payload's length or fields do not fit the command
    BEYOND_MAXIMA = 0x06     # sizes beyond the build's maxima (INFO tells them)
    BAD_FRAME = 0x07         # COBS decoding failed or the body is shorter than a header


class FrameError(ValueError):
    """A byte string is not a valid COBS encoding or frame body."""


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of ``data`` (bytes), continuing from ``crc``."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def cobs_encode(data):
    """COBS-encode ``data``: the result holds no zero byte (the frame delimiter)."""
    out = bytearray()
    block = bytearray()
    for byte in bytes(data):
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data):
    """Invert :func:`cobs_encode`; raise :class:`FrameError` on an invalid encoding."""
    data = bytes(data)
    out = bytearray()
    index = 0
    while index < len(data):
        code = data[index]
        if code == 0:
            raise FrameError(f"a zero byte at offset {index} inside a COBS frame")
        end = index + code
        if end > len(data):
            raise FrameError(f"a COBS block at offset {index} runs past the frame's end")
        block = data[index + 1:end]
        if 0 in block:
            raise FrameError("a zero byte inside a COBS block")
        out += block
        index = end
        if code != 255 and index < len(data):
            out.append(0)
    return bytes(out)


class Field(NamedTuple):
    """One field of a :class:`Header`: an unsigned little-endian integer.

    ``flags``, for a flags field, is the :class:`enum.IntFlag` naming its bits, which must be
    its low bits in order (bit 0 the first member); the bits above them are reserved, must
    be zero, and a device answers ``MALFORMED`` when they are not.
    """

    name: str
    size: int                   # bytes: 1, 2 or 4
    flags: Optional[type] = None


_STRUCT_CODES = {1: "B", 2: "H", 4: "I"}


class Header(struct.Struct):
    """A fixed layout of :class:`Field` s, in wire order, packed little-endian.

    A :class:`struct.Struct` of the fields (``pack(*values)``, ``unpack(data)``, ``size``),
    which also knows their names (:meth:`as_dict`), offsets and ranges.
    """

    def __init__(self, name, *fields):
        for field in fields:
            if field.size not in _STRUCT_CODES:
                raise ValueError(f"{name}'s field {field.name} has {field.size} bytes; a field "
                                 f"has 1, 2 or 4")
            if field.flags is not None:
                bits = [flag.value for flag in field.flags]
                if bits != [1 << index for index in range(len(bits))] or \
                        len(bits) > 8 * field.size:
                    raise ValueError(f"{field.flags.__name__} must name the low bits of "
                                     f"{name}'s {field.name} in order")
        self.name = name
        self.fields = tuple(fields)
        self._by_name = {field.name: field for field in fields}
        self._offsets = {}
        offset = 0
        for field in fields:
            self._offsets[field.name] = offset
            offset += field.size
        super().__init__("<" + "".join(_STRUCT_CODES[field.size] for field in fields))

    def offset(self, name):
        """The byte offset of field ``name``."""
        return self._offsets[name]

    def maximum(self, name):
        """The largest value field ``name`` holds."""
        return (1 << 8 * self._by_name[name].size) - 1

    def encode(self, **values):
        """Pack every field, given by name; ``ValueError`` names a value that does not fit."""
        if set(values) != set(self._by_name):
            raise KeyError(f"{self.name} has the fields {[f.name for f in self.fields]}, not "
                           f"{sorted(values)}")
        for field in self.fields:
            value = values[field.name]
            if not 0 <= value <= self.maximum(field.name):
                raise ValueError(f"{self.name}'s {field.name} {value} does not fit its "
                                 f"{8 * field.size}-bit field")
        return self.pack(*(values[field.name] for field in self.fields))

    def as_dict(self, data, offset=0):
        """The fields' values in ``data`` (at ``offset``), by name."""
        return dict(zip((field.name for field in self.fields), self.unpack_from(data, offset)))

    def __repr__(self):
        return f"<Header {self.name}: {', '.join(field.name for field in self.fields)}>"


REQUEST_HEADER = Header("request", Field("command", 1), Field("sequence", 1), Field("length", 2))
RESPONSE_HEADER = Header("response", Field("command", 1), Field("sequence", 1),
                         Field("length", 2), Field("status", 1))
#: The frame check after every body's payload.
CRC = Header("CRC", Field("crc", 2))

MAX_PAYLOAD = REQUEST_HEADER.maximum("length")
"""The most payload bytes the ``length`` field of a body can count (65535)."""


class LoadFlag(enum.IntFlag):
    """Bits of a LOAD request's ``flags``."""

    HAS_BIAS = 0x01
    LINEAR_BEFORE_RESET = 0x02
    HAS_H0 = 0x04


class RunFlag(enum.IntFlag):
    """Bits of a RUN request's ``flags``."""

    BIDIRECTIONAL = 0x01
    REVERSE = 0x02
    LINEAR_BEFORE_RESET = 0x04
    FINAL_ONLY = 0x08
    USE_H0 = 0x10
    GLU = 0x20


#: A LOAD payload's header; the weights follow it (``docs/protocol.md``).
LOAD_HEADER = Header("LOAD", Field("layer", 1), Field("direction", 1), Field("input_size", 2),
                     Field("hidden_size", 2), Field("flags", 1, LoadFlag))
#: What follows a LOAD's weights when it has ``HAS_H0``: the batch of initial states, whose
#: rows follow it.
LOAD_H0_HEADER = Header("LOAD h0", Field("batch", 2))
#: A RUN payload's header; the sequences' lengths and their inputs follow it.
RUN_HEADER = Header("RUN", Field("num_layers", 1), Field("flags", 1, RunFlag),
                    Field("batch", 2), Field("steps", 2), Field("input_size", 2),
                    Field("hidden_size", 2))
#: A GLU payload's header; the vectors follow it.
GLU_HEADER = Header("GLU", Field("channels", 2), Field("count", 2))


INFO_CONFIG_SIZES = ("lanes", "max_input_size", "max_hidden_size", "max_batch", "max_steps",
                     "max_layers")
INFO_FORMATS = FORMAT_NAMES

#: INFO's response payload: version, the six sizes, a flags byte (bit 0: bidirectional banks;
#: bit 1: no GLU unit; bits 2-3: log2 of the lanes' width; bit 4: a simulation), an
#: (integer, fraction) bit pair of each format, the table's two shape numbers, max_payload and
#: clock_hz.
INFO_LAYOUT = Header(
    "INFO", Field("version", 1), *(Field(name, 2) for name in INFO_CONFIG_SIZES),
    Field("flags", 1),
    *(Field(f"{name}_{part}_bits", 1) for name in INFO_FORMATS
      for part in ("integer", "fraction")),
    Field("table_range_log2", 1), Field("table_segments_log2", 1), Field("max_payload", 2),
    Field("clock_hz", 4))

#: Every layout of the protocol, by name.
HEADERS = {header.name: header for header in (REQUEST_HEADER, RESPONSE_HEADER, CRC,
                                               LOAD_HEADER, LOAD_H0_HEADER, RUN_HEADER,
                                               GLU_HEADER, INFO_LAYOUT)}


#: The boards' UART speed (8N1): what the gateware's UART is built for and what the host's
#: serial transport opens a port at unless told otherwise.
DEFAULT_BAUD = 3_000_000

INFO_BIDIRECTIONAL = 0x01
INFO_NO_GLU = 0x02
#: INFO's flag bits holding log2 of ``BuildConfig.lane_width`` (0, 1 or 2).
INFO_LANE_WIDTH_SHIFT = 2
INFO_LANE_WIDTH = 0x0C
#: The device is the RTL in a simulator, thousands of times slower than a board: a host
#: waits for its answers in wall-clock minutes, not seconds.
INFO_SIMULATED = 0x10


def info_flags(config, simulated=False):
    """INFO's flags byte for a :class:`~.config.BuildConfig`."""
    return ((INFO_BIDIRECTIONAL if config.bidirectional else 0) |
            (0 if config.glu else INFO_NO_GLU) |
            (config.lane_width_log2 << INFO_LANE_WIDTH_SHIFT) |
            (INFO_SIMULATED if simulated else 0))


def info_payload(config, max_payload, clock_hz=0, version=PROTOCOL_VERSION, simulated=False):
    """The bytes a device answers INFO with, for a :class:`~.config.BuildConfig`.

    The gateware stores exactly these bytes in a ROM; the host decodes them with the same
    :data:`INFO_LAYOUT`. ``simulated`` is set only for RTL that runs in a simulator.
    """
    formats = config.formats
    fields = {"version": version, **{name: getattr(config, name) for name in INFO_CONFIG_SIZES},
              "flags": info_flags(config, simulated),
              "table_range_log2": formats.table_range_log2,
              "table_segments_log2": formats.table_segments_log2,
              "max_payload": max_payload, "clock_hz": clock_hz}
    for name in INFO_FORMATS:
        fmt = getattr(formats, name)
        fields[f"{name}_integer_bits"] = fmt.integer_bits
        fields[f"{name}_fraction_bits"] = fmt.fraction_bits
    try:
        return INFO_LAYOUT.encode(**fields)
    except ValueError as error:
        raise ValueError(f"{config} (max_payload {max_payload}, clock {clock_hz} Hz) does not "
                         f"fit INFO's fields: {error}") from None
