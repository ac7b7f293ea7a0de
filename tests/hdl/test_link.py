# amaranth: UnusedElaboratable=no
# (a FrameReceiver whose max_payload is refused is never elaborated)
"""The link layer in gateware against golden's protocol rules, in the Amaranth simulator.

The receiver is checked against a model built on golden's ``cobs_decode`` and ``crc16``: the
wire is cut at its zero bytes and each piece must give what the model says, a good frame's
header and payload or one error report, in order.
"""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from gatework.golden.protocol import (RESPONSE_FLAG, Command, FrameError, Status, cobs_decode,
                                      cobs_encode, crc16)
from gatework.hdl.link import CobsEncoder, Crc16, FrameReceiver, FrameTransmitter
from gatework.sim.streams import SimulationTimeout, run, to_python


def with_crc(body):
    return body + crc16(body).to_bytes(2, "little")


def request_body(command, sequence, payload, length=None):
    """``command | sequence | length | payload | crc``; ``length`` may lie, to test that."""
    length = len(payload) if length is None else length
    return with_crc(bytes([command, sequence]) + length.to_bytes(2, "little") + payload)


def response_body(command, sequence, status, payload):
    return with_crc(bytes([command, sequence]) + len(payload).to_bytes(2, "little") +
                    bytes([status]) + payload)


def wire(body):
    return cobs_encode(body) + b"\x00"


def random_payload(rng, size):
    """Bytes of one of several kinds: random, zeros, 0xFF runs, sparse zeros."""
    kind = rng.choice(["random", "zeros", "ff", "sparse"])
    if kind == "zeros":
        return bytes(size)
    if kind == "ff":
        return bytes([0xFF]) * size
    if kind == "sparse":
        return bytes(0 if rng.random() < 0.01 else rng.randrange(1, 256) for _ in range(size))
    return bytes(rng.randrange(256) for _ in range(size))


def run_ending(rng, header, run, tail=2):
    """A payload after which the body's last ``run`` bytes are non-zero and the one before
    is zero, so that its COBS encoding ends on a block of exactly ``run`` bytes.

    ``header(payload)`` makes the body; the CRC (``tail`` bytes) is part of the run, so the
    payload's random bytes are drawn again until the CRC has no zero byte.
    """
    while True:
        payload = b"\x00" + bytes(rng.randrange(1, 256) for _ in range(run - tail))
        body = header(payload)
        if 0 not in body[-run:] and body[-run - 1] == 0:
            return payload


def boundary_payloads(rng, header, max_payload):
    """Payloads whose bodies end on COBS blocks of 253, 254, 255, 508 and 509 bytes, the
    largest payload, and the empty one."""
    runs = [run for run in (253, 254, 255, 508, 509) if run - 1 <= max_payload]
    return ([run_ending(rng, header, run) for run in runs] +
            [bytes([0xFF]) * max_payload, random_payload(rng, max_payload), b""])


def decode_prefix(encoded):
    """The bytes a COBS decoder has produced when ``encoded`` ends, and whether it ended
    between blocks. Checked against golden's ``cobs_decode``, which raises where a frame
    ends inside a block; the receiver needs the count to tell a too large frame."""
    decoded = bytearray()
    index = 0
    while index < len(encoded):
        code = encoded[index]
        decoded += encoded[index + 1:index + code]
        index += code
        if index > len(encoded):
            with pytest.raises(FrameError):
                cobs_decode(encoded)
            return bytes(decoded), False
        if code != 255 and index < len(encoded):
            decoded.append(0)
    assert bytes(decoded) == cobs_decode(encoded)
    return bytes(decoded), True


