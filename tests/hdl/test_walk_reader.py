"""WalkReader: two users reading a memory along their walks, in turn, with one- and two-cycle
reads under a stalling consumer; a restart dropping the words in flight; a writer stepping
the walk itself; and :func:`last_of` against :meth:`AddressWalk.last_of`."""

import pytest
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from gatework.hdl.share import share
from gatework.hdl.walk import AddressWalk, WalkReader, WalkUser, last_of


ADDRESS_BITS = 6
COUNT_SHAPE = range(16)
#: The tag of a read is its position: (inner, middle, outer), four bits each.
TAG_SHAPE = 12


def expected_walk(base, limits, strides):
    """Every ``(outer, middle, inner, address)`` of a walk, as nested loops give them."""
    outer_limit, middle_limit, inner_limit = limits
    return [(outer, middle, inner,
             (base + outer * strides[0] + middle * strides[1] + inner) % (1 << ADDRESS_BITS))
            for outer in range(outer_limit) for middle in range(middle_limit)
            for inner in range(inner_limit)]


def tag_of(outer, middle, inner):
    return inner | middle << 4 | outer << 8


def harness(words, two_cycle_reads):
    """A reader on a memory holding ``words``, its read port enabled by ``advance`` (and with
    two-cycle reads, a register after it, enabled likewise, as RunMemories has), and two
    users with limits of their own, each comparing them only in its turn."""
    m = Module()
    m.submodules.reader = reader = WalkReader(COUNT_SHAPE, ADDRESS_BITS, TAG_SHAPE,
                                              two_cycle_reads=two_cycle_reads)
    m.submodules.memory = memory = Memory(shape=16, depth=1 << ADDRESS_BITS, init=words)
    read = memory.read_port()
    m.d.comb += [read.addr.eq(reader.address), read.en.eq(reader.advance)]
    word = read.data
    if two_cycle_reads:
        word = Signal(16)
        with m.If(reader.advance):
            m.d.sync += word.eq(read.data)
    signature = WalkUser(COUNT_SHAPE, ADDRESS_BITS, TAG_SHAPE)
    users = []
    for index in range(2):
        port = signature.create(path=(f"user_{index}",))
        turn = Signal(name=f"turn_{index}")
        limits = [Signal(8, name=f"limit_{index}_{name}")
                  for name in ("outer", "middle", "inner")]
        with m.If(turn):
            m.d.comb += [*port.last_of(*limits),
                         port.tag.eq(Cat(port.inner[:4], port.middle[:4], port.outer[:4]))]
        users.append((port, turn, limits))
    share(m, reader, *(port for port, _, _ in users))
    return m, reader, word, users


def random_walk(rng):
    limits = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 5)))
    base = int(rng.integers(1 << ADDRESS_BITS))
    # Forward and backward outer strides (a reverse run walks its steps backward).
    strides = (int(rng.integers(-20, 20)) % (1 << ADDRESS_BITS), int(rng.integers(0, 12)))
    return base, limits, strides


async def begin(ctx, user, base, limits, strides):
    """Start ``user``'s walk: one cycle of ``start`` with its base, limits and strides."""
    port, turn, limit_signals = user
    ctx.set(turn, 1)
    for signal, limit in zip(limit_signals, limits):
        ctx.set(signal, limit)
    ctx.set(port.base, base)
    ctx.set(port.strides, {"outer": strides[0], "middle": strides[1]})
    ctx.set(port.start, 1)
    await ctx.tick()
    ctx.set(port.start, 0)


def leave(ctx, user):
    port, turn, limits = user
    for signal in (turn, port.read, port.taken, port.step, port.base, *limits):
        ctx.set(signal, 0)
    ctx.set(port.strides, {"outer": 0, "middle": 0})


@pytest.mark.parametrize("two_cycle_reads", [False, True])
def test_words_arrive_in_walk_order_with_their_tags(two_cycle_reads, rng):
    words = [int(word) for word in rng.integers(0, 1 << 16, 1 << ADDRESS_BITS)]
    m, _, word, users = harness(words, two_cycle_reads)
    walks = [random_walk(rng) for _ in range(10)]
    received = []

    async def testbench(ctx):
        for index, walk in enumerate(walks):
            user, other = users[index % 2], users[1 - index % 2]
            port = user[0]
            await begin(ctx, user, *walk)
            ctx.set(port.read, 1)
            arrived = []
            for _ in range(500):
                if ctx.get(port.done) and not ctx.get(port.pending):
                    break
                taken = rng.random() < 0.6
                ctx.set(port.taken, taken)
                # What the reader answers reaches both users.
                for name in ("valid", "data_tag", "pending", "done", "address"):
                    assert (ctx.get(getattr(port, name)) ==
                            ctx.get(getattr(other[0], name))), name
                if ctx.get(port.valid) and taken:
                    arrived.append((ctx.get(word), ctx.get(port.data_tag)))
                await ctx.tick()
            else:
                raise AssertionError(f"walk {walk} did not end")
            # Nothing more arrives once the walk is done and its words are taken.
            assert not ctx.get(port.valid)
            leave(ctx, user)
            received.append(arrived)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for walk, arrived in zip(walks, received):
        expected = [(words[address], tag_of(outer, middle, inner))
                    for outer, middle, inner, address in expected_walk(*walk)]
        assert arrived == expected, walk


