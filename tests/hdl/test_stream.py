"""StreamRegister: every word through, in order, at one per cycle, under random stalls."""

import random

import pytest
from amaranth.hdl import unsigned

from gatework.hdl.stream import StreamRegister
from gatework.sim.streams import run


@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_passes_every_word_in_order(stall, seed):
    rng = random.Random(seed)
    words = [rng.randrange(256) for _ in range(300)]
    dut = StreamRegister(unsigned(8))
    (received,), cycles = run(dut, inputs=[(dut.i, words)], outputs=[(dut.o, len(words))],
                              seed=seed, stall=stall)
    assert received == words
    if stall == 0.0:
        # One word per cycle after one cycle of latency.
        assert cycles <= len(words) + 2
