# amaranth: UnusedElaboratable=no
"""The sequence transposer in gateware against golden pack/unpack, in the Amaranth simulator.

The magic comment above stops Amaranth warning "created but never used" about the blocks whose
constructor refused their parameters.
"""

from dataclasses import dataclass
import random

import numpy as np
import pytest
from amaranth.hdl import Array, Module, Signal
from amaranth.sim import Simulator

from gatework.golden.transposer import pack, unpack
from gatework.hdl.transposer import Refusal, SequenceLayout, SequencePack, SequenceUnpack
from gatework.hdl.walk import AddressWalk
from gatework.sim.streams import get, put


#: Measured without stalls: the last output word of a request leaves ``words + 1`` cycles
#: after its last input word (one cycle for the buffer read), its status one cycle later.
OUTPUT_OVERHEAD = 1
#: Measured without stalls: command to next command, beyond ``N`` lengths and the words in
#: and out (the command itself, the output stage, the status).
REQUEST_OVERHEAD = 3

BLOCKS = {"pack": SequencePack, "unpack": SequenceUnpack}
INPUTS = ("command", "lengths", "i")
OUTPUTS = ("o", "status")


@dataclass
class Request:
    """What goes into the block for one command and what must come out."""

    command: dict
    lengths: list
    words: list
    expected: list
    status: dict


def accepted(direction, values, lengths):
    """A request the block must carry out: ``values`` is ``(sum(lengths), D)``."""
    lengths = np.asarray(lengths)
    batch, features = lengths.size, values.shape[1]
    padded = pack(values, lengths)
    if direction == "pack":
        words = values.ravel()
        expected = [{"data": int(word), "first": int(n == 0 and d == 0),
                     "last": int(n == batch - 1 and d == features - 1)}
                    for word, (t, n, d) in zip(padded.ravel(), np.ndindex(padded.shape))]
    else:
        words = padded.ravel()
        expected = []
        for sequence in np.split(unpack(padded, lengths), np.cumsum(lengths)[:-1]):
            flat = sequence.ravel()
            expected += [{"data": int(word), "first": int(k == 0),
                          "last": int(k == flat.size - 1)} for k, word in enumerate(flat)]
    return Request({"batch": batch, "features": features}, lengths.tolist(),
                   words.tolist(), expected,
                   {"error": 0, "refusal": Refusal.NONE, "steps": int(lengths.max())})


def refused(direction, rng, width, batch, features, lengths, refusal):
    """A request the block must refuse for ``refusal``, consuming what the docstring says."""
    status = {"error": 1, "refusal": refusal, "steps": max(lengths, default=0)}
    if refusal in (Refusal.BATCH, Refusal.FEATURES):
        return Request({"batch": batch, "features": features}, [], [], [], status)
    if direction == "pack":
        count = sum(lengths) * features
    else:
        count = max(lengths) * batch * features
    return Request({"batch": batch, "features": features}, list(lengths),
                   random_words(rng, width, count).tolist(), [], status)


def random_words(rng, width, shape):
    """Signed words of ``width`` bits, the extremes among them."""
    low, high = -(1 << (width - 1)), (1 << (width - 1)) - 1
    words = rng.integers(low, high, shape, endpoint=True)
    flat = words.reshape(-1)
    flat[:2] = [low, high][:flat.size]
    return words