@pytest.mark.parametrize("two_cycle_reads", [False, True])
def test_a_restart_drops_the_words_in_flight(two_cycle_reads, rng):
    words = [int(word) for word in rng.integers(0, 1 << 16, 1 << ADDRESS_BITS)]
    m, _, word, users = harness(words, two_cycle_reads)
    first = (0, (3, 3, 4), (12, 4))
    second = (40, (2, 1, 3), (7, 3))
    received = []

    async def testbench(ctx):
        port = users[0][0]
        await begin(ctx, users[0], *first)
        ctx.set(port.read, 1)
        # The consumer stalls: the reads in flight fill the ports' registers.
        for _ in range(4):
            await ctx.tick()
        assert ctx.get(port.valid) and ctx.get(port.pending)
        assert ctx.get(port.data_tag) == tag_of(0, 0, 0) and ctx.get(word) == words[0]
        if two_cycle_reads:
            # Taking the first word brings the second, with a third in the RAM's register.
            ctx.set(port.taken, 1)
            await ctx.tick()
            ctx.set(port.taken, 0)
            assert ctx.get(port.data_tag) == tag_of(0, 0, 1) and ctx.get(word) == words[1]
        # A restart with the reads still asked for: nothing read before it counts.
        await begin(ctx, users[0], *second)
        assert not ctx.get(port.valid) and not ctx.get(port.pending)
        assert ctx.get(port.address) == second[0] and not ctx.get(port.done)
        ctx.set(port.taken, 1)
        for _ in range(100):
            if ctx.get(port.done) and not ctx.get(port.pending):
                break
            if ctx.get(port.valid):
                received.append((ctx.get(word), ctx.get(port.data_tag)))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert received == [(words[address], tag_of(outer, middle, inner))
                        for outer, middle, inner, address in expected_walk(*second)]


@pytest.mark.parametrize("two_cycle_reads", [False, True])
def test_a_writer_steps_the_walk_itself(two_cycle_reads, rng):
    m, reader, _, users = harness([0] * (1 << ADDRESS_BITS), two_cycle_reads)
    walks = [random_walk(rng) for _ in range(6)]
    visited = []

    async def testbench(ctx):
        for index, walk in enumerate(walks):
            user = users[index % 2]
            port = user[0]
            await begin(ctx, user, *walk)
            positions = []
            for _ in range(200):
                if ctx.get(port.done):
                    break
                step = rng.random() < 0.7
                ctx.set(port.step, step)
                # The read ports stay where they are: a writer reads nothing.
                assert not ctx.get(reader.advance) and not ctx.get(port.pending)
                if step:
                    positions.append(tuple(ctx.get(getattr(port, name))
                                           for name in ("outer", "middle", "inner", "address")))
                await ctx.tick()
            leave(ctx, user)
            visited.append(positions)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    for walk, positions in zip(walks, visited):
        assert positions == expected_walk(*walk), walk


def test_last_of_is_the_walks_own(rng):
    m = Module()
    m.submodules.by_method = by_method = AddressWalk(COUNT_SHAPE, ADDRESS_BITS)
    m.submodules.by_function = by_function = AddressWalk(COUNT_SHAPE, ADDRESS_BITS)
    # Limits from the wire, wider than the counters.
    limits = [Signal(16, name=name) for name in ("outer", "middle", "inner")]
    m.d.comb += [*by_method.last_of(*limits), *last_of(by_function, *limits)]
    walks = [random_walk(rng) for _ in range(6)]

    async def testbench(ctx):
        for base, walk_limits, strides in walks:
            for walk in (by_method, by_function):
                ctx.set(walk.base, base)
                ctx.set(walk.strides, {"outer": strides[0], "middle": strides[1]})
                ctx.set(walk.start, 1)
            for signal, limit in zip(limits, walk_limits):
                ctx.set(signal, limit)
            await ctx.tick()
            steps = 0
            for walk in (by_method, by_function):
                ctx.set(walk.start, 0)
                ctx.set(walk.step, 1)
            while not ctx.get(by_method.done):
                for name in ("outer", "middle", "inner", "address", "last", "done"):
                    assert (ctx.get(getattr(by_method, name)) ==
                            ctx.get(getattr(by_function, name))), name
                await ctx.tick()
                steps += 1
            assert ctx.get(by_function.done) and steps == len(expected_walk(base, walk_limits,
                                                                            strides))
        # A limit past the counters' range is compared at its full width: 17 never matches
        # a counter at 0 (1 == 17 would hold on four bits).
        ctx.set(limits[2], 17)
        for walk in (by_method, by_function):
            ctx.set(walk.start, 1)
        await ctx.tick()
        assert ctx.get(by_method.inner) == 0
        assert not ctx.get(by_method.last.inner) and not ctx.get(by_function.last.inner)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
