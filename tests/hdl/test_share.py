# amaranth: UnusedElaboratable=no
"""share(): users taking turns at one block get its answers and give it the OR of their drives.

The shared block is a small accumulator with a plain member, a struct-shaped member and a
stream; two user components drive it only in their turn. Also the errors of a bad call.
"""

import pytest
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from gatework.hdl.share import share


PAIR = data.StructLayout({"low": 4, "high": 4})


class Accumulator(wiring.Component):
    """The shared block: a running total, the sum of a pair's halves, and a stream's total.

    ``add`` adds ``value`` to ``total`` (a register); ``pair_sum`` is ``pair.low +
    pair.high`` at once; ``feed`` takes a word every other cycle and adds it to ``fed``.
    ``count`` is a member no user has.
    """

    add: In(1)
    value: In(8)
    total: Out(16)
    pair: In(PAIR)
    pair_sum: Out(5)
    feed: In(stream.Signature(8))
    fed: Out(16)
    count: Out(8)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.add):
            m.d.sync += [self.total.eq(self.total + self.value), self.count.eq(self.count + 1)]
        m.d.comb += self.pair_sum.eq(self.pair.low + self.pair.high)
        # Backpressure, so that a user must see ``ready`` fanned out to stream correctly.
        m.d.sync += self.feed.ready.eq(~self.feed.ready)
        with m.If(self.feed.valid & self.feed.ready):
            m.d.sync += self.fed.eq(self.fed + self.feed.payload)
        return m


#: A user's port of an :class:`Accumulator`: its members but ``count``, flipped.
USER = wiring.Signature({
    "add": Out(1),
    "value": Out(8),
    "total": In(16),
    "pair": Out(PAIR),
    "pair_sum": In(5),
    "feed": Out(stream.Signature(8)),
    "fed": In(16),
})


class User(wiring.Component):
    """Drives the accumulator with its requests while ``turn`` is high, and 0 otherwise."""

    turn: In(1)
    add: In(1)
    value: In(8)
    pair: In(PAIR)
    feed_valid: In(1)
    feed_value: In(8)
    port: Out(USER)

    def elaborate(self, platform):
        m = Module()
        port = self.port
        with m.If(self.turn):
            m.d.comb += [port.add.eq(self.add), port.value.eq(self.value),
                         port.pair.eq(self.pair), port.feed.valid.eq(self.feed_valid),
                         port.feed.payload.eq(self.feed_value)]
        return m


def harness():
    m = Module()
    m.submodules.accumulator = accumulator = Accumulator()
    users = [User(), User()]
    for index, user in enumerate(users):
        m.submodules[f"user_{index}"] = user
    share(m, accumulator, *(user.port for user in users))
    return m, accumulator, users


def test_users_in_turn_get_the_results_of_their_own_requests(rng):
    m, accumulator, users = harness()
    checked = {"adds": [0, 0], "feeds": [0, 0]}

    async def testbench(ctx):
        total = fed = 0
        for _ in range(300):
            turn = int(rng.integers(2))
            user = users[turn]
            for index, other in enumerate(users):
                ctx.set(other.turn, index == turn)
                # The user out of turn asks for things too: none of it may reach the block.
                ctx.set(other.add, int(rng.integers(2)))
                ctx.set(other.value, int(rng.integers(256)))
                ctx.set(other.pair, {"low": int(rng.integers(16)),
                                     "high": int(rng.integers(16))})
                ctx.set(other.feed_valid, int(rng.integers(2)))
                ctx.set(other.feed_value, int(rng.integers(256)))
            pair = ctx.get(user.pair)
            for other in users:
                # Every user sees what the block answers, whichever's turn it is.
                assert ctx.get(other.port.pair_sum) == pair.low + pair.high
                assert ctx.get(other.port.total) == total
                assert ctx.get(other.port.fed) == fed
                assert ctx.get(other.port.feed.ready) == ctx.get(accumulator.feed.ready)
            if ctx.get(user.add):
                total = (total + ctx.get(user.value)) & 0xFFFF
                checked["adds"][turn] += 1
            if ctx.get(user.feed_valid) and ctx.get(accumulator.feed.ready):
                fed = (fed + ctx.get(user.feed_value)) & 0xFFFF
                checked["feeds"][turn] += 1
            await ctx.tick()
        assert ctx.get(accumulator.total) == total and ctx.get(accumulator.fed) == fed

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    # Both users had their turns at both the plain members and the stream.
    assert min(checked["adds"] + checked["feeds"]) > 10, checked


def test_the_block_gets_the_or_of_what_its_users_drive():
    m, accumulator, users = harness()

    async def testbench(ctx):
        for user, value, low, high in ((users[0], 0b1010_0001, 0b0011, 0b1000),
                                       (users[1], 0b0100_0011, 0b0101, 0b0001)):
            ctx.set(user.turn, 1)
            ctx.set(user.value, value)
            ctx.set(user.pair, {"low": low, "high": high})
            ctx.set(user.feed_valid, 1)
        assert ctx.get(accumulator.value) == 0b1110_0011
        assert ctx.get(accumulator.pair.low) == 0b0111
        assert ctx.get(accumulator.pair.high) == 0b1001
        assert ctx.get(accumulator.feed.valid) == 1
        for user in users:
            assert ctx.get(user.port.pair_sum) == 0b0111 + 0b1001

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()


def test_a_user_of_another_signature_is_refused():
    m = Module()
    accumulator = Accumulator()
    other = wiring.Signature({**USER.members, "value": Out(9)})
    with pytest.raises(TypeError, match="one signature"):
        share(m, accumulator, USER.create(), other.create())


def test_no_users_is_refused():
    with pytest.raises(ValueError, match="at least one user"):
        share(Module(), Accumulator())


def test_a_plain_object_with_the_members_is_a_resource():
    # A single user of a namespace of signals: what top does for the engine's load register.
    m = Module()
    port = wiring.Signature({"valid": Out(1), "payload": Out(PAIR), "ready": In(1)}).create()
    resource = wiring.Signature({"valid": Out(1), "payload": Out(PAIR),
                                 "ready": In(1)}).flip().create()
    ready = Signal()
    share(m, resource, port)
    m.d.comb += resource.ready.eq(Mux(resource.payload.high == 3, ready, 0))

    async def testbench(ctx):
        ctx.set(port.payload, {"low": 5, "high": 3})
        ctx.set(port.valid, 1)
        ctx.set(ready, 1)
        assert ctx.get(resource.valid) == 1 and ctx.get(resource.payload.low) == 5
        assert ctx.get(port.ready) == 1
        ctx.set(ready, 0)
        assert ctx.get(port.ready) == 0

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
