"""Protocol fault injection: damaged, cut, padded and nonsensical traffic, host and device.

Every case sends one request through the client and the host codec to the device model, with
one fault on the way there or back (or a request that is wrong in itself). Whatever happens,
the device must answer with an error or drop the frame, the host must never take a wrong
result for a good one (every OK payload is checked against the golden model), no case may
take long, and a good request right after must succeed.
"""

from collections import Counter
import functools
import struct
import time

import numpy as np
import pytest

from gatework.golden import glu_fixed, quantize_gru
from gatework.golden.config import BuildConfig
from gatework.golden.protocol import Command, Status
from gatework.host import GRU
from gatework.host.client import Client
from gatework.golden.device_model import DeviceModel, run_response
from gatework.golden.messages import (DeviceError, LoadRequest, ProtocolError, RunRequest,
                                    decode_run_request, encode_glu_request,
                                    encode_glu_response, encode_info_response,
                                    encode_load_request, encode_run_request)
from gatework.host.transport import LoopbackTransport


CONFIG = BuildConfig(lanes=2, max_input_size=8, max_hidden_size=4, max_batch=3, max_steps=6,
                     max_layers=2, bidirectional=True)
MAX_PAYLOAD = 600
CASES = 10_000
# The model answers inside write(), so waiting only matters for frames it never completes.
TIMEOUT = 0.005
SLOWEST_CASE = 1.0


class FaultyLink:
    """Stands between the client and the device and damages one exchange when told to."""

    def __init__(self, device):
        self.device = device
        self.request_fault = None
        self.response_fault = None

    def feed(self, data):
        if self.request_fault is not None:
            data, self.request_fault = self.request_fault(data), None
        answer = self.device.feed(data)
        if self.response_fault is not None and answer:
            answer, self.response_fault = self.response_fault(answer), None
        return answer


# --- faults: bytes -> bytes ------------------------------------------------------------------

def flip_bits(rng, data):
    data = bytearray(data)
    for _ in range(rng.integers(1, 4)):
        data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
    return bytes(data)


def drop_bytes(rng, data):
    data = bytearray(data)
    for _ in range(min(rng.integers(1, 4), len(data) - 1)):
        del data[rng.integers(len(data))]
    return bytes(data)


def duplicate_bytes(rng, data):
    data = bytearray(data)
    for _ in range(rng.integers(1, 4)):
        index = int(rng.integers(len(data)))
        data.insert(index, data[index])
    return bytes(data)


def truncate(rng, data):
    cut = data[:rng.integers(1, len(data))]
    return cut + b"\x00" if rng.integers(2) else cut


def insert_garbage(rng, data):
    garbage = rng.integers(0, 256, rng.integers(1, 31)).astype(np.uint8).tobytes()
    index = int(rng.integers(len(data) + 1))
    return data[:index] + garbage + data[index:]


def overwrite(rng, data):
    data = bytearray(data)
    start = int(rng.integers(len(data)))
    span = rng.integers(0, 256, rng.integers(1, 9)).astype(np.uint8).tobytes()
    data[start:start + len(span)] = span
    return bytes(data)


def flood(rng, data):
    # Longer than the device's buffer: it must stop storing, and answer at the next zero.
    # Before the request's leading zero the flood is a frame of its own; after, it is part of
    # the request.
    noise = rng.integers(1, 256, rng.integers(MAX_PAYLOAD + 10, 3 * MAX_PAYLOAD))
    index = int(rng.integers(2))
    return data[:index] + noise.astype(np.uint8).tobytes() + data[index:]


FAULTS = {fault.__name__: fault for fault in (flip_bits, drop_bytes, duplicate_bytes, truncate,
                                              insert_garbage, overwrite)}


# --- the model on the device, and what golden says it must answer ----------------------------

