"""The accelerator top's LOAD and RUN against the protocol's device model, byte for byte, in
the Amaranth simulator: small random GRUs of every form, then the refusals."""

import dataclasses
import struct

import numpy as np
import pytest

from gatework.golden.config import BuildConfig
from gatework.golden.gru import GRUDirectionWeights
from gatework.golden.protocol import Command, Status
from gatework.hdl.top import AcceleratorTop
from gatework.golden.device_model import DeviceModel
from gatework.golden.messages import (FrameReader, LoadRequest, RunRequest, decode_response,
                                    encode_load_request, encode_request, encode_run_request)
from gatework.sim.streams import run


CONFIG = BuildConfig(lanes=2, max_input_size=6, max_hidden_size=3, max_batch=2, max_steps=3,
                     max_layers=2, bidirectional=True)
MAX_PAYLOAD = 512


def check_against_model(wire, stall=0.0, config=CONFIG, max_payload=MAX_PAYLOAD,
                        lut_multipliers=False, register_slices=True):
    """Feed ``wire`` to the RTL top and to the device model; demand the same answer.

    Returns the statuses of the answers and the cycles the top took.
    """
    expected = DeviceModel(config, max_payload=max_payload).feed(bytes(wire))
    dut = AcceleratorTop(config, max_payload=max_payload, lut_multipliers=lut_multipliers,
                         register_slices=register_slices)
    (received,), cycles = run(dut, inputs=[(dut.i, list(wire))],
                              outputs=[(dut.o, len(expected))], seed=1, stall=stall,
                              timeout=200_000)
    assert bytes(received) == expected
    statuses = [decode_response(body).status
                for body in FrameReader(max_frame=4096).feed(expected)]
    return statuses, cycles


def random_cell(rng, input_size, hidden_size, bias=True):
    def codes(*shape):
        # Small weights keep the states away from saturation, where a slip would hide.
        return rng.integers(-0x1800, 0x1800, shape)
    biases = (codes(3 * hidden_size), codes(3 * hidden_size)) if bias else ()
    return GRUDirectionWeights(codes(3 * hidden_size, input_size),
                               codes(3 * hidden_size, hidden_size), *biases)


def frame(command, sequence, payload=b""):
    return b"\x00" + encode_request(command, sequence, payload)


def load_frames(rng, layers, direction, input_size, hidden, linear, batch, use_h0, bias):
    directions = 2 if direction == "bidirectional" else 1
    frames = []
    for layer in range(layers):
        for slot in range(directions):
            cell = random_cell(rng, input_size if layer == 0 else directions * hidden, hidden,
                               bias)
            h0 = rng.integers(-0x1000, 0x1000, (batch, hidden)) if use_h0 else None
            frames.append(frame(Command.LOAD, len(frames),
                                encode_load_request(LoadRequest(layer, slot, cell, linear, h0))))
    return frames


CASES = [
    # layers, direction, D, H, lengths, linear_before_reset, final_only, use_h0, glu, bias
    (1, "forward", 3, 2, [2, 3], True, False, False, False, True),
    (2, "bidirectional", 2, 3, [3, 1], False, False, True, True, True),
    (1, "reverse", 2, 3, [1, 3], True, False, True, False, False),
    (2, "forward", 3, 2, [2], False, True, False, False, True),
    (1, "bidirectional", 6, 1, [1, 2], True, False, False, True, False),
]


# Every case, one with stalls, one with the multipliers but the lanes' in logic cells, and
# one without the register slices (as on the iCEBreaker).
@pytest.mark.parametrize("stall, case, lut_multipliers, register_slices",
                         [(0.0, case, False, True) for case in CASES] +
                         [(0.3, CASES[1], False, True), (0.0, CASES[4], True, True),
                          (0.3, CASES[1], False, False)])
