"""RunIntake: a RUN's header checks, lengths and ragged inputs stored time-major in bank 0 of
the layer buffer, and its answer (status, response length, drain) against the device model,
with the request reader, the size multiplier and the walk shared as the accelerator top
shares them."""

import struct

import numpy as np
from amaranth.hdl import Module, signed
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.device_model import DeviceModel
from gatework.golden.gru import GRUDirectionWeights
from gatework.golden.messages import (FrameReader, LoadRequest, ProtocolError, RunRequest,
                                      decode_response, decode_run_request, encode_load_request,
                                      encode_request, encode_run_request)
from gatework.golden.protocol import RUN_HEADER, Command, RunFlag, Status
from gatework.hdl.arith import SequentialMultiplier
from gatework.hdl.request import RequestReader
from gatework.hdl.run import BufferLayout, RunIntake
from gatework.hdl.share import share
from gatework.hdl.walk import WalkReader, WalkUser
from gatework.sim.streams import to_python


CONFIG = BuildConfig(lanes=2, max_input_size=6, max_hidden_size=3, max_batch=3, max_steps=4,
                     max_layers=2, bidirectional=True)
MAX_PAYLOAD = 512


class Harness:
    """RunIntake joined to a RequestReader, a SequentialMultiplier, a WalkReader and a layer
    buffer as :class:`~gatework.hdl.top.AcceleratorTop` joins them."""

    def __init__(self, config, max_payload=MAX_PAYLOAD):
        self.config = config
        self.layout = layout = BufferLayout(config)
        address_bits = layout.address_bits
        count_range = layout.count_range(max_payload)
        sizes_width = max(17, address_bits)
        m = self.m = Module()
        m.submodules.request = self.request = request = RequestReader(max_payload)
        m.submodules.sizes = sizes = SequentialMultiplier(sizes_width)
        m.submodules.walk = walk = WalkReader(count_range, address_bits,
                                              range(layout.state_words))
        m.submodules.buffer = self.buffer = buffer = Memory(
            shape=signed(config.formats.data.total_bits), depth=2 * layout.bank_words, init=[])
        buffer_write = buffer.write_port()
        m.submodules.intake = self.intake = intake = RunIntake(
            config, max_payload,
            walk=WalkUser(count_range, address_bits, range(layout.state_words)),
            address_bits=address_bits, sizes_width=sizes_width)
        # The top's own port of the reader: it takes the header's bytes.
        self.own = RequestReader.words_signature(max_payload).create()
        m.d.comb += intake.header.eq(request.header(RUN_HEADER))
        share(m, request, self.own, intake.request)
        share(m, sizes, intake.sizes)
        share(m, walk, intake.walk)
        share(m, buffer_write, intake.buffer)

    def run(self, requests, rng, stall=0.0):
        """Feed each ``(payload, not_loaded)`` in turn; return what the intake answered."""
        request, intake = self.request, self.intake
        answers = []

        async def testbench(ctx):
            for payload, not_loaded in requests:
                writes = []
                index = 0

                async def cycle(payload=payload, writes=writes):
                    nonlocal index
                    valid = index < len(payload) and rng.random() >= stall
                    ctx.set(request.payload.valid, valid)
                    if valid:
                        ctx.set(request.payload.payload,
                                {"data": payload[index], "last": index == len(payload) - 1})
                    taken = ctx.get(request.taken)
                    if ctx.get(intake.buffer.en):
                        writes.append((ctx.get(intake.buffer.addr),
                                       ctx.get(intake.buffer.data)))
                    await ctx.tick()
                    index += taken

                ctx.set(intake.not_loaded, not_loaded)
                ctx.set(request.begin, 1)
                ctx.set(request.length, len(payload))
                await ctx.tick()
                ctx.set(request.begin, 0)
                # The header's bytes into the reader's fields, then the intake starts.
                ctx.set(request.to_fields, 1)
                ctx.set(self.own.take, 1)
                while ctx.get(request.field) < RUN_HEADER.size and ctx.get(request.remaining):
                    await cycle()
                ctx.set(request.to_fields, 0)
                ctx.set(self.own.take, 0)
                assert ctx.get(request.field) == RUN_HEADER.size, "payload shorter than a header"
                ctx.set(intake.start, 1)
                await cycle()
                ctx.set(intake.start, 0)
                for _ in range(20 * len(payload) + 400):
                    if ctx.get(intake.done):
                        break
                    await cycle()
                else:
                    raise AssertionError("the intake never answered")
                answers.append({
                    "status": Status(ctx.get(intake.status)), "length": ctx.get(intake.length),
                    "drain": ctx.get(intake.drain), "remaining": ctx.get(request.remaining),
                    "lengths": to_python(ctx.get(intake.lengths)),
                    "last_step": ctx.get(intake.last_step),
                    "output_bytes": ctx.get(intake.output_bytes), "writes": writes,
                    "buffer": [ctx.get(self.buffer.data[address])
                               for address in range(self.layout.bank_words * 2)],
                })
                await cycle()
                assert not ctx.get(intake.done), "the answer lasts one cycle"

        sim = Simulator(self.m)
        sim.add_clock(1e-8)
        sim.add_testbench(testbench)
        sim.run()
        return answers


