"""The wire protocol's frames and payloads (``golden/messages.py``, ``golden/protocol.py``)."""

import binascii
import struct

import numpy as np
import pytest

from gatework.golden.config import BuildConfig
from gatework.golden.formats import NumberFormats
from gatework.golden.gru import GRUDirectionWeights
from gatework.golden.protocol import Command, Status, cobs_encode, crc16
from gatework.golden import messages as protocol
from gatework.golden.messages import (DeviceInfo, FrameReader, LoadRequest,
                                    ProtocolError, RunRequest, RunResponse)


def codes(rng, *shape):
    return rng.integers(-0x8000, 0x8000, size=shape)


def body_of(frame):
    """The body inside a frame, CRC included."""
    assert frame.endswith(b"\x00") and frame.count(0) == 1
    return protocol.cobs_decode(frame[:-1])


# --- CRC and frames against hand-computed bytes ----------------------------------------------

def test_crc_known_vector():
    assert crc16(b"123456789") == 0x29B1


def test_crc_matches_an_independent_implementation(rng):
    # binascii.crc_hqx is CRC-CCITT with a chosen start value: from 0xFFFF it is CCITT-FALSE.
    for size in (0, 1, 2, 7, 255, 1000):
        data = rng.integers(0, 256, size).astype(np.uint8).tobytes()
        assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)


def test_info_request_frame_bytes():
    # Body 01 00 00 00 | CRC 0xF274 (little-endian 74 F2). COBS: the three zeros become
    # code bytes: 02 01 | 01 | 01 | 03 74 F2, then the delimiter.
    frame = protocol.encode_request(Command.INFO, 0)
    assert frame == bytes([0x02, 0x01, 0x01, 0x01, 0x03, 0x74, 0xF2, 0x00])
    assert protocol.decode_request(frame[:-1]) == protocol.Request(Command.INFO, 0, b"")
    # Sequence 7 changes the CRC to 0x77E4; 263 wraps to 7.
    assert protocol.encode_request(Command.INFO, 263) == bytes(
        [0x03, 0x01, 0x07, 0x01, 0x03, 0xE4, 0x77, 0x00])


def test_ok_response_frame_bytes():
    # Body 81 05 00 00 00 | CRC 0x25C8 of those five bytes.
    frame = protocol.encode_response(Command.INFO, 5, Status.OK)
    body = bytes([0x81, 0x05, 0x00, 0x00, 0x00])
    assert binascii.crc_hqx(body, 0xFFFF) == 0x25C8
    assert frame == bytes([0x03, 0x81, 0x05, 0x01, 0x01, 0x03, 0xC8, 0x25, 0x00])
    assert protocol.decode_response(frame[:-1]) == protocol.Response(Command.INFO, 5,
                                                                      Status.OK, b"")


