"""Drive the GRU engine in the Amaranth simulator: whole models, by time-multiplexing.

:func:`simulate_gru` runs a :class:`~gatework.golden.gru.QuantizedGRUWeights` model on one
:class:`~gatework.hdl.gru.GRUEngine`: it loads every layer and direction into its own weight
bank, then runs them one after another — each run's outputs (both directions concatenated)
are the next layer's inputs, a reverse direction gets its steps last first — exactly what
the accelerator's sequencer does. It returns the outputs and final states as integer codes,
in :func:`~gatework.golden.gru.gru_fixed`'s shapes, and the cycles each run took.
"""

from dataclasses import dataclass, field
import random

import numpy as np
from amaranth.sim import Simulator

from ..golden.gru import check_lengths
from ..hdl.gru import GRUEngine, LoadRegion, engine_load_words
from .streams import SimulationTimeout, get, put, run_simulation


__all__ = ["simulate_gru", "EngineRun"]


@dataclass
class EngineRun:
    """One run of the engine: a layer in one direction."""

    layer: int
    direction: int
    cycles: int = 0
    #: Cycle (from the run's command) at which each step's last output word left.
    step_ends: list = field(default_factory=list)
    status: dict = None


def simulate_gru(config, qweights, x, h0=None, lengths=None, *, seed=0, stall=0.0,
                 timeout=2_000_000, name="gru", lut_multipliers=False, stale_weights=False):
    """Run a fixed-point GRU on the gateware engine.

    Parameters
    ----------
    config : BuildConfig
    qweights : QuantizedGRUWeights
        In ``config.formats``.
    x : numpy.ndarray
        ``(T, N, D)`` data codes.
    h0 : numpy.ndarray, optional
        ``(layers * directions, N, H)`` data codes; zeros when omitted.
    lengths : array_like, optional
    seed, stall : stall generators of the streams, see :mod:`.streams`.
    lut_multipliers : bool
        Passed to :class:`~gatework.hdl.gru.GRUEngine`.
    stale_weights : bool
        First fill every word of every lane's weight bank with a random nonzero code, as a
        model of other sizes would have left them: the words the layout skips (a row's
        padding to the lane width, rows beyond ``H``) then hold stale values, and a design
        that multiplied them would fail.

    Returns
    -------
    output : numpy.ndarray ``(T, N, directions * H)``
    h_n : numpy.ndarray ``(layers * directions, N, H)``
    runs : list of EngineRun
    """
    weights = qweights.weights
    if qweights.formats != config.formats:
        raise ValueError("the weights were quantised to other formats than the build's")
    x = np.asarray(x, dtype=np.int64)
    steps, batch, _ = x.shape
    lengths = check_lengths(lengths, steps, batch)
    hidden = weights.hidden_size
    engine = GRUEngine(config, lut_multipliers=lut_multipliers)

    load_words = []
    if stale_weights:
        depth = config.weight_sets * config.weight_set_words
        weight = config.formats.weight
        codes = np.random.default_rng(seed + 2).integers(weight.min_int, weight.max_int,
                                                         (config.lanes, depth))
        codes[codes >= 0] += 1            # nonzero, within the format
        load_words += [{"region": LoadRegion.WEIGHT, "lane": lane, "address": address,
                        "data": int(codes[lane, address])}
                       for lane in range(config.lanes) for address in range(depth)]
    runs = []
    for k, layer in enumerate(weights.layers):
        for d, cell in enumerate(layer):
            load_words += engine_load_words(config, cell, config.weight_set(k, d))
            runs.append(EngineRun(k, d))

    # What the producer and the consumer share: each run's inputs and outputs.
    layer_inputs = {0: x}
    collected = {}
    h_n = np.zeros((len(runs), batch, hidden), dtype=np.int64)

    def run_inputs(index):
        run = runs[index]
        if run.layer not in layer_inputs:
            previous = [collected[i] for i, r in enumerate(runs) if r.layer == run.layer - 1]
            layer_inputs[run.layer] = np.concatenate(previous, axis=-1)
        inputs = layer_inputs[run.layer]
        reverse = weights.direction_reversed(run.direction)
        return inputs[::-1] if reverse else inputs, reverse

    async def producer(ctx):
        rng = random.Random(seed)
        await put(ctx, engine.load, load_words, rng=rng, stall=stall)
        for index, run in enumerate(runs):
            while index > 0 and (index - 1) not in collected:
                await ctx.tick()
            inputs, reverse = run_inputs(index)
            if h0 is not None:
                await put(ctx, engine.load, [
                    {"region": LoadRegion.STATE, "lane": 0,
                     "address": b * config.max_hidden_size + j, "data": int(h0[index, b, j])}
                    for b in range(batch) for j in range(hidden)], rng=rng, stall=stall)
            command = {"input_size": inputs.shape[2], "hidden_size": hidden, "batch": batch,
                       "steps": steps, "weight_set": config.weight_set(run.layer, run.direction),
                       "linear_before_reset": int(weights.linear_before_reset),
                       "reverse": int(reverse), "initial_state": int(h0 is not None),
                       "emit_steps": 1}
            await put(ctx, engine.command, [command], rng=rng, stall=stall)
            await put(ctx, engine.lengths, lengths.tolist(), rng=rng, stall=stall)
            await put(ctx, engine.x, inputs.reshape(-1).tolist(), rng=rng, stall=stall)

    async def consumer(ctx):
        rng = random.Random(seed + 1)
        for index, run in enumerate(runs):
            words, times = [], []
            cycles = 0
            while True:
                ready = not (stall and rng.random() < stall)
                ctx.set(engine.o.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(engine.o.valid,
                                                                engine.o.payload)
                cycles += 1
                if valid and ready:
                    words.append(int(payload.data))
                    times.append(cycles)
                    if payload.last:
                        break
                if cycles > timeout:
                    raise SimulationTimeout(f"run {index}: {len(words)} words within "
                                            f"{timeout} cycles")
            ctx.set(engine.o.ready, 0)
            (status,), _ = await get(ctx, engine.status, 1, timeout=timeout)
            run.status = status
            run.cycles = cycles
            expected = steps * batch * hidden + batch * hidden
            if len(words) != expected or status["error"]:
                raise AssertionError(f"run {index}: {len(words)} words (expected {expected}), "
                                     f"status {status}")
            per_step = np.array(words[:steps * batch * hidden]).reshape(steps, batch, hidden)
            step_times = np.array(times[:steps * batch * hidden]).reshape(steps, -1)
            run.step_ends = step_times[:, -1].tolist()
            _, reverse = run_inputs(index)
            collected[index] = per_step[::-1] if reverse else per_step
            h_n[index] = np.array(words[steps * batch * hidden:]).reshape(batch, hidden)

    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_testbench(producer, background=True)
    sim.add_testbench(consumer)
    run_simulation(sim, name)

    last_layer = [collected[i] for i, r in enumerate(runs) if r.layer == weights.num_layers - 1]
    return np.concatenate(last_layer, axis=-1), h_n, runs