def expected_events(stream_bytes, max_payload):
    """What the receiver must report for every frame on the wire, in order: the checks of
    ``docs/protocol.md`` in its order."""
    largest_body = max_payload + 6
    largest_frame = largest_body + largest_body // 254 + 1
    events = []
    for encoded in bytes(stream_bytes).split(b"\x00")[:-1]:
        if not encoded:
            continue
        body, complete = decode_prefix(encoded)
        fields = {"command": body[0] if len(body) > 0 else 0,
                  "sequence": body[1] if len(body) > 1 else 0}
        if len(encoded) > largest_frame:
            status = Status.TOO_LARGE
        elif not complete:
            status = Status.BAD_FRAME
        elif len(body) > largest_body:
            status = Status.TOO_LARGE
        elif len(body) < 6:
            status = Status.BAD_FRAME
        elif crc16(body[:-2]) != int.from_bytes(body[-2:], "little"):
            status = Status.BAD_CRC
        elif int.from_bytes(body[2:4], "little") != len(body) - 6:
            status = Status.MALFORMED
        else:
            events.append(("frame", {**fields, "length": len(body) - 6}, list(body[4:-2])))
            continue
        if status == Status.BAD_FRAME:
            fields = {"command": 0, "sequence": 0}
        events.append(("error", {"status": status, **fields}))
    return events


def simulate_receiver(dut, stream_bytes, *, seed, stall, timeout):
    """Feed ``stream_bytes`` to ``dut.i`` and collect its reports; one testbench does it all,
    because per-cycle Python is what costs simulation time.

    Returns ``(events, cycles)``: events as :func:`expected_events` gives them, and the
    cycles until the receiver was ready for more after the last byte. Raises
    :class:`SimulationTimeout` past ``timeout`` cycles.
    """
    results = {}

    async def bench(ctx):
        rng = random.Random(seed)
        events, frame = [], None
        position = cycles = 0
        outputs = [dut.header, dut.payload, dut.error]
        while True:
            offered = position < len(stream_bytes) and rng.random() >= stall
            ctx.set(dut.i.valid, offered)
            if offered:
                ctx.set(dut.i.payload, stream_bytes[position])
            readies = [rng.random() >= stall for _ in outputs]
            for output, ready in zip(outputs, readies):
                ctx.set(output.ready, ready)
            _, _, taking, *sampled = await ctx.tick().sample(
                dut.i.ready, *(s for output in outputs for s in (output.valid, output.payload)))
            cycles += 1
            if cycles > timeout:
                raise SimulationTimeout(f"{position} of {len(stream_bytes)} bytes taken and "
                                        f"{len(events)} reports within {timeout} cycles")
            header, payload, error = (to_python(payload) if valid and ready else None
                                      for valid, payload, ready
                                      in zip(sampled[::2], sampled[1::2], readies))
            if header is not None:
                assert frame is None, "a header came before the previous payload ended"
                frame = ("frame", header, [])
                if header["length"] == 0:
                    events.append(frame)
                    frame = None
            if payload is not None:
                assert frame is not None, "a payload byte came with no header before it"
                frame[2].append(payload["data"])
                assert payload["last"] == (len(frame[2]) == frame[1]["length"])
                if payload["last"]:
                    events.append(frame)
                    frame = None
            if error is not None:
                assert frame is None, "an error came inside a frame's payload"
                events.append(("error", {**error, "status": Status(error["status"])}))
            if offered and taking:
                position += 1
            elif position == len(stream_bytes) and taking and frame is None:
                # Ready for more, and the last frame's payload is out of the register slice.
                break
        results["events"], results["cycles"] = events, cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return results["events"], results["cycles"]


def frames_from(events):
    return [event for event in events if event[0] == "frame"]


def check_payloads(max_payload, bodies, payloads, *, seed, stall):
    """Send ``bodies`` as frames; the receiver must report what the model does and release
    each of ``payloads``. Returns the wire bytes, the events and the cycles."""
    stream_bytes = b"".join(wire(body) for body in bodies)
    events, cycles = check_receiver(max_payload, stream_bytes, seed=seed, stall=stall)
    assert [event[2] for event in frames_from(events)] == [list(payload) for payload in payloads]
    return stream_bytes, events, cycles