class Reference:
    """The GRU loaded on the device, and golden's answer to any request about it."""

    def __init__(self, rng):
        weights = GRU(4, 4, 2, bidirectional=True, device="numpy", seed=int(rng.integers(1 << 30)))
        self.formats = CONFIG.formats
        self.slots = {}
        for k, layer in enumerate(quantize_gru(weights.weights, self.formats).weights.layers):
            for d, cell in enumerate(layer):
                h0 = self.formats.data.quantize(rng.uniform(-1, 1, (3, 4)))
                self.slots[k, d] = (cell, h0)

    def loads(self):
        return [encode_load_request(LoadRequest(k, d, cell, True, h0))
                for (k, d), (cell, h0) in self.slots.items()]

    def run(self, request):
        """Golden's response payload to a RUN the device accepted."""
        directions = request.num_directions
        layers = tuple(tuple(self.slots[k, d][0] for d in range(directions))
                       for k in range(request.num_layers))
        h0 = None
        if request.use_h0:
            h0 = np.stack([self.slots[k, d][1] for k in range(request.num_layers)
                           for d in range(directions)])
        return run_response(layers, h0, request, self.formats)

    def random_run(self, rng):
        direction = str(rng.choice(["forward", "reverse", "bidirectional"]))
        num_layers = 2 if direction == "bidirectional" and rng.integers(2) else 1
        batch = 3 if rng.integers(2) else int(rng.integers(1, 4))
        lengths = rng.integers(1, 7, batch)
        inputs = self.formats.data.quantize(rng.normal(0, 1, (int(lengths.sum()), 4)))
        outputs = rng.choice(["all", "final only", "glu"])
        return RunRequest(inputs, lengths, num_layers, 4, direction=direction,
                          final_only=outputs == "final only", glu=outputs == "glu",
                          use_h0=batch == 3 and bool(rng.integers(2)))

    def random_glu(self, rng):
        values = self.formats.data.quantize(rng.normal(0, 2, (rng.integers(1, 4),
                                                               2 * rng.integers(1, 5))))
        return encode_glu_request(values), encode_glu_response(glu_fixed(values, -1,
                                                                         self.formats))


def random_run_payload(rng):
    """A RUN payload with random sizes, lengths and flags: mostly nonsense, sometimes not."""
    batch = int(rng.integers(0, 5))
    steps = int(rng.integers(0, 8))
    lengths = rng.integers(0, 9, batch)
    input_size = 4 if rng.integers(2) else int(rng.integers(0, 10))
    hidden = 4 if rng.integers(2) else int(rng.integers(0, 6))
    flags = int(rng.choice([0x01, 0x00, 0x02, 0x21, 0x09, 0x11, int(rng.integers(0, 256))]))
    header = struct.pack("<BBHHHH", int(rng.integers(0, 4)), flags, batch, steps, input_size,
                         hidden)
    inputs = rng.integers(-0x8000, 0x8000, int(lengths.sum()) * input_size).astype("<i2")
    payload = header + lengths.astype("<u2").tobytes() + inputs.tobytes()
    extra = int(rng.choice([0, 0, 0, -2, -1, 1, 2]))
    return payload[:len(payload) + extra] if extra < 0 else payload + bytes(extra)


# --- the campaign ----------------------------------------------------------------------------

