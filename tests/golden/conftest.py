"""Fixtures shared by the golden-model tests."""

import zlib

import numpy as np
import pytest

from gatework.golden.gru import GRUDirectionWeights, GRUWeights


@pytest.fixture
def seed(request):
    """A fixed seed for this test and parameter set, printed so that a failure shows it."""
    # CRC-32 of the test's name (parameters included): stable across runs and orderings, and
    # different for each parametrised case.
    value = zlib.crc32(request.node.name.encode())
    print(f"seed = {value}")
    return value


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


@pytest.fixture
def random_gru_weights(rng):
    """Factory of random one-layer float64 GRU weights, scaled like PyTorch's initialisation."""
    def make(input_size, hidden_size, *, direction="forward", linear_before_reset=True,
             bias=True):
        scale = 1 / np.sqrt(hidden_size)

        def uniform(*shape):
            return rng.uniform(-scale, scale, size=shape)

        def cell():
            biases = (uniform(3 * hidden_size), uniform(3 * hidden_size)) if bias else ()
            return GRUDirectionWeights(uniform(3 * hidden_size, input_size),
                                       uniform(3 * hidden_size, hidden_size), *biases)
        directions = 2 if direction == "bidirectional" else 1
        return GRUWeights((tuple(cell() for _ in range(directions)),),
                          linear_before_reset, direction)
    return make