def random_cell(rng, input_size, hidden_size):
    return GRUDirectionWeights(rng.integers(-99, 99, (3 * hidden_size, input_size)),
                               rng.integers(-99, 99, (3 * hidden_size, hidden_size)))


def model_answer(config, payload, loaded, rng):
    """The device model's answer to the RUN ``payload``, its slots loaded for it when
    ``loaded`` (and empty otherwise)."""
    model = DeviceModel(config, max_payload=MAX_PAYLOAD)
    frames = []
    try:
        request = decode_run_request(payload)
    except ProtocolError:
        request = None
    if loaded and request is not None:
        directions = request.num_directions
        for layer in range(request.num_layers):
            for slot in range(directions):
                inputs = request.input_size if layer == 0 else directions * request.hidden_size
                h0 = (rng.integers(-99, 99, (request.batch, request.hidden_size))
                      if request.use_h0 else None)
                load = LoadRequest(layer, slot, random_cell(rng, inputs, request.hidden_size),
                                   request.linear_before_reset, h0)
                frames.append(encode_request(Command.LOAD, len(frames),
                                             encode_load_request(load)))
    frames.append(encode_request(Command.RUN, 200, payload))
    wire = model.feed(b"".join(b"\x00" + frame for frame in frames))
    return [decode_response(body) for body in FrameReader(max_frame=1 << 18).feed(wire)][-1]


def raw_payload(num_layers, flags, batch, steps, input_size, hidden, lengths, inputs):
    """A RUN payload from raw fields, whatever they are."""
    return (RUN_HEADER.encode(num_layers=num_layers, flags=flags, batch=batch, steps=steps,
                              input_size=input_size, hidden_size=hidden) +
            struct.pack(f"<{len(lengths)}H", *lengths) +
            struct.pack(f"<{len(inputs)}h", *inputs))


def random_request(rng, config):
    direction = str(rng.choice(["forward", "reverse", "bidirectional"]))
    directions = 2 if direction == "bidirectional" else 1
    hidden = int(rng.integers(1, config.max_hidden_size + 1))
    final_only = bool(rng.random() < 0.3)
    glu = not final_only and (directions * hidden) % 2 == 0 and bool(rng.random() < 0.5)
    batch = int(rng.integers(1, config.max_batch + 1))
    steps = int(rng.integers(1, config.max_steps + 1))
    lengths = rng.integers(1, steps + 1, batch)
    inputs = int(rng.integers(1, config.max_input_size + 1))
    # Nonzero inputs, so that a word the intake should have written and did not shows.
    x = rng.integers(1, 0x7FFF, (int(lengths.sum()), inputs)) * rng.choice([-1, 1])
    return RunRequest(x, lengths, int(rng.integers(1, config.max_layers + 1)), hidden, steps,
                      direction, bool(rng.random() < 0.5), final_only, bool(rng.random() < 0.5),
                      glu)


def expected_writes(request, layout):
    """The inputs' words in arrival order, each at its time-major place in bank 0."""
    writes = []
    row = 0
    for b, length in enumerate(request.lengths):
        for t in range(length):
            for d in range(request.input_size):
                writes.append((t * layout.step_stride + b * layout.features + d,
                               int(request.inputs[row, d])))
            row += 1
    return writes