def check_receiver(max_payload, stream_bytes, *, seed, stall):
    expected = expected_events(stream_bytes, max_payload)
    events, cycles = simulate_receiver(FrameReceiver(max_payload), stream_bytes, seed=seed,
                                       stall=stall,
                                       timeout=int(4 * len(stream_bytes) / (1 - stall)) + 200)
    assert len(events) == len(expected)
    for index, (event, model) in enumerate(zip(events, expected)):
        assert event == model, f"report {index} differs from the model"
    return events, cycles


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_receiver_releases_golden_frames(stall):
    seed = 11 + int(stall * 10)
    print(f"seed {seed}")
    rng = random.Random(seed)
    max_payload = 520

    def header(payload):
        return request_body(Command.LOAD, 0xA5, payload)

    payloads = boundary_payloads(rng, header, max_payload)
    payloads += [random_payload(rng, rng.choice([rng.randrange(0, 8),
                                                 rng.randrange(0, max_payload + 1)]))
                 for _ in range(24 if stall else 6)]
    bodies = [request_body(rng.choice(list(Command) + [0, 0xFF]), rng.randrange(256), payload)
              for payload in payloads]
    encodings = [cobs_encode(body) for body in bodies]
    # The block boundaries the payloads aim at: a body ending on a full block (then the
    # empty block 0x01), and blocks of 255 bytes past a full one.
    assert any(e[-256] == 0xFF and e[-1] == 0x01 for e in encodings if len(e) > 256)
    assert sum(e.count(0xFF) for e in encodings) > 0
    stream_bytes, _, cycles = check_payloads(max_payload, bodies, payloads, seed=seed,
                                             stall=stall)
    if stall == 0:
        # One wire byte per cycle; each frame then out of service for its length plus one,
        # and one more before a payload's first byte (the buffer's reads take two cycles).
        release = sum(len(payload) + 1 + (len(payload) > 0) for payload in payloads)
        assert cycles == len(stream_bytes) + release + 1


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_receiver_reads_across_its_banks(stall):
    # A buffer of three RAM banks (2048 + 2048 + 904 bytes): payloads that cross from one
    # bank to the next, fill all three, and one that fits in the first.
    seed = 21 + int(stall * 10)
    print(f"seed {seed}")
    rng = random.Random(seed)
    max_payload = 5000
    payloads = [random_payload(rng, length) for length in (max_payload, 2049, 3, 4097)]
    bodies = [request_body(Command.LOAD, number, payload)
              for number, payload in enumerate(payloads)]
    check_payloads(max_payload, bodies, payloads, seed=seed, stall=stall)


def corrupted(rng, stream_bytes):
    """Flip a bit in one to three bytes of a frame's encoding (a flip may make a zero)."""
    data = bytearray(stream_bytes[:-1])
    for position in rng.sample(range(len(data)), min(len(data), rng.randint(1, 3))):
        data[position] ^= 1 << rng.randrange(8)
    return bytes(data) + b"\x00"


def fault(rng, kind, max_payload, good):
    """Wire bytes of one fault of ``kind``; ``good()`` gives a good frame's wire bytes."""
    sequence = rng.randrange(256)
    if kind == "flipped bits":
        return corrupted(rng, good())
    if kind == "truncated":
        encoded = good()[:-1]
        return encoded[:rng.randrange(1, len(encoded))] + b"\x00"
    if kind == "dropped byte":
        encoded = bytearray(good()[:-1])
        del encoded[rng.randrange(len(encoded))]
        return bytes(encoded) + b"\x00"
    if kind == "bad crc":
        body = bytearray(request_body(Command.RUN, sequence, random_payload(rng, 9)))
        body[-rng.randint(1, 2)] ^= rng.randrange(1, 256)
        return wire(body)
    if kind == "garbage":
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + b"\x00"
    if kind == "garbage joining a frame":
        # No zero after the garbage: the next good frame is spoiled with it.
        return bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 20))) + good()
    if kind == "too large":
        payload = random_payload(rng, max_payload + rng.randint(1, 30))
        return wire(request_body(Command.LOAD, sequence, payload))
    if kind == "too large garbage":
        return bytes(rng.randrange(1, 256)
                     for _ in range(max_payload + rng.randint(8, 80))) + b"\x00"
    if kind == "length lies":
        payload = random_payload(rng, rng.randrange(0, 12))
        length = rng.choice([len(payload) + 1, max(len(payload) - 1, 0) ^ 0x100, 0xFFFF])
        return wire(request_body(Command.GLU, sequence, payload, length=length))
    if kind == "short body":
        return wire(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 6))))
    if kind == "empty frames":
        return bytes(rng.randint(1, 3))
    raise ValueError(kind)