def simulate(dut, requests, *, stall, seed):
    """Send ``requests`` back to back; returns what came out and the transfer cycles.

    Returns ``(received, transfers)``: the payloads of each output stream, and for every
    stream the cycles on which it transferred. Fails if any input was left unconsumed.
    """
    inputs = {"command": [r.command for r in requests],
              "lengths": [n for r in requests for n in r.lengths],
              "i": [w for r in requests for w in r.words]}
    counts = {"o": sum(len(r.expected) for r in requests), "status": len(requests)}
    # Generous for stalls on both sides, short enough that a hang fails fast.
    timeout = 20 * (sum(map(len, inputs.values())) + counts["o"]) + 100
    received, transfers, finished = {}, {name: [] for name in INPUTS + OUTPUTS}, set()
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    for index, name in enumerate(INPUTS):
        async def producer(ctx, name=name, index=index):
            await put(ctx, getattr(dut, name), inputs[name],
                      rng=random.Random(seed * 100 + index), stall=stall)
            finished.add(name)
        sim.add_testbench(producer, background=True)

    for index, name in enumerate(OUTPUTS):
        async def consumer(ctx, name=name, index=index):
            received[name], _ = await get(ctx, getattr(dut, name), counts[name],
                                          rng=random.Random(seed * 100 + 50 + index),
                                          stall=stall, timeout=timeout)
        sim.add_testbench(consumer)

    async def monitor(ctx):
        streams = [getattr(dut, name) for name in transfers]
        handshakes = [signal for s in streams for signal in (s.valid, s.ready)]
        cycle = 0
        async for _, _, *values in ctx.tick().sample(*handshakes):
            for name, valid, ready in zip(transfers, values[::2], values[1::2]):
                if valid and ready:
                    transfers[name].append(cycle)
            cycle += 1
    sim.add_testbench(monitor, background=True)

    sim.run()
    assert finished == set(INPUTS), f"inputs left unconsumed: {set(INPUTS) - finished}"
    return received, transfers


def check(dut, requests, *, stall, seed):
    received, transfers = simulate(dut, requests, stall=stall, seed=seed)
    assert received["status"] == [r.status for r in requests]
    expected = [word for r in requests for word in r.expected]
    words = [w["data"] for w in received["o"]]
    assert words == [w["data"] for w in expected], "data words differ from golden"
    assert received["o"] == expected, "first/last markers differ from golden"
    return transfers


