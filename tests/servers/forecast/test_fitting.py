"""Every model path fits, forecasts the horizon and (where native) gives ordered intervals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest

from servers.forecast.fitting import ModelFailure, fit_forecast
from servers.forecast.models import MODELS


def _seasonal(n: int = 96, m: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return 50 + 10 * np.sin(np.arange(n) * 2 * np.pi / m) + np.arange(n) * 0.2 + rng.normal(size=n)


def _intermittent(n: int = 120) -> np.ndarray:
    rng = np.random.default_rng(1)
    return np.where(rng.random(n) < 0.35, rng.poisson(4, n) + 1, 0).astype(float)


@pytest.mark.parametrize("model", [m for m, info in MODELS.items() if info.kind != "intermittent"])
def test_each_continuous_model_forecasts_with_nested_intervals(model: str) -> None:
    # A short season keeps AutoARIMA and AutoETS quick.
    fit = fit_forecast(model, _seasonal(60, 4), 6, 4, [4], [80, 95])
    assert fit.mean.shape == (6,)
    assert np.all(np.isfinite(fit.mean))
    assert np.all(fit.lower[95] <= fit.lower[80]) and np.all(fit.lower[80] <= fit.mean)
    assert np.all(fit.mean <= fit.upper[80]) and np.all(fit.upper[80] <= fit.upper[95])


@pytest.mark.parametrize("model", [m for m, info in MODELS.items() if info.kind == "intermittent"])
def test_each_intermittent_model_forecasts_without_native_intervals(model: str) -> None:
    fit = fit_forecast(model, _intermittent(), 5, 1, [1], [80, 95])
    assert fit.mean.shape == (5,)
    assert np.all(fit.mean >= 0)
    assert fit.lower == {} and fit.upper == {}


def test_an_explicit_season_is_used_by_seasonal_naive() -> None:
    y = np.tile(np.arange(7.0), 8)
    fit = fit_forecast("SeasonalNaive(7)", y, 7, 1, [1], [])
    assert fit.mean.tolist() == list(np.arange(7.0))


def test_an_explicit_season_longer_than_half_the_history_fails_cleanly() -> None:
    with pytest.raises(ModelFailure, match="needs at least 336 points"):
        fit_forecast("SeasonalNaive(168)", np.arange(100.0), 3, 1, [1], [])


class _Broken:
    """A model that fails the way statsforecast models do on series they cannot fit."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome

    def forecast(self, y: np.ndarray, h: int, level: list[int] | None = None) -> dict[str, np.ndarray]:
        if self.outcome == "raise":
            raise ValueError("No suitable ARIMA model found")
        return {"mean": np.full(h, np.nan)}


@pytest.fixture
def broken_arima(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def install(outcome: str) -> None:
        monkeypatch.setitem(
            MODELS, "AutoARIMA", replace(MODELS["AutoARIMA"], build=lambda _m, _s: _Broken(outcome))
        )

    return install


def test_a_model_that_raises_becomes_a_model_failure_not_a_crash(broken_arima: Callable[[str], None]) -> None:
    broken_arima("raise")
    with pytest.raises(ModelFailure) as info:
        fit_forecast("AutoARIMA", _seasonal(), 3, 12, [12], [80])
    assert info.value.model == "AutoARIMA"
    assert info.value.reason == "No suitable ARIMA model found"


def test_a_model_that_returns_nan_becomes_a_model_failure(broken_arima: Callable[[str], None]) -> None:
    broken_arima("nan")
    with pytest.raises(ModelFailure, match="non-finite forecasts"):
        fit_forecast("AutoARIMA", _seasonal(), 3, 12, [12], [])
