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
"""

import enum
import struct


__all__ = ["PROTOCOL_VERSION", "Command", "Status", "RESPONSE_FLAG", "crc16", "cobs_encode",
           "cobs_decode", "FrameError", "INFO_LAYOUT", "INFO_CONFIG_SIZES", "INFO_FORMATS",
           "DEFAULT_BAUD", "INFO_BIDIRECTIONAL", "INFO_NO_GLU", "INFO_LANE_WIDTH",
           "INFO_LANE_WIDTH_SHIFT", "INFO_SIMULATED", "info_flags", "info_payload"]


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


#: INFO's response payload: version, the six sizes, a flags byte (bit 0: bidirectional banks;
#: bit 1: no GLU unit; bits 2-3: log2 of the lanes' width; bit 4: a simulation), five
#: (integer, fraction) bit pairs, the table's two shape numbers, max_payload and clock_hz.
INFO_LAYOUT = struct.Struct("<B6HB10BBBHI")
INFO_CONFIG_SIZES = ("lanes", "max_input_size", "max_hidden_size", "max_batch", "max_steps",
                     "max_layers")
INFO_FORMATS = ("data", "weight", "bias", "preactivation", "activation")


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
    fields = [version] + [getattr(config, name) for name in INFO_CONFIG_SIZES]
    fields.append(info_flags(config, simulated))
    for name in INFO_FORMATS:
        fmt = getattr(formats, name)
        fields += [fmt.integer_bits, fmt.fraction_bits]
    fields += [formats.table_range_log2, formats.table_segments_log2, max_payload, clock_hz]
    try:
        return INFO_LAYOUT.pack(*fields)
    except struct.error as error:
        raise ValueError(f"{config} (max_payload {max_payload}, clock {clock_hz} Hz) does not "
                         f"fit INFO's fields: {error}") from None