FAULTS = ["flipped bits", "truncated", "dropped byte", "bad crc", "garbage",
          "garbage joining a frame", "too large", "too large garbage", "length lies",
          "short body", "empty frames"]


@pytest.mark.parametrize("stall", [0.0, 0.25])
def test_receiver_recovers_from_faults(stall):
    seed = 101 + int(stall * 100)
    print(f"seed {seed}")
    rng = random.Random(seed)
    max_payload = 40
    sent_good = []

    def good():
        payload = random_payload(rng, rng.randrange(0, 10))
        body = request_body(rng.choice(list(Command)), rng.randrange(256), payload)
        sent_good.append(body)
        return wire(body)

    faults = 22 * len(FAULTS)
    stream_bytes = bytearray(good())
    intended = list(sent_good)
    kinds = {}
    for index in range(faults):
        kind = FAULTS[index % len(FAULTS)]
        kinds[kind] = kinds.get(kind, 0) + 1
        stream_bytes += fault(rng, kind, max_payload, good)
        # The frames a fault spends are not expected; the one after each must come.
        stream_bytes += good()
        intended.append(sent_good[-1])
    expected = expected_events(stream_bytes, max_payload)
    # The stream does what it is meant to: every frame after a fault is good, no fault's
    # frame passes as good, and each bad status is there many times.
    assert [tuple(event[1].values()) + (bytes(event[2]),) for event in frames_from(expected)] \
        == [(b[0], b[1], int.from_bytes(b[2:4], "little"), b[4:-2]) for b in intended]
    statuses = [event[1]["status"] for event in expected if event[0] == "error"]
    counts = {status.name: statuses.count(status) for status in set(statuses)}
    print(f"{faults} faults: {kinds}; reports: {counts}")
    assert faults >= 200
    assert min(counts[s.name] for s in (Status.BAD_CRC, Status.BAD_FRAME, Status.TOO_LARGE,
                                        Status.MALFORMED)) >= 20
    events, _ = check_receiver(max_payload, bytes(stream_bytes), seed=seed, stall=stall)
    assert len(frames_from(events)) == len(intended)


def test_receiver_checks_in_the_documented_order():
    seed = 61
    print(f"seed {seed}")
    rng = random.Random(seed)
    max_payload = 250   # a body of 256 bytes, whose longest encoding is 258 bytes
    nonzero = bytes(rng.randrange(1, 256) for _ in range(300))
    good_crc_wrong_length = request_body(Command.GLU, 0x66, nonzero[:9], length=10)
    too_large = request_body(Command.LOAD, 0x33, bytes(max_payload + 1))
    frames = [
        # Too long, and cut inside a block: too long decides.
        (b"\xff" + nonzero[:254]) * 2 + b"\x40" + nonzero[:3] + b"\x00",
        # Cut inside a block.
        wire(request_body(Command.RUN, 9, nonzero[:20]))[:12] + b"\x00",
        # 258 wire bytes, within the longest encoding, of a body of 257 bytes.
        wire(too_large),
        # Five bytes: shorter than a header and a CRC.
        wire(bytes([Command.INFO, 0x44, 0, 0, 1])),
        # A bad CRC and a wrong length: the CRC decides.
        wire(good_crc_wrong_length[:-1] + bytes([good_crc_wrong_length[-1] ^ 1])),
        # A wrong length under a good CRC.
        wire(good_crc_wrong_length),
        # The largest payload.
        wire(request_body(Command.LOAD, 0x77, nonzero[:max_payload])),
    ]
    events, _ = check_receiver(max_payload, b"".join(frames), seed=seed, stall=0.1)
    assert len(cobs_encode(too_large)) == 258
    assert [(event[1].get("status"), event[1]["command"], event[1]["sequence"])
            for event in events] == [
        (Status.TOO_LARGE, nonzero[0], nonzero[1]), (Status.BAD_FRAME, 0, 0),
        (Status.TOO_LARGE, Command.LOAD, 0x33), (Status.BAD_FRAME, 0, 0),
        (Status.BAD_CRC, Command.GLU, 0x66), (Status.MALFORMED, Command.GLU, 0x66),
        (None, Command.LOAD, 0x77)]