@pytest.mark.parametrize("size", [0, 1, 253, 254, 255, 600, protocol.MAX_PAYLOAD])
def test_frames_round_trip(rng, size):
    # Zeros and long runs without zeros both appear: COBS's two cases.
    payload = bytearray(rng.integers(1, 256, size).astype(np.uint8).tobytes())
    for index in rng.integers(0, max(size, 1), size // 300):
        payload[index] = 0
    payload = bytes(payload)
    command, sequence = int(rng.integers(0, 128)), int(rng.integers(0, 256))
    frame = protocol.encode_request(command, sequence, payload)
    assert len(frame) - 1 <= protocol.max_encoded_length(len(payload) + 6)
    assert protocol.decode_request(frame[:-1]) == protocol.Request(command, sequence, payload)
    status = Status(int(rng.integers(0, len(Status))))
    response_payload = payload if status == Status.OK else b""
    frame = protocol.encode_response(command, sequence, status, response_payload)
    assert protocol.decode_response(frame[:-1]) == protocol.Response(command, sequence, status,
                                                                      response_payload)


def test_payloads_beyond_the_length_field_are_refused():
    with pytest.raises(ValueError, match="65535"):
        protocol.encode_request(Command.GLU, 0, bytes(protocol.MAX_PAYLOAD + 1))


# --- request decoding: the device's statuses, in order ---------------------------------------

def frame_of(body):
    return cobs_encode(body)


def with_crc(body):
    return body + crc16(body).to_bytes(2, "little")


@pytest.mark.parametrize("frame, status", [
    (bytes([0x05, 0x01, 0x02]), Status.BAD_FRAME),                  # block runs past the end
    (frame_of(with_crc(b"\x01\x00")), Status.BAD_FRAME),            # shorter than a header
    (frame_of(with_crc(b"\x01\x00\x00\x00")[:-1] + b"\x55"), Status.BAD_CRC),
    (frame_of(with_crc(b"\x01\x00\x02\x00")), Status.MALFORMED),    # length says 2, has 0
    (frame_of(with_crc(b"\x04\x00\x05\x00" + bytes(5))), Status.TOO_LARGE),
    (bytes([0xFF]) * 40, Status.TOO_LARGE),                         # longer than any request
])
def test_request_decoding_statuses(frame, status):
    with pytest.raises(ProtocolError) as error:
        protocol.decode_request(frame, max_payload=4)
    assert error.value.status == status


def test_response_decoding_refuses_requests_and_unknown_statuses():
    request = protocol.encode_request(Command.GLU, 0, b"xy")[:-1]
    with pytest.raises(ProtocolError, match="response flag.*echo"):
        protocol.decode_response(request)
    unknown = frame_of(with_crc(bytes([0x81, 0x00, 0x00, 0x00, 0x42])))
    with pytest.raises(ProtocolError, match="status 0x42.*another version"):
        protocol.decode_response(unknown)
    damaged = bytearray(protocol.encode_response(Command.INFO, 0, Status.OK, b"abc")[:-1])
    damaged[-2] ^= 0x10
    with pytest.raises(ProtocolError, match="CRC does not match.*check the link"):
        protocol.decode_response(bytes(damaged))


# --- payloads round trip ---------------------------------------------------------------------

CONFIGS = [
    BuildConfig(),
    BuildConfig(lanes=3, max_input_size=300, max_hidden_size=5, max_batch=1, max_steps=65535,
                max_layers=7, bidirectional=False,
                formats=NumberFormats(data="q6.10", weight="q2.14", bias="q6.8",
                                      preactivation="q6.12", activation="q2.14",
                                      table_range_log2=4, table_segments_log2=6)),
    BuildConfig(lanes=64, lane_width=2, glu=False),
    BuildConfig(lanes=1, lane_width=4, bidirectional=False),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_info_round_trip(config):
    info = DeviceInfo(config, max_payload=1234, clock_hz=48_000_000)
    payload = protocol.encode_info_response(info)
    assert len(payload) == 32
    assert protocol.decode_info_response(payload) == info


def test_info_refuses_another_version_and_impossible_configs():
    payload = bytearray(protocol.encode_info_response(DeviceInfo(BuildConfig(), 100)))
    payload[0] = 2
    with pytest.raises(ProtocolError, match="version 2, this host version 1: update"):
        protocol.decode_info_response(bytes(payload))
    payload[0] = 1
    payload[1] = payload[2] = 0           # zero lanes
    with pytest.raises(ProtocolError, match="lanes must be a positive integer"):
        protocol.decode_info_response(bytes(payload))
    payload = bytearray(protocol.encode_info_response(DeviceInfo(BuildConfig(), 100)))
    payload[13] |= 0x0C                   # a lane width of 8: no build has one
    with pytest.raises(ProtocolError, match="lane_width must be 1, 2 or 4, not 8"):
        protocol.decode_info_response(bytes(payload))
    payload[13] = 0x20                    # a flag this version does not define
    with pytest.raises(ProtocolError, match="bits this version does not define"):
        protocol.decode_info_response(bytes(payload))


@pytest.mark.parametrize("simulated", [False, True])
def test_info_says_whether_the_device_is_simulated(simulated):
    info = DeviceInfo(BuildConfig(), 100, simulated=simulated)
    payload = protocol.encode_info_response(info)
    assert payload[13] & 0x10 == (0x10 if simulated else 0)
    assert protocol.decode_info_response(payload).simulated is simulated


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_h0", [True, False])
def test_load_round_trip(rng, bias, with_h0):
    input_size, hidden = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    cell = GRUDirectionWeights(codes(rng, 3 * hidden, input_size), codes(rng, 3 * hidden, hidden),
                               *((codes(rng, 3 * hidden), codes(rng, 3 * hidden)) if bias
                                 else ()))
    h0 = codes(rng, int(rng.integers(1, 9)), hidden) if with_h0 else None
    request = LoadRequest(int(rng.integers(0, 256)), int(rng.integers(0, 2)), cell,
                          bool(rng.integers(0, 2)), h0)
    payload = protocol.encode_load_request(request)
    assert len(payload) == request.payload_length()
    decoded = protocol.decode_load_request(payload)
    assert (decoded.layer, decoded.direction, decoded.linear_before_reset) == (
        request.layer, request.direction, request.linear_before_reset)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        expected, actual = getattr(cell, name), getattr(decoded.cell, name)
        assert (actual is None) == (expected is None)
        if expected is not None:
            np.testing.assert_array_equal(actual, expected)
    if with_h0:
        np.testing.assert_array_equal(decoded.h0, h0)
    else:
        assert decoded.h0 is None
    with pytest.raises(ProtocolError) as error:
        protocol.decode_load_request(payload + b"\x00")
    assert error.value.status == Status.MALFORMED


def random_run(rng, **fixed):
    batch = int(rng.integers(1, 6))
    steps = int(rng.integers(1, 9))
    lengths = rng.integers(1, steps + 1, batch)
    direction = fixed.pop("direction", str(rng.choice(["forward", "reverse", "bidirectional"])))
    hidden = 2 * int(rng.integers(1, 6))
    arguments = dict(num_layers=int(rng.integers(1, 4)), hidden_size=hidden, steps=steps,
                     direction=direction, linear_before_reset=bool(rng.integers(0, 2)),
                     use_h0=bool(rng.integers(0, 2)))
    arguments.update(fixed)
    return RunRequest(codes(rng, int(lengths.sum()), int(rng.integers(1, 7))), lengths,
                      **arguments)


@pytest.mark.parametrize("final_only, glu", [(False, False), (True, False), (False, True)])
def test_run_round_trip(rng, final_only, glu):
    for _ in range(20):
        request = random_run(rng, final_only=final_only, glu=glu)
        payload = protocol.encode_run_request(request)
        assert len(payload) == request.payload_length()
        decoded = protocol.decode_run_request(payload)
        for name in ("num_layers", "hidden_size", "steps", "direction", "linear_before_reset",
                     "final_only", "use_h0", "glu"):
            assert getattr(decoded, name) == getattr(request, name), name
        np.testing.assert_array_equal(decoded.lengths, request.lengths)
        np.testing.assert_array_equal(decoded.inputs, request.inputs)
        total = int(request.lengths.sum())
        outputs = None if final_only else codes(rng, total, request.output_features)
        h_n = codes(rng, request.num_layers * request.num_directions, request.batch,
                    request.hidden_size)
        response_payload = protocol.encode_run_response(RunResponse(outputs, h_n))
        assert len(response_payload) == request.response_length()
        response = protocol.decode_run_response(response_payload, request)
        if final_only:
            assert response.outputs is None
        else:
            np.testing.assert_array_equal(response.outputs, outputs)
        np.testing.assert_array_equal(response.h_n, h_n)
        with pytest.raises(ProtocolError, match="the request asks for"):
            protocol.decode_run_response(response_payload[:-2], request)


def run_payload(flags, batch=1, steps=2, lengths=(2,), input_size=1, hidden=2, num_layers=1):
    header = struct.pack("<BBHHHH", num_layers, flags, batch, steps, input_size, hidden)
    return (header + np.asarray(lengths, dtype="<u2").tobytes()
            + bytes(2 * sum(lengths) * input_size))


@pytest.mark.parametrize("payload, message", [
    (run_payload(0x40), "reserved bits"),
    (run_payload(0x03), "bidirectional and a lone reverse"),
    (run_payload(0, hidden=0), "at least 1"),
    (run_payload(0, lengths=(3,)), r"in 1\.\.2"),
    (run_payload(0, lengths=(0,)), r"in 1\.\.2"),
    (run_payload(0x20, hidden=3), "glu halves"),
    (run_payload(0x28), "glu halves"),
    (run_payload(0)[:-1], "ends inside its inputs"),
    (run_payload(0) + b"\x00", "beyond its fields"),
])
def test_run_decoding_refuses_malformed_payloads(payload, message):
    with pytest.raises(ProtocolError, match=message) as error:
        protocol.decode_run_request(payload)
    assert error.value.status == Status.MALFORMED


def test_glu_round_trip(rng):
    values = codes(rng, 5, 2 * 3)
    payload = protocol.encode_glu_request(values)
    assert len(payload) == protocol.glu_payload_length(5, 3)
    np.testing.assert_array_equal(protocol.decode_glu_request(payload), values)
    outputs = codes(rng, 5, 3)
    np.testing.assert_array_equal(
        protocol.decode_glu_response(protocol.encode_glu_response(outputs), 5, 3), outputs)
    with pytest.raises(ProtocolError) as error:
        protocol.decode_glu_request(payload[:2] + b"\x00\x00" + payload[4:])
    assert error.value.status == Status.MALFORMED


def test_codes_outside_int16_are_refused():
    with pytest.raises(ValueError, match="outside int16"):
        protocol.encode_glu_request(np.array([[0x8000, 0]]))


# --- the frame reader ------------------------------------------------------------------------

def test_frame_reader_splits_any_chunking_and_survives_garbage(rng):
    frames = [protocol.encode_request(Command.GLU, n, codes(rng, 40).astype("<i2").tobytes())
              for n in range(5)]
    garbage = b"\x17\x99\x00\x00\x42"
    stream = frames[0] + garbage + b"".join(frames[1:])
    for _ in range(20):
        reader = FrameReader(max_frame=1000)
        cuts = sorted(rng.integers(0, len(stream), 6))
        pieces = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
        found = [frame for piece in pieces for frame in reader.feed(piece)]
        # The garbage before its zero is a frame of its own; the rest spoils the next frame.
        assert found[0] == frames[0][:-1]
        assert found[1] == b"\x17\x99"
        assert found[2] == b"\x42" + frames[1][:-1]
        assert found[3:] == [frame[:-1] for frame in frames[2:]]
        assert reader.pending == 0


def test_frame_reader_bounds_a_frame_that_never_ends():
    reader = FrameReader(max_frame=10)
    assert reader.feed(b"\x01" * 1000) == []
    assert reader.pending == 11
    assert reader.feed(b"\x01" * 1000 + b"\x00\x02\x07\x00") == [b"\x01" * 11, b"\x02\x07"]
