"""Fixtures shared by every test suite."""

import zlib

import numpy as np
import pytest


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
