"""The accelerator top against the protocol's device model, byte for byte, in the Amaranth
simulator: INFO, RESET, GLU and refusals, then corrupted, truncated and stray bytes (LOAD and
RUN: test_top_gru.py)."""

import dataclasses
import struct

import numpy as np
import pytest

from gatework.golden.config import BuildConfig
from gatework.golden.protocol import Command, Status
from gatework.hdl.top import AcceleratorTop
from gatework.golden.device_model import DeviceModel
from gatework.golden.messages import (RunRequest, decode_info_response, decode_response,
                                    encode_glu_request, encode_request, encode_run_request)
from gatework.sim.streams import run


CONFIG = BuildConfig(lanes=2, max_input_size=8, max_hidden_size=6, max_batch=2, max_steps=4,
                     max_layers=1, bidirectional=False)
MAX_PAYLOAD = 256


def check_against_model(wire, seed=0, stall=0.0, config=CONFIG):
    """Feed ``wire`` bytes to the RTL top and to the device model; demand the same answer."""
    expected = DeviceModel(config, max_payload=MAX_PAYLOAD).feed(bytes(wire))
    dut = AcceleratorTop(config, max_payload=MAX_PAYLOAD)
    (received,), cycles = run(dut, inputs=[(dut.i, list(wire))],
                              outputs=[(dut.o, len(expected))], seed=seed, stall=stall,
                              timeout=20 * len(wire) + 2000)
    assert bytes(received) == expected
    return expected, cycles


def glu_frame(rng, channels, count, sequence):
    values = rng.integers(-0x8000, 0x8000, (count, 2 * channels))
    return encode_request(Command.GLU, sequence, encode_glu_request(values))


def good_frames(rng):
    return [b"\x00" + encode_request(Command.INFO, 1),
            b"\x00" + encode_request(Command.RESET, 2),
            b"\x00" + glu_frame(rng, 3, 4, 3),
            b"\x00" + glu_frame(rng, 6, 2, 4),
            b"\x00" + glu_frame(rng, 1, 1, 5)]


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_commands_match_the_model(rng, stall):
    wire = b"".join(good_frames(rng))
    expected, cycles = check_against_model(wire, seed=1, stall=stall)
    print(f"{len(wire)} bytes in, {len(expected)} out, {cycles} cycles")


@pytest.mark.parametrize("payload, name", [
    (b"\x01", "INFO with a payload"),
    (struct.pack("<HH", 7, 1) + bytes(28), "GLU beyond the build's channels"),
    (struct.pack("<HH", 0, 1), "GLU of zero channels"),
    (struct.pack("<HH", 2, 2) + bytes(4), "GLU shorter than its fields say"),
    (b"\x02", "GLU without its fields"),
])
def test_refusals_match_the_model(payload, name):
    command = Command.INFO if name.startswith("INFO") else Command.GLU
    wire = b"\x00" + encode_request(command, 9, payload) + encode_request(Command.INFO, 10)
    check_against_model(wire)


def test_unknown_commands_and_an_empty_run_match_the_model():
    wire = encode_request(Command.RUN, 3, bytes(10)) + encode_request(0x7E, 4)
    check_against_model(wire)


def test_a_build_without_glu_says_so_and_refuses_glu(rng):
    """INFO's flags say there is no GLU; a GLU request and a RUN asking for the GLU get
    BEYOND_MAXIMA (a malformed GLU is still MALFORMED), byte for byte like the model."""
    config = dataclasses.replace(CONFIG, glu=False)
    run = RunRequest(inputs=np.zeros((4, 2), dtype=np.int64), lengths=np.array([2, 2]),
                     num_layers=1, hidden_size=2, glu=True)
    wire = b"".join([b"\x00" + encode_request(Command.INFO, 1),
                     b"\x00" + glu_frame(rng, 3, 4, 2),
                     b"\x00" + encode_request(Command.GLU, 3, struct.pack("<HH", 0, 1)),
                     b"\x00" + encode_request(Command.RUN, 4, encode_run_request(run)),
                     b"\x00" + encode_request(Command.INFO, 5)])
    expected, _ = check_against_model(wire, config=config)
    responses = [decode_response(frame) for frame in expected.split(b"\x00")[:-1]]
    assert [response.status for response in responses] == [
        Status.OK, Status.BEYOND_MAXIMA, Status.MALFORMED, Status.BEYOND_MAXIMA, Status.OK]
    assert decode_info_response(responses[0].payload).config.glu is False
    # The same RUN on a build with the GLU gets past the maxima (to NOT_LOADED).
    expected, _ = check_against_model(wire)
    assert decode_response(expected.split(b"\x00")[3]).status == Status.NOT_LOADED


def _damage(rng, frame):
    kind = rng.integers(6)
    frame = bytearray(frame)
    if kind == 0:                                   # flip a bit
        index = rng.integers(len(frame) - 1)
        frame[index] ^= 1 << int(rng.integers(8))
    elif kind == 1:                                 # drop a byte
        del frame[rng.integers(len(frame) - 1)]
    elif kind == 2:                                 # duplicate a byte
        index = rng.integers(len(frame) - 1)
        frame.insert(index, frame[index])
    elif kind == 3:                                 # truncate: an early end
        frame = frame[:rng.integers(1, len(frame))] + b"\x00"
    elif kind == 4:                                 # garbage before the frame
        frame = bytearray(rng.integers(0, 256, rng.integers(1, 12)).tolist()) + frame
    else:                                           # oversized
        frame = bytearray(rng.integers(1, 256, MAX_PAYLOAD + 40).tolist()) + b"\x00"
    return bytes(frame), int(kind)


def test_fault_injection_against_the_rtl(rng):
    """200 damaged frames, each followed by a good INFO: the same answers as the model."""
    cases = []
    kinds = [0] * 6
    for index in range(200):
        frame = good_frames(rng)[rng.integers(5)][1:]
        damaged, kind = _damage(rng, frame)
        kinds[kind] += 1
        cases.append(b"\x00" + damaged + b"\x00" + encode_request(Command.INFO, index % 256))
    # Several cases per simulation keeps the simulator's start-up cost down; each case's
    # good INFO must still be answered, so recovery is checked case by case.
    for start in range(0, len(cases), 25):
        wire = b"".join(cases[start:start + 25])
        expected, _ = check_against_model(wire, seed=start)
        assert expected.count(b"\x00") >= 25
    print(f"fault kinds (flip, drop, duplicate, truncate, garbage, oversized): {kinds}")
