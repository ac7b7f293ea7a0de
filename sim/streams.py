"""Drive and collect ``amaranth.lib.stream`` interfaces in the Amaranth simulator.

:func:`put` and :func:`get` move a sequence of payloads through one stream, one transfer per
cycle at best, with optional random stalls (valid low on the producer side, ready low on the
consumer side) drawn from a seeded generator. :func:`run` wires producers and consumers to a
component, runs it, and returns what came out and how many cycles it took.

Set ``GATEWORK_VCD`` to a folder to get a VCD waveform of every simulation run through
:func:`run` (one file per run, named after the test).
"""

import enum
import os
import pathlib
import random
import re

from amaranth.lib import data
from amaranth.sim import Simulator


__all__ = ["put", "get", "run", "run_simulation", "to_python", "SimulationTimeout"]


class SimulationTimeout(AssertionError):
    """The component did not produce what was expected within the cycle limit."""


def to_python(value):
    """Turn a value read from a simulation (int or ``data.Const``) into ints and dicts;
    enumeration fields stay members of their enumeration."""
    if isinstance(value, data.Const):
        layout = data.Layout.cast(value.shape())
        if isinstance(layout, data.ArrayLayout):
            return [to_python(value[index]) for index in range(layout.length)]
        return {name: to_python(value[name]) for name, _ in layout}
    if isinstance(value, enum.Enum):
        return value
    return int(value)


def _stalled(rng, probability):
    return probability > 0 and rng.random() < probability


async def put(ctx, stream, payloads, *, rng=None, stall=0.0):
    """Send ``payloads`` on ``stream`` in order; ``stall`` is the chance of an idle cycle."""
    rng = rng or random.Random(0)
    for payload in payloads:
        while _stalled(rng, stall):
            ctx.set(stream.valid, 0)
            await ctx.tick()
        ctx.set(stream.valid, 1)
        ctx.set(stream.payload, payload)
        await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def get(ctx, stream, count, *, rng=None, stall=0.0, timeout=100_000):
    """Receive ``count`` payloads from ``stream``; ``stall`` is the chance of a not-ready cycle.

    Returns ``(payloads, cycles)``: the payloads as ints or dicts, and the number of clock
    cycles from the call to the last transfer.
    """
    rng = rng or random.Random(1)
    received = []
    cycles = 0
    while len(received) < count:
        ready = not _stalled(rng, stall)
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        cycles += 1
        if valid and ready:
            received.append(to_python(payload))
        if cycles > timeout:
            raise SimulationTimeout(f"{len(received)} of {count} payloads arrived within "
                                    f"{timeout} cycles")
    ctx.set(stream.ready, 0)
    return received, cycles


def _vcd_path(name):
    folder = os.environ.get("GATEWORK_VCD")
    if not folder:
        return None
    # Under pytest, name the file after the test that ran the simulation.
    test = os.environ.get("PYTEST_CURRENT_TEST")
    if test:
        name = f"{test.split(' ')[0].split('::')[-1]}-{name}"
    path = pathlib.Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path / (re.sub(r"[^\w.-]+", "_", name) + ".vcd")


def run(dut, *, inputs=(), outputs=(), seed=0, stall=0.0, timeout=100_000, name="run",
        setup=None):
    """Simulate ``dut`` with producers on ``inputs`` and consumers on ``outputs``.

    Parameters
    ----------
    dut : wiring.Component
    inputs : iterable of (stream, payloads)
        Each stream gets a producer that sends its payloads in order.
    outputs : iterable of (stream, count)
        Each stream gets a consumer that takes ``count`` payloads.
    seed : int
        Seeds the stall generators (each stream its own, derived from this).
    stall : float
        Chance, per cycle, that a producer holds valid low or a consumer holds ready low.
    setup : callable, optional
        ``setup(ctx)``, called before the streams start, to set static inputs.

    Returns
    -------
    results : list of list
        What each output stream received, in the order of ``outputs``.
    cycles : int
        Clock cycles until the last output transfer.
    """
    inputs, outputs = list(inputs), list(outputs)
    results = [None] * len(outputs)
    cycle_counts = [0] * len(outputs)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    for index, (stream, payloads) in enumerate(inputs):
        async def producer(ctx, stream=stream, payloads=list(payloads), index=index):
            if setup is not None:
                setup(ctx)
            await put(ctx, stream, payloads, rng=random.Random(seed * 1000 + index),
                      stall=stall)
        sim.add_testbench(producer, background=True)

    for index, (stream, count) in enumerate(outputs):
        async def consumer(ctx, stream=stream, count=count, index=index):
            if setup is not None:
                setup(ctx)
            results[index], cycle_counts[index] = await get(
                ctx, stream, count, rng=random.Random(seed * 1000 + 500 + index), stall=stall,
                timeout=timeout)
        sim.add_testbench(consumer)

    run_simulation(sim, name)
    return results, max(cycle_counts, default=0)


def run_simulation(sim, name):
    """Run ``sim`` to its end, writing a VCD named after ``name`` when ``GATEWORK_VCD`` asks."""
    path = _vcd_path(name)
    if path is None:
        sim.run()
    else:
        with sim.write_vcd(str(path)):
            sim.run()
