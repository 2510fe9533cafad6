"""Which models `auto` compares, by the series' shape and cost."""

from __future__ import annotations

import numpy as np

from servers.forecast.candidates import auto_candidates, is_intermittent


def test_intermittent_demand_gets_the_croston_family() -> None:
    y = np.array([0, 0, 3, 0, 0, 0, 2, 0, 1, 0] * 5, dtype=float)
    assert is_intermittent(y)
    assert auto_candidates(y, 1, [1], 2).models == [
        "Naive",
        "CrostonOptimized",
        "CrostonSBA",
        "TSB",
        "ADIDA",
        "IMAPA",
    ]


def test_long_seasons_compare_cheap_models_and_the_longer_seasonal_naive() -> None:
    y = np.random.default_rng(0).normal(size=800) + 10
    chosen = auto_candidates(y, 24, [24, 168], 2)
    assert chosen.models == ["SeasonalNaive", "AutoTheta", "AutoCES", "MSTL", "SeasonalNaive(168)"]
    assert "too costly at 24" in chosen.skipped["AutoETS"]


def test_a_longer_season_the_earliest_window_cannot_fit_is_skipped_with_the_points_it_needs() -> None:
    # Two years of days: the whole history fits a yearly season (731 >= 730), but the
    # cross-validation window that trains on the first 717 does not.
    y = np.random.default_rng(0).normal(size=731) + 10
    assert "SeasonalNaive(365)" in auto_candidates(y, 7, [7, 365], 2).models
    chosen = auto_candidates(y, 7, [7, 365], 2, shortest=717)
    assert "SeasonalNaive(365)" not in chosen.models
    reason = chosen.skipped["SeasonalNaive(365)"]
    assert "needs 730 points before each cross-validation window" in reason and "has 717" in reason


def test_short_seasons_add_ets_and_arima() -> None:
    y = np.random.default_rng(0).normal(size=120) + 10
    assert auto_candidates(y, 12, [12], 2).models[-2:] == ["AutoETS", "AutoARIMA"]


def test_non_seasonal_series_skip_arima_when_long() -> None:
    y = np.random.default_rng(0).normal(size=3000) + 10
    chosen = auto_candidates(y, 1, [1], 2)
    assert chosen.models == ["Naive", "AutoTheta", "AutoCES", "AutoETS"]
    assert "up to 2000 points" in chosen.skipped["AutoARIMA"]


def test_the_budget_leaves_out_costly_models_on_huge_series() -> None:
    y = np.random.default_rng(0).normal(size=5000) + 10
    chosen = auto_candidates(y, 1, [1], 20)
    assert "AutoETS" in chosen.skipped and "budget" in chosen.skipped["AutoETS"]
    assert "Naive" in chosen.models
