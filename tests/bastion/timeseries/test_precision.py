"""The precision of values computed from a series."""

from __future__ import annotations

import numpy as np
import pytest

from bastion.timeseries import output_decimals


@pytest.mark.parametrize(
    ("history", "decimals"),
    [
        ([1_000, 9_000], 2),  # spread 8,000: to 0.08, two places
        ([1_000_000, 1_000_000.02], 7),  # a high level that barely moves keeps its movement
        ([5, 5], 5),  # flat: to its magnitude
        ([0, 1e9], 0),  # never fewer than whole numbers
        ([0, 0], 0),
        ([float("nan"), 1_000, 9_000], 2),  # missing values do not count
    ],
)
def test_output_decimals_resolve_a_hundred_thousandth_of_the_history_spread(
    history: list[float], decimals: int
) -> None:
    assert output_decimals(np.array(history, dtype=np.float64)) == decimals
