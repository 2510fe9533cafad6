"""The backtest report: windows, per-model errors per window and on average."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bastion.timeseries import SeriesInputError
from servers.forecast.backtest import run_backtest
from servers.forecast.engine import ForecastRequest

Y = list(10 + np.sin(np.arange(80) * 2 * np.pi / 7) + np.random.default_rng(0).normal(scale=0.1, size=80))


def test_each_model_gets_errors_for_each_window_and_their_mean() -> None:
    stamps = [str(t.date()) for t in pd.date_range("2024-01-01", periods=80, freq="D")]
    report = run_backtest(ForecastRequest(Y, 7, stamps, windows=3), ["SeasonalNaive", "Naive"])
    assert [w["train_size"] for w in report["windows"]] == [59, 66, 73]
    assert report["windows"][0]["start"] == "2024-02-29"  # day 59 of a leap year
    for name in ("SeasonalNaive", "Naive"):
        assert len(report["models"][name]["windows"]) == 3
    assert report["models"]["SeasonalNaive"]["mean"]["smape"] < report["models"]["Naive"]["mean"]["smape"]


def test_without_models_the_auto_candidates_are_compared() -> None:
    report = run_backtest(ForecastRequest(Y, 7, season_length=7, windows=2))
    assert {"SeasonalNaive", "AutoTheta", "MSTL"} <= set(report["models"])


def test_intermittent_demand_is_also_reported_by_rmsse_in_each_window() -> None:
    y = np.where(np.random.default_rng(4).random(120) < 0.3, 5.0, 0.0)
    report = run_backtest(ForecastRequest(list(y), 7, windows=2), ["Naive", "CrostonSBA"])
    for errors in report["models"].values():
        assert all(w["rmsse"] is not None for w in errors["windows"]) and errors["mean"]["rmsse"] > 0
    assert "rmsse" not in run_backtest(ForecastRequest(Y, 7, windows=2), ["Naive"])["models"]["Naive"]["mean"]


def test_windows_that_do_not_fit_are_dropped_with_a_warning() -> None:
    report = run_backtest(ForecastRequest(Y[:40], 7, season_length=7, windows=5), ["Naive"])
    assert len(report["windows"]) == 3
    assert "only 3 of the 5 windows" in report["warnings"][-1]


@pytest.mark.parametrize(
    ("request_", "models", "message"),
    [
        (ForecastRequest(Y, 7, windows=0), None, "from 1 to 20"),
        (ForecastRequest(Y, 7, windows=21), None, "from 1 to 20"),
        (ForecastRequest(Y[:12], 10, season_length=7), ["Naive"], "too few for even one backtest window"),
        (ForecastRequest(Y, 7), ["auto"], "lists concrete models"),
    ],
)
def test_impossible_backtests_are_refused_clearly(
    request_: ForecastRequest, models: list[str] | None, message: str
) -> None:
    with pytest.raises(SeriesInputError, match=message):
        run_backtest(request_, models)
