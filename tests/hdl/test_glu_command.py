"""GluCommand: GLU requests' answers (status, length, drain) in the protocol's order of checks,
and an accepted request's words through the real GLU unit, against golden's GLU.

The harness is the accelerator top's part for a GLU: a request reader and a size multiplier
shared with the command, the header read into the reader's fields before the command starts,
a refused payload drained, and the response's words taken by a stalling consumer.
"""

import dataclasses
import random
import struct
from types import SimpleNamespace

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from gatework.golden.config import BuildConfig
from gatework.golden.glu import glu_fixed
from gatework.golden.messages import encode_glu_request
from gatework.golden.protocol import GLU_HEADER, Status
from gatework.hdl.arith import SequentialMultiplier
from gatework.hdl.glu import GLUUnit
from gatework.hdl.glu_command import GluCommand
from gatework.hdl.request import RequestReader
from gatework.hdl.share import share
from gatework.sim.streams import get, put

from command_harness import harness_members, header_states, shared_request


CONFIG = BuildConfig(lanes=2, max_input_size=4, max_hidden_size=3, max_batch=2, max_steps=3,
                     max_layers=2, bidirectional=True)
MAX_PAYLOAD = 64
SIZES_WIDTH = 17


class GluHarness(wiring.Component):
    """A request's payload into a :class:`GluCommand`, as the top drives it; the words of an
    accepted request's response out on ``words``. ``idle``: ready for the next request."""

    def __init__(self, config):
        self._config = config
        self.request = RequestReader(MAX_PAYLOAD)
        self.sizes = SequentialMultiplier(SIZES_WIDTH)
        self.command = GluCommand(config, MAX_PAYLOAD, sizes_width=SIZES_WIDTH)
        self.glu = GLUUnit(config.formats, max_channels=config.max_hidden_size)
        super().__init__(harness_members(MAX_PAYLOAD, words=Out(stream.Signature(16))))

    def elaborate(self, platform):
        m = Module()
        request, sizes, command, glu = self.request, self.sizes, self.command, self.glu
        m.submodules.request, m.submodules.sizes = request, sizes
        m.submodules.command, m.submodules.glu = command, glu
        own_request = shared_request(m, self, request, command, MAX_PAYLOAD)
        share(m, sizes, command.sizes)
        send = Signal()
        share(m, SimpleNamespace(glu_input=glu.i, glu_output=glu.o, words=self.words,
                                 send=send),
              command.response)
        m.d.comb += command.header.eq(request.header(GLU_HEADER))

        response_words = Signal(16)
        sent = Signal(16)
        channels = Signal.like(glu.channels)
        m.d.comb += glu.channels.eq(channels)
        # The response's last word leaves (the top counts bytes; words are what this sends).
        end = self.words.valid & self.words.ready & (sent == response_words - 1)
        m.d.comb += command.end.eq(end)
        with m.FSM():
            header_states(m, self, request, own_request, command, GLU_HEADER)
            with m.State("COMMAND"):
                with m.If(command.done):
                    m.d.sync += [response_words.eq(command.length >> 1), sent.eq(0),
                                 channels.eq(command.header.channels)]
                    with m.If(command.drain):
                        m.next = "DRAIN"
                    with m.Elif(command.length == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "RESPOND"
            with m.State("RESPOND"):
                # The response's header is sent.
                m.d.comb += command.respond.eq(1)
                m.next = "RESPONSE"
            with m.State("RESPONSE"):
                with m.If(self.words.valid & self.words.ready):
                    m.d.sync += sent.eq(sent + 1)
                with m.If(end):
                    m.next = "IDLE"
        return m


def glu_payload(channels, count, values):
    return GLU_HEADER.encode(channels=channels, count=count) + struct.pack(
        f"<{len(values)}h", *values)


def simulate(config, payloads, *, seed, stall=0.3):
    """Feed each payload as a request; return the command's answers, the words it fed the GLU
    unit and the response's words."""
    dut = GluHarness(config)
    answers, fed = [], []
    results = {}
    expected_words = sum(length // 2 for _, (_, length, _) in payloads)

    async def requests(ctx):
        rng = random.Random(seed)
        for payload, _ in payloads:
            ctx.set(dut.length, len(payload))
            ctx.set(dut.begin, 1)
            await ctx.tick()
            ctx.set(dut.begin, 0)
            await put(ctx, dut.payload, [{"data": byte, "last": index == len(payload) - 1}
                                         for index, byte in enumerate(payload)],
                      rng=rng, stall=stall)
            for _ in range(1000):
                if ctx.get(dut.idle):
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"the request {payload.hex()} was never finished")

    async def response(ctx):
        results["words"], _ = await get(ctx, dut.words, expected_words,
                                        rng=random.Random(seed + 1), stall=stall, timeout=20_000)

    async def monitor(ctx):
        command, glu_input = dut.command, dut.glu.i
        while True:
            _, _, done, status, length, drain, valid, ready, word = await ctx.tick().sample(
                command.done, command.status, command.length, command.drain,
                glu_input.valid, glu_input.ready, glu_input.payload)
            if done:
                answers.append((Status(status), length, drain))
            if valid and ready:
                fed.append(word)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(requests)
    sim.add_testbench(response)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return answers, fed, results["words"]


def random_values(rng, count, channels):
    fmt = CONFIG.formats.data
    return rng.integers(fmt.min_int, fmt.max_int, (count, 2 * channels), endpoint=True)


def test_answers_in_the_protocols_order_and_the_words_through_the_glu(rng, seed):
    accepted = [random_values(rng, 3, 2), random_values(rng, 1, 3), random_values(rng, 2, 1)]
    two_by_two = [int(word) for word in rng.integers(-0x8000, 0x8000, 8)]
    beyond = [int(word) for word in rng.integers(-0x8000, 0x8000, 8)]
    malformed = (Status.MALFORMED, 0, 1)
    # (payload, expected (status, length, drain))
    payloads = [
        (encode_glu_request(accepted[0]), (Status.OK, 2 * 2 * 3, 0)),
        # A payload of the wrong size: a word too many, a byte too few.
        (glu_payload(2, 2, two_by_two + [7, 9]), malformed),
        (glu_payload(2, 2, two_by_two)[:-1], malformed),
        # No channels or no vectors, with the payload that their product asks for (none).
        (glu_payload(0, 2, []), malformed),
        (glu_payload(2, 0, []), malformed),
        # channels * count (0x20004) overflows the multiplier's 17 bits to 4: the 16 bytes
        # that truncated product asks for are there, but not the ones the header asks for.
        (glu_payload(4, 0x8001, beyond), malformed),
        # More channels than the GLU unit holds, with the right payload: MALFORMED is checked
        # first, so only a well-formed request is refused for its size.
        (glu_payload(4, 1, beyond), (Status.BEYOND_MAXIMA, 0, 1)),
        (encode_glu_request(accepted[1]), (Status.OK, 2 * 3 * 1, 0)),
        (encode_glu_request(accepted[2]), (Status.OK, 2 * 1 * 2, 0)),
    ]
    answers, fed, words = simulate(CONFIG, payloads, seed=seed)
    assert answers == [expected for _, expected in payloads]
    # The accepted requests' words, in order, and nothing of the refused ones.
    assert fed == [int(word) for values in accepted for word in values.flatten()]
    expected = [int(word) & 0xFFFF for values in accepted
                for word in glu_fixed(values, -1, CONFIG.formats).flatten()]
    assert words == expected


def test_a_build_without_glu_refuses_every_well_formed_request(rng, seed):
    config = dataclasses.replace(CONFIG, glu=False)
    values = random_values(rng, 2, 1)
    payloads = [
        (encode_glu_request(values), (Status.BEYOND_MAXIMA, 0, 1)),
        (encode_glu_request(values)[:-2], (Status.MALFORMED, 0, 1)),
    ]
    answers, fed, words = simulate(config, payloads, seed=seed, stall=0.0)
    assert answers == [expected for _, expected in payloads]
    assert fed == [] and words == []
