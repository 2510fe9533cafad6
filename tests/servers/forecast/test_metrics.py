"""sMAPE, MASE and OWA as the M4 competition defines them, RMSSE as M5 does."""

from __future__ import annotations

import math

import numpy as np

from servers.forecast.metrics import mase, mase_scale, owa, rmsse, smape


def test_smape_is_200_times_the_mean_relative_absolute_error() -> None:
    # Errors 200 * 10 / 210 and 0, averaged.
    assert math.isclose(smape(np.array([100.0, 200.0]), np.array([110.0, 200.0])), 200 * 10 / 210 / 2)


def test_smape_of_two_zeros_counts_as_no_error() -> None:
    assert smape(np.array([0.0]), np.array([0.0])) == 0.0


def test_mase_scales_by_the_in_sample_seasonal_naive_error() -> None:
    history = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0])
    assert math.isclose(mase_scale(history, 3), 1 / 6 * 3)
    assert math.isclose(mase(np.array([5.0]), np.array([4.0]), history, 3), 1 / 0.5)


def test_a_flat_history_has_no_mase_scale() -> None:
    assert math.isnan(mase_scale(np.ones(10), 1))


def test_owa_of_the_benchmark_itself_is_one() -> None:
    assert owa(13.5, 2.1, 13.5, 2.1) == 1.0


def test_rmsse_scales_the_root_mean_squared_error_by_the_one_step_changes() -> None:
    history = np.array([0.0, 2.0, 0.0, 0.0, 2.0])  # squared one-step changes 4, 4, 0, 4: mean 3
    assert math.isclose(rmsse(np.array([0.0, 3.0]), np.array([1.0, 1.0]), history), math.sqrt(2.5 / 3))
    assert math.isnan(rmsse(np.array([1.0]), np.array([1.0]), np.zeros(5)))