def test_receiver_ignores_garbage_before_a_frame():
    seed = 5
    print(f"seed {seed}")
    rng = random.Random(seed)
    body = request_body(Command.INFO, 7, b"")
    garbage = bytes(rng.randrange(256) for _ in range(30))
    # A host sends a zero before a frame: whatever came before becomes one bad frame.
    stream_bytes = garbage + b"\x00" + b"\x00" + wire(body)
    events, _ = check_receiver(16, stream_bytes, seed=seed, stall=0.0)
    assert events[-1] == ("frame", {"command": Command.INFO, "sequence": 7, "length": 0}, [])
    assert all(event[0] == "error" for event in events[:-1])


def test_receiver_refuses_bad_max_payload():
    for max_payload in (0, 65536, 1.5):
        with pytest.raises(ValueError, match="max_payload must be an int from 1 to 65535"):
            FrameReceiver(max_payload)


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_transmitter_matches_golden_encoding(stall):
    seed = 21 + int(stall * 10)
    print(f"seed {seed}")
    rng = random.Random(seed)
    max_payload = 600

    def header(payload):
        return response_body(Command.RUN | RESPONSE_FLAG, 3, Status.MALFORMED, payload)

    payloads = boundary_payloads(rng, header, max_payload)
    payloads += [random_payload(rng, rng.choice([rng.randrange(0, 8),
                                                 rng.randrange(0, max_payload + 1)]))
                 for _ in range(20 if stall else 6)]
    responses = [(rng.choice(list(Command)) | RESPONSE_FLAG, rng.randrange(256),
                  rng.choice(list(Status)), payload) for payload in payloads]
    bodies = [response_body(*response) for response in responses]
    assert any(cobs_encode(b)[-256] == 0xFF and cobs_encode(b)[-1] == 0x01
               for b in bodies if len(b) > 256)
    expected = b"".join(wire(body) for body in bodies)

    dut = FrameTransmitter()
    headers = [{"command": command, "sequence": sequence, "length": len(payload),
                "status": status} for command, sequence, status, payload in responses]
    (received,), cycles = run(dut, inputs=[(dut.header, headers),
                                           (dut.payload, list(b"".join(payloads)))],
                              outputs=[(dut.o, len(expected))], seed=seed, stall=stall,
                              timeout=4 * len(expected) + 100)
    assert bytes(received) == expected
    if stall == 0:
        # One wire byte per cycle, except while the output waits for a block to close (the
        # whole wait, 254 cycles, before a long block): 13 % more cycles than wire bytes
        # here, where two banks of one block each took 57 %.
        assert cycles <= 1.15 * len(expected) + 256


@pytest.mark.parametrize("stall", [0.0, 0.2])
def test_cobs_encoder_matches_golden(stall):
    seed = 31 + int(stall * 10)
    print(f"seed {seed}")
    rng = random.Random(seed)
    frames = [bytes([0]), bytes([1]), bytes(254), bytes([7]) * 254, bytes([7]) * 253 + b"\x00",
              bytes([9]) * 508, bytes([9]) * 255 + b"\x00" * 3]
    frames += [random_payload(rng, rng.randrange(1, 700)) for _ in range(8)]
    expected = b"".join(cobs_encode(frame) + b"\x00" for frame in frames)
    inputs = [{"data": byte, "last": int(index == len(frame) - 1)}
              for frame in frames for index, byte in enumerate(frame)]
    dut = CobsEncoder()
    received, stopped_while_idle = [], []

    async def bench(ctx):
        position = cycle = 0
        while len(received) < len(expected):
            offered = position < len(inputs) and rng.random() >= stall
            ctx.set(dut.i.valid, offered)
            if offered:
                ctx.set(dut.i.payload, inputs[position])
            ready = rng.random() >= stall
            ctx.set(dut.o.ready, ready)
            _, _, taken, valid, byte = await ctx.tick().sample(dut.i.ready, dut.o.valid,
                                                               dut.o.payload)
            position += offered and taken
            if valid and ready:
                received.append(byte)
            if offered and not taken and not valid:
                stopped_while_idle.append(cycle)
            cycle += 1
            assert cycle < 4 * len(expected), "the encoder hangs"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert bytes(received) == expected
    # The input stops only while the output is busy: the ring never holds it back for
    # nothing.
    assert stopped_while_idle == []