def test_load_and_run_match_the_model(rng, stall, case, lut_multipliers, register_slices):
    layers, direction, inputs, hidden, lengths, linear, final_only, use_h0, glu, bias = case
    batch = len(lengths)
    frames = load_frames(rng, layers, direction, inputs, hidden, linear, batch, use_h0, bias)
    x = rng.integers(-0x1000, 0x1000, (sum(lengths), inputs))
    request = RunRequest(x, np.array(lengths), layers, hidden, max(lengths), direction, linear,
                         final_only, use_h0, glu)
    frames.append(frame(Command.RUN, 100, encode_run_request(request)))
    wire = b"".join(frames)
    statuses, cycles = check_against_model(wire, stall, lut_multipliers=lut_multipliers,
                                           register_slices=register_slices)
    assert statuses == [Status.OK] * len(frames)
    print(f"{case}: {len(wire)} bytes in, {cycles} cycles")


def test_lanes_taking_two_terms_a_cycle_match_the_model(rng):
    # The engine's rows are padded to whole cycles in its banks. Loads of D = 6 first leave
    # stale weights where the second loads' rows (D = 3, H = 3) are padded, so the top must
    # walk the padded layout and the engine must take the padding as zero.
    config = dataclasses.replace(CONFIG, lane_width=2)
    frames = load_frames(rng, 2, "bidirectional", 6, 3, True, 2, False, True)
    frames += load_frames(rng, 2, "bidirectional", 3, 3, False, 2, True, True)
    lengths = [3, 1]
    x = rng.integers(-0x1000, 0x1000, (sum(lengths), 3))
    request = RunRequest(x, np.array(lengths), 2, 3, 3, "bidirectional", False, False, True)
    frames.append(frame(Command.RUN, 100, encode_run_request(request)))
    statuses, _ = check_against_model(b"".join(frames), config=config)
    assert statuses == [Status.OK] * len(frames)


def test_refusals_match_the_model(rng):
    x = rng.integers(-0x1000, 0x1000, (3, 2))
    good = RunRequest(x, np.array([2, 1]), 1, 3, 2, "forward")
    run_payload = encode_run_request(good)
    load = encode_load_request(LoadRequest(0, 0, random_cell(rng, 2, 3)))
    wire = b"".join([
        frame(Command.RUN, 1, run_payload),                             # NOT_LOADED
        frame(Command.LOAD, 2, load[:-2]),                              # MALFORMED: short
        frame(Command.LOAD, 3, b"\x02" + load[1:]),                     # BEYOND_MAXIMA
        frame(Command.LOAD, 4, load),                                   # OK
        frame(Command.RUN, 5, run_payload[:-1]),                        # MALFORMED
        frame(Command.RUN, 6, run_payload[:1] + b"\x40" + run_payload[2:]),  # reserved flag
        # MALFORMED: a batch of 3 reads the inputs as lengths
        frame(Command.RUN, 7, run_payload[:2] + struct.pack("<H", 3) + run_payload[4:]),
        frame(Command.RUN, 8, b"\x03" + run_payload[1:]),               # BEYOND_MAXIMA
        # BEYOND_MAXIMA: more steps than the build's
        frame(Command.RUN, 9, run_payload[:4] + struct.pack("<H", 4) + run_payload[6:]),
        # NOT_LOADED: use_h0, but the slot holds no h0
        frame(Command.RUN, 10, run_payload[:1] + b"\x10" + run_payload[2:]),
        frame(Command.RUN, 11, run_payload),                            # OK
        frame(Command.RESET, 12),
        frame(Command.RUN, 13, run_payload),                            # NOT_LOADED
    ])
    statuses, _ = check_against_model(wire)
    assert statuses == [Status.NOT_LOADED, Status.MALFORMED, Status.BEYOND_MAXIMA, Status.OK,
                        Status.MALFORMED, Status.MALFORMED, Status.MALFORMED,
                        Status.BEYOND_MAXIMA, Status.BEYOND_MAXIMA, Status.NOT_LOADED,
                        Status.OK, Status.OK, Status.NOT_LOADED]


