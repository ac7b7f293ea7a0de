"""Stream producers and consumers for cocotb benches on generated Verilog.

A stream member ``i`` of an Amaranth component appears in its Verilog as ``i__valid``,
``i__ready`` and ``i__payload``; payload bits are packed and unpacked by
:mod:`.verilog`'s :func:`pack_payload` / :func:`unpack_payload`, the one place that knows
layouts.

Timing: inputs change on the falling clock edge; after the delta cycles settle
(``ReadOnly``) both sides see the same valid and ready, so a transfer is decided there and
happens at the next rising edge — no race with the design's registers.
"""

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Combine, FallingEdge, ReadOnly, RisingEdge

from .verilog import pack_payload, payload_shape, unpack_payload


__all__ = ["start_clock", "reset", "put", "get", "transfer"]


def start_clock(dut, period_ns=10):
    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns").start())


async def reset(dut, cycles=2):
    """Hold reset for ``cycles`` rising edges; returns on a falling edge with reset released.

    Start the stream producers and consumers right after it, so that no rising edge sees
    their handshake inputs undriven.
    """
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def _port(dut, stream, name):
    return getattr(dut, f"{stream}__{name}")


async def put(dut, stream, shape, payloads, *, seed=0, stall=0.0):
    """Send ``payloads`` (ints or dicts) on the input stream named ``stream``."""
    rng = random.Random(seed)
    valid, ready, payload = (_port(dut, stream, n) for n in ("valid", "ready", "payload"))
    pending = list(payloads)
    valid.value = 0   # an undriven input would read as Z and spread X through the design
    while pending:
        await FallingEdge(dut.clk)
        offered = not (stall and rng.random() < stall)
        valid.value = int(offered)
        if offered:
            payload.value = pack_payload(shape, pending[0])
        await ReadOnly()
        if offered and int(ready.value):
            pending.pop(0)
    await FallingEdge(dut.clk)
    valid.value = 0


async def get(dut, stream, shape, count, *, seed=1, stall=0.0, timeout=100_000):
    """Receive ``count`` payloads from the output stream named ``stream``.

    Returns ``(payloads, cycles)``.
    """
    rng = random.Random(seed)
    valid, ready, payload = (_port(dut, stream, n) for n in ("valid", "ready", "payload"))
    received = []
    cycles = 0
    ready.value = 0
    while len(received) < count:
        await FallingEdge(dut.clk)
        accepting = not (stall and rng.random() < stall)
        ready.value = int(accepting)
        await ReadOnly()
        cycles += 1
        if accepting and int(valid.value):
            received.append(unpack_payload(shape, payload.value.to_unsigned()))
        if cycles > timeout:
            raise AssertionError(f"{len(received)} of {count} payloads arrived within "
                                 f"{timeout} cycles")
    await FallingEdge(dut.clk)
    ready.value = 0
    return received, cycles


async def transfer(dut, model, inputs, output, count, *, seed=0, stall=0.0):
    """Start the clock, reset, feed every input stream at once and collect ``count`` outputs.

    Parameters
    ----------
    model : wiring.Component
        The component the Verilog was made from: it names the payload layouts.
    inputs : dict
        Payloads by input stream name.
    output : str
        The output stream to collect from.

    Returns the payloads received.
    """
    start_clock(dut)
    await reset(dut)
    producers = [cocotb.start_soon(put(dut, name, payload_shape(model, name), payloads,
                                       seed=seed + index, stall=stall))
                 for index, (name, payloads) in enumerate(inputs.items())]
    received, _ = await get(dut, output, payload_shape(model, output), count,
                            seed=seed + 1000, stall=stall)
    await Combine(*producers)
    return received