def test_good_requests_are_stored_time_major_and_sized(rng):
    harness = Harness(CONFIG)
    requests = [random_request(rng, CONFIG) for _ in range(8)]
    answers = harness.run([(encode_run_request(request), 0) for request in requests], rng,
                          stall=0.3)
    layout = harness.layout
    for request, answer in zip(requests, answers, strict=True):
        model = model_answer(CONFIG, encode_run_request(request), True, rng)
        assert model.status == Status.OK
        assert answer["status"] == Status.OK and not answer["drain"], request
        assert answer["length"] == len(model.payload) == request.response_length()
        assert answer["remaining"] == 0
        assert answer["lengths"][:request.batch] == request.lengths.tolist()
        assert answer["last_step"] == (request.steps - 1) * layout.step_stride
        outputs = 0 if request.final_only else sum(request.lengths) * request.output_features
        assert answer["output_bytes"] == 2 * outputs
        writes = expected_writes(request, layout)
        assert answer["writes"] == writes
        for address, word in writes:
            assert answer["buffer"][address] == word, address


def test_refusals_come_in_the_protocols_order(rng):
    config = CONFIG
    x = rng.integers(1, 0x7FFF, (4, 2))
    good = RunRequest(x, np.array([3, 1]), 2, 3, 3, "bidirectional", use_h0=True)
    payload = encode_run_request(good)
    lengths, inputs = [3, 1], x.ravel().tolist()
    flags = RunFlag.BIDIRECTIONAL | RunFlag.USE_H0
    # (payload, not_loaded, drain): drain when the header alone is refused.
    cases = [
        (payload, 1, 0),                                            # NOT_LOADED
        (payload, 0, 0),                                            # OK
        (payload[:-1], 0, 0),                                       # a byte short
        (payload[:-2], 0, 0),                                       # an input word short
        (payload + bytes(1), 0, 0),                                 # a byte too many
        (payload + bytes(2), 1, 0),                                 # a word too many
        (payload[:RUN_HEADER.size + 3], 0, 1),                      # the lengths cut short
        (raw_payload(2, flags, 2, 3, 2, 3, [3, 0], inputs[:6]), 0, 0),   # a length of 0
        (raw_payload(2, flags, 2, 2, 2, 3, lengths, inputs), 0, 0),      # a length above T
        (raw_payload(2, flags | 0x40, 2, 3, 2, 3, lengths, inputs), 0, 1),   # reserved bit
        (raw_payload(2, flags | RunFlag.REVERSE, 2, 3, 2, 3, lengths, inputs), 0, 1),
        (raw_payload(0, flags, 2, 3, 2, 3, lengths, inputs), 0, 1),      # no layers
        (raw_payload(2, flags, 2, 3, 0, 3, lengths, []), 0, 1),          # D = 0
        (raw_payload(2, flags | RunFlag.GLU | RunFlag.FINAL_ONLY, 2, 3, 2, 3, lengths,
                     inputs), 0, 1),
        (raw_payload(2, RunFlag.GLU, 2, 3, 2, 3, lengths, inputs), 0, 1),    # odd features
        # Beyond the build: layers, batch, steps, D, H, features of a second layer.
        (raw_payload(3, flags, 2, 3, 2, 3, lengths, inputs), 1, 0),
        (raw_payload(2, flags, 4, 3, 2, 3, lengths * 2, inputs * 2), 1, 0),
        (raw_payload(2, flags, 2, 5, 2, 3, [5, 1], inputs + inputs[:4]), 0, 0),
        (raw_payload(1, flags, 1, 1, 7, 3, [1], inputs[:7]), 0, 0),
        (raw_payload(1, flags, 2, 3, 2, 4, lengths, inputs), 0, 0),
        (raw_payload(2, flags, 2, 3, 2, 4, lengths, inputs), 0, 0),
        # MALFORMED before BEYOND_MAXIMA: a batch beyond the build, a word too many.
        (raw_payload(2, flags, 4, 3, 2, 3, lengths * 2, inputs * 2 + [5]), 0, 0),
        (payload, 0, 0),                                            # OK again
    ]
    answers = Harness(config).run([(case[0], case[1]) for case in cases], rng, stall=0.2)
    for index, ((case, not_loaded, drain), answer) in enumerate(zip(cases, answers, strict=True)):
        model = model_answer(config, case, not not_loaded, rng)
        assert answer["status"] == model.status, (index, answer["status"], model.status)
        assert answer["length"] == len(model.payload), index
        assert answer["drain"] == drain, index
        # Only a refused header leaves the payload to drain; otherwise every byte was read.
        assert answer["remaining"] == (len(case) - RUN_HEADER.size if drain else 0), index
        if model.status != Status.OK:
            continue
        assert answer["writes"] == expected_writes(good, BufferLayout(config))
    statuses = [answer["status"] for answer in answers]
    assert statuses[:3] == [Status.NOT_LOADED, Status.OK, Status.MALFORMED]
    assert statuses[15:21] == [Status.BEYOND_MAXIMA] * 6
    assert statuses[-2:] == [Status.MALFORMED, Status.OK]


