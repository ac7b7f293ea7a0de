"""cocotb bench: the frame receiver and transmitter against golden's protocol, on Icarus.

Each test checks the block it is given and returns at once for the other.
"""

import random

import cocotb
from cocotb.triggers import Combine

from gatework.golden.protocol import (RESPONSE_FLAG, Command, FrameError, Status, cobs_decode,
                                      cobs_encode, crc16)
from gatework.sim.cocotb_streams import get, put, reset, start_clock
from gatework.sim.verilog import bench_parameters, build_component, payload_shape


def _with_crc(body):
    return body + crc16(body).to_bytes(2, "little")


def _response_body(command, sequence, status, payload):
    return _with_crc(bytes([command, sequence]) + len(payload).to_bytes(2, "little") +
                     bytes([status]) + payload)


def _payload(rng, size):
    kind = rng.choice(["random", "zeros", "ff"])
    if kind == "zeros":
        return bytes(size)
    if kind == "ff":
        return bytes([0xFF]) * size
    return bytes(rng.randrange(256) for _ in range(size))


def _report(encoded, max_payload):
    """What the receiver reports for one frame's encoding, by the checks of
    ``docs/protocol.md`` in its order.

    The requests here have a non-zero command and sequence, so those are the second and
    third bytes of every encoding; cut encodings are shorter than the largest frame.
    """
    fields = {"command": encoded[1], "sequence": encoded[2]}
    bad_frame = "error", {"status": Status.BAD_FRAME, "command": 0, "sequence": 0}
    try:
        body = cobs_decode(encoded)
    except FrameError:
        return bad_frame
    if len(body) > max_payload + 6:
        return "error", {"status": Status.TOO_LARGE, **fields}
    if len(body) < 6:
        return bad_frame
    if crc16(body[:-2]) != int.from_bytes(body[-2:], "little"):
        return "error", {"status": Status.BAD_CRC, **fields}
    if int.from_bytes(body[2:4], "little") != len(body) - 6:
        return "error", {"status": Status.MALFORMED, **fields}
    return "frame", {**fields, "length": len(body) - 6}, body[4:-2]


def _requests(p, rng):
    """Wire bytes of good requests and, between them, bad ones of three kinds."""
    max_payload = p["args"]["max_payload"]
    sizes = [0, 1, max_payload, 253, 254, 255] + [rng.randrange(max_payload + 1)
                                                  for _ in range(8)]
    wire = bytearray()
    for index, size in enumerate(min(size, max_payload) for size in sizes):
        payload = _payload(rng, size)
        body = _with_crc(bytes([rng.choice(list(Command)), rng.randrange(1, 256)]) +
                         len(payload).to_bytes(2, "little") + payload)
        encoded = cobs_encode(body)
        kind = index % 4
        if kind == 1:                  # a bad CRC
            body = body[:-1] + bytes([body[-1] ^ 0x5A])
            encoded = cobs_encode(body)
        elif kind == 2:                # cut short
            encoded = encoded[:rng.randrange(3, min(len(encoded), 12))]
        elif kind == 3:                # too large
            payload = _payload(rng, max_payload + 1 + rng.randrange(10))
            encoded = cobs_encode(_with_crc(bytes([Command.LOAD, index + 1]) +
                                            len(payload).to_bytes(2, "little") + payload))
        wire += encoded + b"\x00"
    return bytes(wire)


@cocotb.test()
async def receiver_matches_golden(dut):
    p = bench_parameters()
    if p["component"] != "gatework.hdl.link:FrameReceiver":
        return
    model = build_component(p)
    rng = random.Random(p["seed"])
    wire = _requests(p, rng)
    reports = [_report(encoded, p["args"]["max_payload"])
               for encoded in wire.split(b"\x00")[:-1]]
    frames = [report for report in reports if report[0] == "frame"]
    errors = [report[1] for report in reports if report[0] == "error"]
    assert {error["status"] for error in errors} == {Status.BAD_CRC, Status.BAD_FRAME,
                                                     Status.TOO_LARGE}
    payloads = [{"data": byte, "last": int(k == len(frame[2]) - 1)}
                for frame in frames for k, byte in enumerate(frame[2])]

    start_clock(dut)
    await reset(dut)
    shapes = {name: payload_shape(model, name) for name in ("i", "header", "payload", "error")}
    producer = cocotb.start_soon(put(dut, "i", shapes["i"], list(wire), seed=p["seed"],
                                     stall=p["stall"]))
    consumers = [cocotb.start_soon(get(dut, name, shapes[name], count, seed=p["seed"] + k + 1,
                                       stall=p["stall"], timeout=20 * len(wire)))
                 for k, (name, count) in enumerate([("header", len(frames)),
                                                    ("payload", len(payloads)),
                                                    ("error", len(errors))])]
    await Combine(producer, *consumers)
    (headers, _), (received, _), (reported, _) = (c.result() for c in consumers)
    assert headers == [frame[1] for frame in frames], "headers differ from golden"
    assert received == payloads, "payloads differ from golden"
    assert reported == errors, "error reports differ from golden"


@cocotb.test()
async def transmitter_matches_golden(dut):
    p = bench_parameters()
    if p["component"] != "gatework.hdl.link:FrameTransmitter":
        return
    model = build_component(p)
    rng = random.Random(p["seed"])
    sizes = [0, 1, 252, 253, 254, 255, 600] + [rng.randrange(300) for _ in range(6)]
    responses = [(rng.choice(list(Command)) | RESPONSE_FLAG, rng.randrange(256),
                  rng.choice(list(Status)), _payload(rng, size)) for size in sizes]
    # Bodies ending on COBS blocks of 253, 254 (then the empty block 0x01) and 255 bytes.
    for run in (253, 254, 255):
        while True:
            payload = b"\x00" + bytes(rng.randrange(1, 256) for _ in range(run - 2))
            response = (Command.RUN | RESPONSE_FLAG, run, Status.OK, payload)
            if 0 not in _response_body(*response)[-2:]:
                responses.append(response)
                break
    headers = [{"command": command, "sequence": sequence, "length": len(payload),
                "status": status} for command, sequence, status, payload in responses]
    expected = b"".join(cobs_encode(_response_body(*response)) + b"\x00"
                        for response in responses)
    assert any(encoded[-256:-255] == b"\xff" and encoded[-1] == 0x01
               for encoded in map(cobs_encode, (_response_body(*r) for r in responses)))

    start_clock(dut)
    await reset(dut)
    producers = [
        cocotb.start_soon(put(dut, "header", payload_shape(model, "header"), headers,
                              seed=p["seed"], stall=p["stall"])),
        cocotb.start_soon(put(dut, "payload", payload_shape(model, "payload"),
                              list(b"".join(r[3] for r in responses)), seed=p["seed"] + 1,
                              stall=p["stall"])),
    ]
    received, _ = await get(dut, "o", payload_shape(model, "o"), len(expected),
                            seed=p["seed"] + 2, stall=p["stall"], timeout=10 * len(expected))
    await Combine(*producers)
    assert bytes(received) == expected, "wire bytes differ from golden cobs_encode"