def test_fault_injection(rng):
    reference = Reference(rng)
    model = DeviceModel(CONFIG, max_payload=MAX_PAYLOAD)
    link = FaultyLink(model)
    # No retries: the campaign looks at how every fault is reported; retries are checked
    # on their own below.
    client = Client(LoopbackTransport(link), timeout=TIMEOUT, retries=0)
    info_payload = encode_info_response(model.info)
    loads = reference.loads()
    runs = [reference.random_run(rng) for _ in range(40)]
    runs = [(encode_run_request(r), reference.run(r)) for r in runs]

    def load_everything():
        for payload in loads:
            assert client.request(Command.LOAD, payload) == b""

    load_everything()
    loaded = True
    outcomes = Counter()
    slowest = 0.0
    for case in range(CASES):
        category = rng.choice(["request fault", "response fault", "oversized",
                               "unknown command", "random RUN", "clean"],
                              p=[0.62, 0.15, 0.04, 0.04, 0.10, 0.05])
        fault = request_fault = response_fault = None
        command = rng.choice([Command.INFO, Command.LOAD, Command.RUN, Command.GLU,
                              Command.RESET], p=[0.15, 0.2, 0.35, 0.25, 0.05])
        if command == Command.INFO:
            payload, expected = b"", info_payload
        elif command == Command.LOAD:
            payload, expected = loads[rng.integers(len(loads))], b""
        elif command == Command.RUN:
            payload, expected = runs[rng.integers(len(runs))]
        elif command == Command.GLU:
            payload, expected = reference.random_glu(rng)
        else:
            payload, expected = b"", b""
        if category in ("request fault", "response fault"):
            fault = str(rng.choice(list(FAULTS)))
            kind = FAULTS[fault]
            if category == "request fault":
                request_fault = functools.partial(kind, rng)
            else:
                response_fault = functools.partial(kind, rng)
        elif category == "oversized":
            if rng.integers(2):
                command, payload = Command.GLU, bytes(int(rng.integers(MAX_PAYLOAD + 1, 2000)))
            else:
                fault = "flood"
                request_fault = functools.partial(flood, rng)
        elif category == "unknown command":
            command = int(rng.choice([0] + list(range(6, 0x80))))
            payload = rng.integers(0, 256, rng.integers(0, 20)).astype(np.uint8).tobytes()
        elif category == "random RUN":
            command, payload = Command.RUN, random_run_payload(rng)
        if command == Command.RUN and not loaded:
            load_everything()
            loaded = True

        link.request_fault, link.response_fault = request_fault, response_fault
        too_large = model.answered[Status.TOO_LARGE]
        start = time.perf_counter()
        try:
            answer = client.request(command, payload, 1000)
        except DeviceError as error:
            outcome = error.status.name
        except ProtocolError:
            outcome = "response damaged (ProtocolError)"
        except TimeoutError:
            outcome = "no response (TimeoutError)"
        else:
            if category == "random RUN":
                expected = reference.run(decode_run_request(payload))
            if category == "unknown command" or (category == "oversized" and fault is None):
                outcome = "OK where an error was due"
            elif answer == expected:
                outcome = "OK, result equals golden"
            else:
                outcome = "OK with a WRONG result"
        slowest = max(slowest, time.perf_counter() - start)
        outcomes[category, fault, outcome] += 1
        link.request_fault = link.response_fault = None

        context = f"case {case}: {category}, fault {fault}, command {command}, {outcome}"
        assert not outcome.startswith("OK") or outcome == "OK, result equals golden", context
        if fault == "flood":
            assert model.answered[Status.TOO_LARGE] == too_large + 1, context
        if category == "clean":
            assert outcome == "OK, result equals golden", context
        if category == "random RUN" and not outcome.startswith("OK"):
            assert outcome in ("MALFORMED", "BEYOND_MAXIMA", "NOT_LOADED", "TOO_LARGE"), context
        if command in (Command.LOAD, Command.RESET):
            loaded = False
        # A good request right after, with an answer golden agrees with.
        payload, expected = reference.random_glu(rng)
        assert client.request(Command.GLU, payload) == expected, context

    print(f"\n{CASES} fault cases, slowest {1e3 * slowest:.1f} ms:")
    totals = Counter()
    for (category, fault, outcome), count in sorted(outcomes.items(), key=str):
        print(f"  {category:<16} {fault or '-':<16} {outcome:<34} {count:6d}")
        totals[outcome] += count
    print("by outcome:", dict(totals))
    print("device answers by status:", {s.name: n for s, n in model.answered.items()})
    assert slowest < SLOWEST_CASE
    assert totals["OK with a WRONG result"] == 0
    # Each kind of damage was met, and was caught where the protocol says it is.
    for status in ("BAD_CRC", "BAD_FRAME", "TOO_LARGE", "MALFORMED", "UNKNOWN_COMMAND",
                   "BEYOND_MAXIMA", "NOT_LOADED"):
        assert totals[status] > 0, status
    assert totals["response damaged (ProtocolError)"] > 0
    assert totals["no response (TimeoutError)"] > 0


def test_random_bytes_never_stop_the_device(rng):
    model = DeviceModel(CONFIG, max_payload=MAX_PAYLOAD)
    client = Client(LoopbackTransport(model), timeout=TIMEOUT)
    reference = Reference(rng)
    for _ in range(300):
        size = int(rng.choice([1, 5, 50, 500, 5000]))
        noise = rng.integers(0, 256, rng.integers(1, size + 1)).astype(np.uint8)
        if rng.integers(2):
            noise[noise == 0] = 1
        model.feed(noise.tobytes())
        payload, expected = reference.random_glu(rng)
        assert client.request(Command.GLU, payload) == expected
    assert sum(model.answered.values()) > 300


class AlwaysFlipping:
    """Flips a bit of every request longer than an INFO (the client's fences pass intact): the
    device answers BAD_CRC to each."""

    def __init__(self, device):
        self.device = device
        self.requests = 0

    def feed(self, data):
        if len(data) > 12:
            self.requests += 1
            data = bytearray(data)
            data[4] ^= 0x10
        return self.device.feed(bytes(data))


def test_a_request_lost_once_is_sent_again(rng, caplog):
    model = DeviceModel(CONFIG, max_payload=MAX_PAYLOAD)
    link = FaultyLink(model)
    client = Client(LoopbackTransport(link), timeout=TIMEOUT, retries=2)
    values = CONFIG.formats.data.quantize(rng.normal(0, 1, (2, 6)))
    link.request_fault = functools.partial(flip_bits, rng)
    result = client.request(Command.GLU, encode_glu_request(values), 2 * values.size)
    assert result == encode_glu_response(glu_fixed(values, -1, CONFIG.formats))
    assert any("sending it again" in record.getMessage() for record in caplog.records)


def test_retries_are_bounded():
    model = DeviceModel(CONFIG, max_payload=MAX_PAYLOAD)
    link = AlwaysFlipping(model)
    client = Client(LoopbackTransport(link), timeout=TIMEOUT, retries=2)
    with pytest.raises(DeviceError, match="BAD_CRC"):
        client.request(Command.GLU, struct.pack("<HH", 1, 1) + bytes(4), 2)
    assert link.requests == 3
