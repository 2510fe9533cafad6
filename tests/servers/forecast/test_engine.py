"""One forecast request end to end: results, interval coverage, and every kind of bad input."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bastion.timeseries import SeriesInputError
from servers.forecast.engine import ForecastRequest, run_forecast


def _local_level(n: int, rng: np.random.Generator) -> np.ndarray:
    # A random walk observed with noise: exactly what simple exponential smoothing assumes.
    return 100 + np.cumsum(rng.normal(scale=1.0, size=n)) + rng.normal(scale=2.0, size=n)


def _coverage(model: str, series: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    inside = {"80": [], "95": []}
    for _ in range(series):
        y = _local_level(212, rng)
        result = run_forecast(ForecastRequest(list(y[:200]), 12, season_length=1, model=model))
        actual = y[200:]
        for level, hits in inside.items():
            lower = np.array([p["lower"][level] for p in result["forecast"]])
            upper = np.array([p["upper"][level] for p in result["forecast"]])
            hits.extend(((actual >= lower) & (actual <= upper)).tolist())
    return {level: float(np.mean(hits)) for level, hits in inside.items()}


def test_nominal_95_percent_intervals_cover_90_to_99_percent_of_simulated_outcomes() -> None:
    coverage = _coverage("AutoETS", 80, seed=7)
    assert 0.90 <= coverage["95"] <= 0.99
    assert 0.72 <= coverage["80"] <= 0.88


def test_auto_intervals_also_cover_about_95_percent() -> None:
    coverage = _coverage("auto", 20, seed=11)
    assert 0.90 <= coverage["95"] <= 0.99


def test_auto_reports_the_winner_and_every_candidates_cv_scores() -> None:
    rng = np.random.default_rng(0)
    y = 20 + 5 * np.sin(np.arange(120) * 2 * np.pi / 12) + rng.normal(scale=0.5, size=120)
    result = run_forecast(ForecastRequest(list(y), 6, season_length=12))
    assert result["season_length"] == 12
    assert {"SeasonalNaive", "AutoTheta", "MSTL", "AutoETS"} <= set(result["cv"])
    assert result["model"] in result["cv"]
    assert all(set(v) == {"smape", "mase"} for v in result["cv"].values())
    assert [p["ds"] for p in result["forecast"]] == list(range(120, 126))
    first = result["forecast"][0]
    assert (
        first["lower"]["95"]
        <= first["lower"]["80"]
        <= first["mean"]
        <= first["upper"]["80"]
        <= first["upper"]["95"]
    )


def test_timestamps_make_ds_iso_timestamps_and_infer_the_frequency() -> None:
    stamps = [str(t.date()) for t in pd.date_range("2024-01-01", periods=60, freq="D")]
    result = run_forecast(
        ForecastRequest([float(i % 7) + i * 0.1 for i in range(60)], 3, stamps, model="AutoTheta")
    )
    assert result["freq"] == "D"
    assert result["season_length"] == 7
    assert [p["ds"] for p in result["forecast"]] == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert set(result["cv"]) == {"AutoTheta"}


def test_intermittent_demand_is_forecast_by_a_croston_style_model_never_below_zero() -> None:
    rng = np.random.default_rng(3)
    y = np.where(rng.random(150) < 0.3, rng.poisson(5, 150) + 1, 0).astype(float)
    result = run_forecast(ForecastRequest(list(y), 8))
    assert result["model"] != "" and all(p["lower"]["95"] >= 0 for p in result["forecast"])
    assert "CrostonSBA" in result["cv"] and result["cv"]["CrostonSBA"]["rmsse"] > 0


def test_a_series_never_below_zero_is_forecast_never_below_zero_unless_told_otherwise() -> None:
    # Daily counts with a weekly cycle near zero: a plain fit's intervals reach below 0.
    rng = np.random.default_rng(5)
    y = list(np.maximum(0, 3 + 3 * np.sin(np.arange(140) * 2 * np.pi / 7) + rng.normal(0, 1.5, 140)).round())

    def lowest(result: dict[str, object]) -> float:
        return min(min(p["mean"], *p["lower"].values()) for p in result["forecast"])  # type: ignore[attr-defined]

    def fit(values: list[float], non_negative: bool | None = None) -> dict[str, object]:
        request = ForecastRequest(
            values, 14, season_length=7, model="SeasonalNaive", non_negative=non_negative
        )
        return run_forecast(request)

    raw, floored = fit(y, non_negative=False), fit(y)
    assert lowest(raw) < 0 and raw["warnings"] == []
    assert lowest(floored) == 0
    (warning,) = floored["warnings"]  # type: ignore[misc]
    assert "never goes below 0" in warning and "non_negative=false" in warning
    for kept, low in zip(floored["forecast"], raw["forecast"], strict=True):  # type: ignore[call-overload]
        assert kept["upper"] == {lv: max(b, 0.0) for lv, b in low["upper"].items()}
    # A history that went below 0 is not floored unless asked, and asking warns of nothing.
    signed = [v - 2.5 for v in y]
    assert lowest(fit(signed)) < 0
    forced = fit(signed, non_negative=True)
    assert lowest(forced) == 0 and forced["warnings"] == []


def test_auto_forecasts_intermittent_demand_at_its_rate_not_at_zero() -> None:
    # Chosen by sMAPE and MASE, `auto` forecast no demand at all for 14 of these 24.
    rng = np.random.default_rng(21)
    ratios = []
    for _ in range(24):
        rate = rng.uniform(0.15, 0.5)
        y = np.where(rng.random(160) < rate, rng.poisson(6, 160) + 1, 0).astype(float)
        result = run_forecast(ForecastRequest(list(y), 14))
        ratios.append(np.mean([p["mean"] for p in result["forecast"]]) / (rate * 7))
    assert sum(r < 0.05 for r in ratios) <= 4
    assert 0.7 <= float(np.median(ratios)) <= 1.4


def _sparse_sales(days: int, seed: int) -> tuple[list[str], list[float]]:
    # What `SELECT day, sum(qty) ... GROUP BY day` returns: a row only for days with a sale.
    rng = np.random.default_rng(seed)
    calendar = pd.date_range("2024-01-01", periods=days, freq="D")
    sold = rng.random(days) < 0.25
    sold[0] = sold[-1] = True
    quantities = rng.poisson(4, days) + 1
    return [str(d.date()) for d in calendar[sold]], [float(q) for q in quantities[sold]]


def test_sparse_sales_rows_with_fill_zero_forecast_the_daily_rate_by_an_intermittent_model() -> None:
    stamps, values = _sparse_sales(200, seed=5)
    with pytest.raises(SeriesInputError, match="fill='zero'"):
        run_forecast(ForecastRequest(values, 7, stamps, freq="D"))
    result = run_forecast(ForecastRequest(values, 7, stamps, freq="D", fill="zero"))
    daily_rate = sum(values) / 200
    mean = result["forecast"][0]["mean"]
    # Interpolating would forecast about the size of one sale (5) every day.
    assert 0.5 * daily_rate <= mean <= 2 * daily_rate < 3
    assert "CrostonSBA" in result["cv"] and "Naive" in result["cv"]
    assert any("were filled with 0 (fill='zero')" in w for w in result["warnings"])
    assert result["forecast"][0]["ds"] == "2024-07-19"


def test_raw_orders_with_a_daily_freq_and_fill_zero_are_forecast_as_daily_totals() -> None:
    rng = np.random.default_rng(8)
    moments = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 120, 300)), unit="D")
    quantities = rng.integers(1, 4, 300).astype(float)
    result = run_forecast(
        ForecastRequest(
            list(quantities), 7, [t.isoformat() for t in moments], freq="D", fill="zero", model="Naive"
        )
    )
    days = pd.Series(quantities, index=moments).resample("D").sum()
    assert result["forecast"][0]["mean"] == days.iloc[-1]  # Naive repeats the last day's total
    assert result["forecast"][0]["ds"] == str((days.index[-1] + pd.Timedelta(days=1)).date())


def test_a_constant_series_gets_a_flat_forecast_and_a_warning() -> None:
    result = run_forecast(ForecastRequest([4.0] * 30, 3))
    assert result["model"] == "Naive"
    assert {p["mean"] for p in result["forecast"]} == {4.0}
    assert result["forecast"][0]["lower"]["95"] == result["forecast"][0]["upper"]["95"] == 4.0
    assert "constant" in result["warnings"][0]


def test_two_years_of_daily_rentals_forecast_in_readable_numbers_and_say_why_a_year_is_skipped(
    shared_data: Path,
) -> None:
    with (shared_data / "bike_sharing" / "day.csv").open() as f:
        rows = list(csv.DictReader(f))
    result = run_forecast(
        ForecastRequest([float(r["cnt"]) for r in rows], 7, timestamps=[r["dteday"] for r in rows])
    )
    numbers = [n for p in result["forecast"] for n in (p["mean"], *p["lower"].values(), *p["upper"].values())]
    assert all(n == round(n, 2) for n in numbers)  # not 2167.4145635088225
    assert any(n != round(n) for n in numbers)  # but not cut to whole numbers either
    # 731 days fit a yearly season, the comparison's earliest window (717 days) does not.
    reason = result["skipped"]["SeasonalNaive(365)"]
    assert "needs 730 points before each cross-validation window and the earliest has 717" in reason


@pytest.mark.parametrize("scale", [1e160, 1e300, 1e-160, 1e-300])
def test_extreme_magnitudes_forecast_as_their_rescaled_series_does(scale: float) -> None:
    # Squares of these overflow or vanish in a double; the models see the series near 1.
    base = [1 + 0.01 * i + 0.005 * math.sin(i) for i in range(40)]
    reference = run_forecast(ForecastRequest(base, 3))
    result = run_forecast(ForecastRequest([v * scale for v in base], 3))
    assert result["model"] == reference["model"]
    # Both are reported to a hundred-thousandth of their history's spread (about 0.4 here).
    for got, want in zip(result["forecast"], reference["forecast"], strict=True):
        assert got["mean"] / scale == pytest.approx(want["mean"], abs=1e-5)
        assert got["lower"]["95"] / scale == pytest.approx(want["lower"]["95"], abs=1e-5)
        assert got["upper"]["80"] / scale == pytest.approx(want["upper"]["80"], abs=1e-5)


def test_auto_leaves_out_a_model_that_fails_on_the_whole_history(monkeypatch: pytest.MonkeyPatch) -> None:
    # A model can do well on the windows and still fail on the whole history; the engine's
    # own fit is made to fail for whichever model `auto` picks first.
    from servers.forecast import engine
    from servers.forecast.fitting import ModelFailure

    y = [100 + 10 * math.sin(i / 3) + i for i in range(60)]
    first = run_forecast(ForecastRequest(y, 4, combinations=False))["model"]
    real_fit = engine.fit_forecast

    def failing(model: str, *args: object, **kwargs: object) -> object:
        if model == first:
            raise ModelFailure(model, "the optimiser did not converge")
        return real_fit(model, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "fit_forecast", failing)
    result = run_forecast(ForecastRequest(y, 4, combinations=False))
    assert result["model"] != first
    reason = "could not be fitted to the whole series (the optimiser did not converge)"
    assert result["skipped"][first] == reason
    assert first in result["cv"]  # its windows are still reported


def test_a_series_too_short_for_cross_validation_falls_back_and_says_so() -> None:
    result = run_forecast(ForecastRequest([1.0, 3.0, 2.0, 4.0, 3.0, 5.0, 4.0, 6.0, 5.0, 7.0], 5))
    assert result["model"] == "AutoTheta"
    assert any("too short for cross-validation" in w for w in result["warnings"])


def test_nulls_and_unsorted_or_repeated_timestamps_are_repaired_with_warnings() -> None:
    stamps = [str(t) for t in pd.date_range("2024-01-01", periods=40, freq="h")]
    stamps[5], stamps[6] = stamps[6], stamps[5]
    stamps[20] = stamps[19]
    values: list[object] = [float(i) for i in range(40)]
    values[10] = None
    result = run_forecast(ForecastRequest(values, 2, stamps, model="Naive"))
    text = " ".join(result["warnings"])
    assert "not in order" in text and "repeated timestamps" in text and "null" in text
    assert result["forecast"][0]["ds"] == "2024-01-02T16:00:00"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ForecastRequest([1.0, 2.0, 3.0], 1), "at least 8 are needed"),
        (ForecastRequest([1.0] * 20 + [math.inf], 1), "infinite values cannot be modelled"),
        (ForecastRequest([1.0] * 20 + ["n/a"], 1), r"`values\[20\]` is 'n/a' \(str\), not a number"),
        (ForecastRequest(list(range(20)), 21), "longer than the 20-point history"),
        (ForecastRequest([0.0] * 100_001, 1), "above the limit of 100000"),
        (ForecastRequest(list(range(20)), 2, model="prophet"), "unknown `model` 'prophet'"),
        (ForecastRequest(list(range(20)), 2, model="MSTL", season_length=1), "MSTL models seasonality"),
        (ForecastRequest(list(range(20)), 2, levels=[150]), "`levels` entry 150"),
        (ForecastRequest(list(range(20)), 2, windows=0), "`windows` must be a positive integer"),
        (ForecastRequest(list(range(20)), 2, freq="every-so-often"), "not a pandas frequency alias"),
        (
            ForecastRequest(list(range(20)), 2, fill="ffill"),
            "`fill` 'ffill' is not one of: interpolate, zero",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_that_says_what_to_do(
    request_: ForecastRequest, message: str
) -> None:
    with pytest.raises(SeriesInputError, match=message):
        run_forecast(request_)