def split(cycles, sizes):
    """Cut a list of transfer cycles into one list per request."""
    bounds = np.cumsum([0] + list(sizes))
    return [cycles[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def check_timing(requests, transfers):
    """One word per cycle each way, and the overheads stated above, without stalls."""
    words_in = split(transfers["i"], [len(r.words) for r in requests])
    words_out = split(transfers["o"], [len(r.expected) for r in requests])
    for index, request in enumerate(requests):
        cycles_in, cycles_out = words_in[index], words_out[index]
        command = transfers["command"][index]
        assert cycles_in == list(range(command + len(request.lengths) + 1,
                                       command + len(request.lengths) + 1 + len(cycles_in)))
        assert cycles_out == list(range(cycles_out[0], cycles_out[0] + len(cycles_out)))
        assert cycles_out[-1] - cycles_in[-1] <= len(cycles_out) + OUTPUT_OVERHEAD
        assert transfers["status"][index] == cycles_out[-1] + 1
        if index + 1 < len(requests):
            assert (transfers["command"][index + 1] - command <= len(request.lengths) +
                    len(cycles_in) + len(cycles_out) + REQUEST_OVERHEAD)


def random_configuration(rng):
    """Random maxima, width and (sometimes smaller than the default) capacity."""
    width = int(rng.choice([1, 2, 5, 8, 16]))
    max_batch, max_steps, max_features = (int(x) for x in rng.integers(1, [8, 9, 4],
                                                                       endpoint=True))
    capacity = None
    if rng.random() < 0.5:
        capacity = int(rng.integers(max_steps * max_features,
                                    max_batch * max_steps * max_features, endpoint=True))
    return width, max_batch, max_steps, max_features, capacity


def random_lengths(rng, max_batch, max_steps, features, capacity):
    """Ragged, unsorted lengths with ``max_steps`` and (capacity allowing) 1 among them."""
    batch = int(rng.integers(1, max_batch, endpoint=True))
    lengths = rng.integers(1, max_steps, batch, endpoint=True)
    order = rng.permutation(batch)
    longest = int(order[0])
    lengths[longest] = max_steps
    if batch > 1:
        lengths[order[1]] = 1
    # Drop other sequences until the request's time-major words fit; the longest alone always
    # does, as capacity >= max_steps * max_features.
    while lengths.max() * lengths.size * features > capacity:
        drop = rng.choice(np.flatnonzero(np.arange(lengths.size) != longest))
        lengths = np.delete(lengths, drop)
        longest -= int(drop < longest)
    return lengths


@pytest.mark.parametrize("direction", ["pack", "unpack"])
@pytest.mark.parametrize("stall", [0.0, 0.3])
@pytest.mark.parametrize("seed", range(40))
def test_random_requests_match_golden(direction, stall, seed):
    seed = 1000 * seed + 7
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    width, max_batch, max_steps, max_features, capacity = random_configuration(rng)
    dut = BLOCKS[direction](width, max_batch, max_steps, max_features, capacity)
    requests = []
    for _ in range(3):
        features = int(rng.integers(1, max_features, endpoint=True))
        lengths = random_lengths(rng, max_batch, max_steps, features, dut.capacity)
        values = random_words(rng, width, (int(lengths.sum()), features))
        requests.append(accepted(direction, values, lengths))
    print(f"width {width}, maxima {max_batch} {max_steps} {max_features}, capacity "
          f"{dut.capacity}, requests {[(r.command, r.lengths) for r in requests]}")
    transfers = check(dut, requests, stall=stall, seed=seed)
    if stall == 0:
        check_timing(requests, transfers)


@pytest.mark.parametrize("direction", ["pack", "unpack"])
@pytest.mark.parametrize("stall", [0.0, 0.3])
def test_refused_requests_consume_their_input_and_emit_nothing(direction, stall):
    seed = 31
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    width = 8
    # Field widths allow N up to 7, D up to 3 and lengths up to 7: each can exceed its maximum.
    # A capacity of 15 words is max(lengths) * N * D of 5 * 3 * 1, and 16 of 4 * 2 * 2.
    dut = BLOCKS[direction](width, max_batch=5, max_steps=5, max_features=2, capacity=15)

    def good(features, lengths):
        return accepted(direction, random_words(rng, width, (sum(lengths), features)), lengths)

    def bad(batch, features, lengths, refusal):
        return refused(direction, rng, width, batch, features, lengths, refusal)

    requests = [
        good(2, [3, 1]),
        bad(0, 2, [], Refusal.BATCH),
        bad(7, 1, [], Refusal.BATCH),
        good(1, [5]),
        bad(2, 0, [], Refusal.FEATURES),
        bad(1, 3, [], Refusal.FEATURES),
        good(1, [2, 5, 3]),                      # exactly the capacity
        bad(3, 1, [2, 0, 1], Refusal.LENGTH),
        bad(2, 2, [7, 1], Refusal.LENGTH),
        bad(2, 1, [1, 6], Refusal.LENGTH),       # one step too long
        bad(2, 2, [0, 0], Refusal.LENGTH),       # no data words at all
        bad(3, 2, [3, 2, 2], Refusal.CAPACITY),
        bad(2, 2, [4, 1], Refusal.CAPACITY),     # one word too many; S * D = 10 fits
        bad(5, 2, [5, 5, 5, 5, 5], Refusal.CAPACITY),
        good(1, [1, 2, 3, 2, 1]),                # exactly the capacity, N at its maximum
    ]
    transfers = check(dut, requests, stall=stall, seed=seed)
    # Refused requests must not hold the block up either.
    if stall == 0:
        for index, request in enumerate(requests[:-1]):
            if request.status["error"]:
                busy = transfers["command"][index + 1] - transfers["command"][index]
                assert busy <= len(request.lengths) + len(request.words) + REQUEST_OVERHEAD


def visited_addresses(order, walks, *, strides_as_signals):
    """The positions and addresses an :class:`AddressWalk` visits, driven by a
    :class:`SequenceLayout`'s ``order`` (``"batch_major"`` or ``"time_major"``).

    ``walks`` holds ``(batch, features, lengths, sequence_stride, step_stride)``; returns, for
    each, the ``(n, t, d, address)`` of every step. The strides are Python integers fixed at
    elaboration, or signals set per walk.
    """
    address_bits = 12
    max_batch = max(len(walk[2]) for walk in walks)
    dut = AddressWalk(range(64), address_bits)
    m = Module()
    m.submodules.walk = dut
    lengths = Array(Signal(range(64), name=f"length_{n}") for n in range(max_batch))
    batch, features, steps = Signal(range(64)), Signal(range(64)), Signal(range(64))
    if strides_as_signals:
        strides = Signal(address_bits), Signal(address_bits)
    else:
        strides = walks[0][3:]
        assert all(walk[3:] == strides for walk in walks)
    layout = SequenceLayout(*strides)
    if order == "batch_major":
        m.d.comb += layout.batch_major(dut, batch, lengths[dut.outer], features)
    else:
        m.d.comb += layout.time_major(dut, steps, batch, features)
    seen = []

    async def testbench(ctx):
        for walk_batch, walk_features, walk_lengths, sequence_stride, step_stride in walks:
            for n, length in enumerate(walk_lengths):
                ctx.set(lengths[n], length)
            ctx.set(batch, walk_batch)
            ctx.set(features, walk_features)
            ctx.set(steps, max(walk_lengths))
            if strides_as_signals:
                ctx.set(strides[0], sequence_stride)
                ctx.set(strides[1], step_stride)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.step, 1)
            positions = []
            while not ctx.get(dut.done):
                counters = ctx.get(dut.outer), ctx.get(dut.middle), ctx.get(dut.inner)
                if order == "time_major":
                    counters = counters[1], counters[0], counters[2]
                positions.append((*counters, ctx.get(dut.address)))
                assert len(positions) <= 64 * 64, "the walk does not end"
                await ctx.tick()
            ctx.set(dut.step, 0)
            seen.append(positions)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return seen


def random_layout_walks(rng, count, *, strides=None):
    """Random ragged batches, each with its strides: ``strides``, or random ones that keep
    the words apart (a sequence at least ``D`` words, a step at least ``N`` sequences)."""
    walks = []
    for _ in range(count):
        batch = int(rng.integers(1, 6, endpoint=True))
        features = int(rng.integers(1, 4, endpoint=True))
        lengths = [int(length) for length in rng.integers(1, 5, batch, endpoint=True)]
        if strides is None:
            sequence_stride = features + int(rng.integers(0, 2, endpoint=True))
            step_stride = batch * sequence_stride + int(rng.integers(0, 3, endpoint=True))
            walks.append((batch, features, lengths, sequence_stride, step_stride))
        else:
            walks.append((batch, features, lengths, *strides))
    return walks


def batch_major_order(batch, features, lengths):
    """Every (n, t, d) of ragged sequences, batch-major: pack's writes, unpack's reads."""
    return [(n, t, d) for n in range(batch) for t in range(lengths[n]) for d in range(features)]


def time_major_order(batch, features, lengths):
    """Every (n, t, d) of the padded steps, time-major: pack's reads, unpack's writes."""
    return [(n, t, d) for t in range(max(lengths)) for n in range(batch)
            for d in range(features)]


@pytest.mark.parametrize("strides_as_signals", [False, True])
@pytest.mark.parametrize("order, expected_order, first_seed", [
    ("batch_major", batch_major_order, 53), ("time_major", time_major_order, 59)])
def test_layout_walks_visit_every_position_in_order(order, expected_order, first_seed,
                                                     strides_as_signals):
    seed = first_seed + strides_as_signals
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    if strides_as_signals:
        walks = random_layout_walks(rng, 10)
    else:
        walks = random_layout_walks(rng, 10, strides=(4, 25))
    print(f"walks {walks}")
    seen = visited_addresses(order, walks, strides_as_signals=strides_as_signals)
    for (batch, features, lengths, sequence_stride, step_stride), positions in zip(walks, seen):
        assert positions == [(n, t, d, n * sequence_stride + t * step_stride + d)
                             for n, t, d in expected_order(batch, features, lengths)]


@pytest.mark.parametrize("arguments, message", [
    ((0, 2, 2, 2), "width must be a positive integer"),
    ((8, 0, 2, 2), "max_batch must be a positive integer"),
    ((8, 2, 2, 2, 0), "capacity must be a positive number of words"),
])
@pytest.mark.parametrize("block", [SequencePack, SequenceUnpack])
def test_rejects_bad_parameters(block, arguments, message):
    with pytest.raises(ValueError, match=message):
        block(*arguments)