def test_load_refusals_by_their_h0_match_the_model(rng):
    cell = random_cell(rng, 2, 3)
    too_many = encode_load_request(LoadRequest(0, 1, cell, h0=rng.integers(-9, 9, (3, 3))))
    fitting = encode_load_request(LoadRequest(0, 1, cell, h0=rng.integers(-9, 9, (2, 3))))
    x = rng.integers(-0x1000, 0x1000, (2, 2))
    # A batch of 3, beyond the build's 2.
    wide = encode_run_request(RunRequest(np.zeros((3, 2), dtype=np.int64),
                                         np.ones(3, dtype=np.int64), 1, 3))
    zero_length = encode_run_request(RunRequest(x, np.array([2]), 1, 3))
    zero_length = zero_length[:10] + b"\x00\x00" + zero_length[12:]
    wire = b"".join([
        frame(Command.LOAD, 1, too_many),                               # BEYOND_MAXIMA
        frame(Command.LOAD, 2, fitting[:-2]),                           # MALFORMED
        frame(Command.LOAD, 3, fitting[:6] + bytes([fitting[6] | 8]) + fitting[7:]),  # reserved
        frame(Command.LOAD, 4, fitting),                                # OK
        frame(Command.RUN, 5, wide),                                    # BEYOND_MAXIMA
        frame(Command.RUN, 6, zero_length),                             # MALFORMED
    ])
    statuses, _ = check_against_model(wire)
    assert statuses == [Status.BEYOND_MAXIMA, Status.MALFORMED, Status.MALFORMED, Status.OK,
                        Status.BEYOND_MAXIMA, Status.MALFORMED]


def test_payload_lengths_are_checked_exactly(rng):
    """A word or a byte too many or too few after sizes that fit: MALFORMED, as the model."""
    cell = random_cell(rng, 2, 3)
    load = encode_load_request(LoadRequest(0, 0, cell))
    with_h0 = encode_load_request(LoadRequest(0, 1, cell, h0=rng.integers(-9, 9, (2, 3))))
    x = rng.integers(-0x1000, 0x1000, (3, 2))
    run_payload = encode_run_request(RunRequest(x, np.array([2, 1]), 1, 3, 2, "forward"))
    # A LOAD refused at its end has written its slot (the model leaves it as it was): the
    # slots a later RUN reads are loaded after those.
    wire = b"".join([
        frame(Command.LOAD, 1, load + bytes(2)),                        # a word too many
        frame(Command.LOAD, 2, load + bytes(1)),                        # a byte too many
        frame(Command.LOAD, 3, with_h0 + bytes(2)),                     # h0 a word too long
        frame(Command.LOAD, 4, with_h0[:-1]),                           # h0 a byte short
        frame(Command.LOAD, 5, with_h0[:-6]),                           # h0 a row short
        frame(Command.LOAD, 6, load),                                   # OK
        # A LOAD too short for its weights is refused before it writes one: slot 0 stays.
        frame(Command.LOAD, 7, load[:7] + load[9:]),
        frame(Command.RUN, 8, run_payload + bytes(2)),                  # an input too many
        frame(Command.RUN, 9, run_payload + bytes(1)),                  # a byte too many
        frame(Command.RUN, 10, run_payload[:-2]),                       # an input too few
        frame(Command.RUN, 11, run_payload),                            # OK
    ])
    statuses, _ = check_against_model(wire)
    assert statuses == ([Status.MALFORMED] * 5 + [Status.OK] + [Status.MALFORMED] * 4 +
                        [Status.OK])


def test_a_response_beyond_65535_bytes_is_too_large(rng):
    """4096 steps of 16 features: 65 536 bytes of outputs, refused before the engine runs."""
    config = BuildConfig(lanes=1, max_input_size=1, max_hidden_size=8, max_batch=16,
                         max_steps=256, max_layers=1, bidirectional=True)
    frames = load_frames(rng, 1, "bidirectional", 1, 8, True, 16, False, True)
    x = rng.integers(-0x1000, 0x1000, (16 * 256, 1))
    request = RunRequest(x, np.full(16, 256), 1, 8, 256, "bidirectional")
    frames.append(frame(Command.RUN, 100, encode_run_request(request)))
    statuses, _ = check_against_model(b"".join(frames), config=config, max_payload=8300)
    assert statuses == [Status.OK, Status.OK, Status.TOO_LARGE]
