"""Fixtures shared by the golden-model tests."""

import numpy as np
import pytest

from gatework.golden.gru import GRUDirectionWeights, GRUWeights


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
