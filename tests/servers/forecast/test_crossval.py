"""Rolling-origin cross-validation on the tail of a series."""

from __future__ import annotations

import numpy as np

from servers.forecast.crossval import cross_validate, plan_origins


def test_windows_are_consecutive_horizons_at_the_end() -> None:
    assert plan_origins(100, 10, 3, 20) == [70, 80, 90]


def test_windows_without_enough_training_data_are_left_out_earliest_first() -> None:
    assert plan_origins(40, 10, 3, 20) == [20, 30]
    assert plan_origins(25, 10, 3, 20) == []


def test_each_model_is_scored_per_window_against_the_actuals() -> None:
    y = np.tile(np.arange(6.0), 10) + 10
    cv = cross_validate(y, 6, ["SeasonalNaive", "Naive"], 2, 6, [6], 12)
    assert cv.origins == [48, 54]
    errors = dict(zip(cv.forecasts, [cv.window_errors(p) for p in cv.forecasts.values()], strict=True))
    # A perfect seasonal pattern: no error, and a MASE scale of zero (so no MASE).
    assert [s for s, _ in errors["SeasonalNaive"]] == [0.0, 0.0]
    assert all(np.isnan(m) for _, m in errors["SeasonalNaive"])
    assert all(s > 0 for s, _ in errors["Naive"])
    assert cv.residuals(cv.forecasts["Naive"]).shape == (2, 6)


def test_a_model_that_fails_in_a_window_is_dropped_with_its_reason() -> None:
    y = np.arange(60.0)
    cv = cross_validate(y, 5, ["SeasonalNaive(40)", "Naive"], 2, 1, [1], 8)
    assert "SeasonalNaive(40)" not in cv.forecasts
    assert "needs at least 80 points" in cv.failures["SeasonalNaive(40)"]
    assert "Naive" in cv.forecasts