def test_refused_lengths_and_sizes_write_nothing(rng):
    config = CONFIG
    x = rng.integers(1, 0x7FFF, (6, 2)).ravel().tolist()
    cases = [raw_payload(1, 0, 2, 3, 2, 3, [3, 0], x[:6]),          # a length of 0
             raw_payload(1, 0, 2, 2, 2, 3, [3, 1], x[:8]),          # a length above T
             raw_payload(1, 0, 4, 2, 2, 3, [1, 1, 1, 1], x[:8]),    # batch beyond the build
             raw_payload(1, 0, 1, 5, 2, 3, [5], x[:10])]            # steps beyond the build
    answers = Harness(config).run([(case, 0) for case in cases], rng)
    assert [answer["status"] for answer in answers] == [
        Status.MALFORMED, Status.MALFORMED, Status.BEYOND_MAXIMA, Status.BEYOND_MAXIMA]
    for answer in answers:
        assert answer["writes"] == [] and not any(answer["buffer"])


def test_a_response_past_65535_bytes_is_too_large(rng):
    """The h_n of many layers alone: 65 534 bytes fit, 65 536 do not."""
    config = BuildConfig(lanes=1, max_input_size=64, max_hidden_size=32, max_batch=8,
                         max_steps=2, max_layers=255, bidirectional=True)
    fits = RunRequest(rng.integers(-9, 9, (7, 1)), np.ones(7, dtype=np.int64), 151, 31,
                      final_only=True)
    too_large = RunRequest(rng.integers(-9, 9, (4, 1)), np.ones(4, dtype=np.int64), 128, 32,
                           direction="bidirectional", final_only=True)
    assert (fits.response_length(), too_large.response_length()) == (65534, 65536)
    answers = Harness(config).run([(encode_run_request(fits), 0),
                                   (encode_run_request(too_large), 0),
                                   (encode_run_request(too_large), 1)], rng)
    assert [(answer["status"], answer["length"]) for answer in answers] == [
        (Status.OK, 65534), (Status.TOO_LARGE, 0), (Status.NOT_LOADED, 0)]
    assert answers[0]["output_bytes"] == 0


def test_a_build_without_glu_or_reverse_slots_refuses_them(rng):
    config = BuildConfig(lanes=2, max_input_size=6, max_hidden_size=3, max_batch=3,
                         max_steps=4, max_layers=2, bidirectional=False, glu=False)
    x = rng.integers(1, 0x7FFF, (3, 2))
    cases = [RunRequest(x, np.array([2, 1]), 1, 2, glu=True),
             RunRequest(x, np.array([2, 1]), 1, 2, direction="bidirectional"),
             RunRequest(x, np.array([2, 1]), 2, 3, direction="reverse")]
    payloads = [encode_run_request(request) for request in cases]
    # Lengths that sum past any count of input vectors, in a few inputs.
    payloads.append(raw_payload(1, 0, 2, 0xFFFF, 2, 3, [0xFFFF, 0xFFFF], [1, 2, 3, 4]))
    answers = Harness(config).run([(payload, 0) for payload in payloads], rng)
    statuses = [answer["status"] for answer in answers]
    assert statuses == [Status.BEYOND_MAXIMA, Status.BEYOND_MAXIMA, Status.OK,
                        Status.MALFORMED]
    for payload, status in zip(payloads, statuses, strict=True):
        assert model_answer(config, payload, True, rng).status == status