def test_crc16_matches_golden():
    seed = 41
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = Crc16()
    checked = []

    async def bench(ctx):
        model = crc16(b"")
        for _ in range(3000):
            byte, enable, clear = rng.randrange(256), rng.random() < 0.8, rng.random() < 0.03
            ctx.set(dut.data, byte)
            ctx.set(dut.enable, enable)
            ctx.set(dut.clear, clear)
            await ctx.tick()
            if clear:
                model = crc16(b"")
            if enable:
                model = crc16(bytes([byte]), model)
            assert ctx.get(dut.value) == model
            checked.append(enable)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert sum(checked) > 2000


class LoopThrough(wiring.Component):
    """A receiver answering each request through a transmitter: a good frame comes back
    with ``RESPONSE_FLAG`` set, status ``OK`` and its payload; a bad one as its error
    report with no payload."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def __init__(self, max_payload):
        self._max_payload = max_payload
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = FrameReceiver(self._max_payload)
        m.submodules.transmitter = transmitter = FrameTransmitter()
        wiring.connect(m, wiring.flipped(self.i), receiver.i)
        wiring.connect(m, transmitter.o, wiring.flipped(self.o))
        header, error, response = receiver.header, receiver.error, transmitter.header
        # The receiver offers a header or an error, never both.
        m.d.comb += [
            response.valid.eq(header.valid | error.valid),
            header.ready.eq(response.ready),
            error.ready.eq(response.ready),
            transmitter.payload.valid.eq(receiver.payload.valid),
            transmitter.payload.payload.eq(receiver.payload.payload.data),
            receiver.payload.ready.eq(transmitter.payload.ready),
        ]
        with m.If(header.valid):
            m.d.comb += [
                response.payload.command.eq(header.payload.command | RESPONSE_FLAG),
                response.payload.sequence.eq(header.payload.sequence),
                response.payload.length.eq(header.payload.length),
                response.payload.status.eq(Status.OK),
            ]
        with m.Else():
            m.d.comb += [
                response.payload.command.eq(error.payload.command | RESPONSE_FLAG),
                response.payload.sequence.eq(error.payload.sequence),
                response.payload.status.eq(error.payload.status),
            ]
        return m


@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_loop_through_answers_every_frame(stall):
    seed = 51 + int(stall * 10)
    print(f"seed {seed}")
    rng = random.Random(seed)
    max_payload = 300
    stream_bytes = bytearray()
    for index in range(16):
        payload = random_payload(rng, rng.choice([0, 5, 253, 300]))
        body = request_body(rng.choice(list(Command)), rng.randrange(256), payload)
        stream_bytes += wire(body) if index % 4 else corrupted(rng, wire(body))
    responses = []
    for event in expected_events(stream_bytes, max_payload):
        command, sequence = event[1]["command"], event[1]["sequence"]
        if event[0] == "frame":
            responses.append(response_body(command | RESPONSE_FLAG, sequence, Status.OK,
                                           bytes(event[2])))
        else:
            responses.append(response_body(command | RESPONSE_FLAG, sequence,
                                           event[1]["status"], b""))
    assert sum(body[4] != Status.OK for body in responses) >= 3
    expected = b"".join(wire(body) for body in responses)
    dut = LoopThrough(max_payload)
    (received,), _ = run(dut, inputs=[(dut.i, list(stream_bytes))],
                         outputs=[(dut.o, len(expected))], seed=seed, stall=stall,
                         timeout=6 * len(stream_bytes) + 100)
    assert bytes(received) == expected
