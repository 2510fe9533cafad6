"""One forecast request, end to end, as plain synchronous code (run off the event loop).

prepare the series -> check the horizon -> candidates -> rolling-origin CV -> choose
-> fit the chosen model(s) on the whole history with intervals -> labelled result.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.timeseries import (
    PreparedSeries,
    SeriesInputError,
    SeriesLimits,
    check_horizon,
    output_decimals,
    prepare_series,
    unit_scale,
)
from bastion.timeseries.validation import is_positive_int
from servers.forecast.candidates import auto_candidates, is_intermittent
from servers.forecast.crossval import CrossValidation, cross_validate, plan_origins
from servers.forecast.fitting import ModelFailure, ModelForecast, fit_forecast
from servers.forecast.intervals import conformal_bounds, validate_levels, widen_to_conformal
from servers.forecast.models import parse_model, resolve_model
from servers.forecast.selection import Choice, choose, combine, cv_report

__all__ = ["DEFAULT_WINDOWS", "MAX_FIT_POINTS", "ForecastRequest", "run_forecast", "well_scaled"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
DEFAULT_WINDOWS = 2
# Models see at most this many recent points: older history adds cost, not accuracy.
MAX_FIT_POINTS = 5_000
# Beyond these magnitudes the models' squares overflow or underflow a double (1e160 squared
# is infinite, 1e-300 squared is zero): such series are fitted rescaled.
_SAFE_MAGNITUDES = (1e-100, 1e100)


@dataclass
class ForecastRequest:
    values: Sequence[object]
    horizon: int
    timestamps: Sequence[object] | None = None
    freq: str | None = None
    season_length: int | None = None
    model: str = "auto"
    levels: list[int] | None = None
    windows: int = DEFAULT_WINDOWS
    combinations: bool = True
    fill: str = "interpolate"
    # Floor the forecast at 0: None decides from the history (never below 0: floored).
    non_negative: bool | None = None


@dataclass
class Outcome:
    """The forecast with everything needed to report it."""

    series: PreparedSeries
    model: str
    forecast: ModelForecast
    levels: list[int]
    cv: CrossValidation | None
    choice: Choice | None
    skipped: dict[str, str] = field(default_factory=dict[str, str])


def prepare(request: ForecastRequest) -> tuple[PreparedSeries, FloatArray, list[int]]:
    series = prepare_series(
        request.values, request.timestamps, request.freq, request.season_length, fill=request.fill
    )
    check_horizon(request.horizon, series.values.size, SeriesLimits())
    levels = validate_levels(request.levels)
    y = series.values
    if y.size > MAX_FIT_POINTS:
        series.warnings.append(f"models were fitted on the last {MAX_FIT_POINTS} of {y.size} points.")
        y = y[-MAX_FIT_POINTS:]
    return series, y, levels


def well_scaled(y: FloatArray) -> tuple[FloatArray, float]:
    """`y` divided by a power of two that brings it near 1 when its magnitude is extreme, and
    that factor (1 otherwise). A power of two divides and multiplies back exactly, and sMAPE
    and MASE do not depend on scale."""
    largest = float(np.max(np.abs(y))) if y.size else 0.0
    if largest == 0.0 or _SAFE_MAGNITUDES[0] <= largest <= _SAFE_MAGNITUDES[1]:
        return y, 1.0
    scale = unit_scale(y)
    return y / scale, scale


def _rescaled(fit: ModelForecast, scale: float) -> ModelForecast:
    if scale == 1.0:
        return fit
    return ModelForecast(
        fit.mean * scale,
        {lv: b * scale for lv, b in fit.lower.items()},
        {lv: b * scale for lv, b in fit.upper.items()},
    )


def min_train(series: PreparedSeries) -> int:
    return max(8, 2 * series.season_length + 1)


def shortest_fit(series: PreparedSeries, y: FloatArray, horizon: int, windows: int) -> int:
    """The fewest points any fit of a comparison sees: the earliest cross-validation window's
    training part, or the whole history when no window fits."""
    origins = plan_origins(y.size, horizon, windows, min_train(series))
    return origins[0] if origins else y.size


def forecast_outcome(request: ForecastRequest) -> Outcome:
    model = resolve_model(request.model)
    if not is_positive_int(request.windows):
        raise SeriesInputError(f"`windows` must be a positive integer, got {request.windows!r}.")
    series, y, levels = prepare(request)
    y, scale = well_scaled(y)
    h = request.horizon
    if series.constant:
        flat = np.full(h, y[-1] * scale)
        bounds = {lv: flat for lv in levels}
        return Outcome(series, "Naive", ModelForecast(flat, bounds, dict(bounds)), levels, None, None)
    if model == "auto":
        shortest = shortest_fit(series, y, h, request.windows)
        candidates = auto_candidates(y, series.season_length, series.seasons, request.windows, shortest)
        names, skipped = candidates.models, candidates.skipped
    else:
        info, explicit = parse_model(model)
        info.make(explicit or series.season_length, series.seasons)  # fails early on a missing season
        names, skipped = [model], {}
    cv = cross_validate(y, h, names, request.windows, series.season_length, series.seasons, min_train(series))
    skipped.update(cv.failures)
    if model != "auto":
        choice = Choice(model, [model], "single")
        try:
            fitted = _fit_members(choice, y, h, series, levels, cv)
        except ModelFailure as failure:
            raise SeriesInputError(
                f"{failure.model} could not be fitted to this series ({failure.reason}). Choose "
                "another model, or model='auto' to compare several."
            ) from None
        fitted = _floored(_rescaled(fitted, scale), series, request.non_negative)
        return Outcome(series, choice.name, fitted, levels, cv if cv.origins else None, choice, skipped)
    # A model that did well on the windows can still fail on the whole history (numbers its
    # optimiser cannot handle): leave it out and choose again from the rest.
    ranked = replace(cv, forecasts=dict(cv.forecasts))
    failed: list[str] = []
    for _ in range(len(names) + 2):
        choice = _choose(ranked, y, request.combinations, series)
        try:
            fitted = _fit_members(choice, y, h, series, levels, ranked)
        except ModelFailure as failure:
            skipped[failure.model] = f"could not be fitted to the whole series ({failure.reason})"
            failed.append(failure.model)
            if failure.model not in ranked.forecasts:
                break  # the fallback itself failed: nothing is left to try
            del ranked.forecasts[failure.model]
            continue
        fitted = _floored(_rescaled(fitted, scale), series, request.non_negative)
        return Outcome(series, choice.name, fitted, levels, cv if cv.origins else None, choice, skipped)
    raise SeriesInputError(
        f"no model could be fitted to this series ({'; '.join(f'{m}: {skipped[m]}' for m in failed)}). "
        "Check the values for extreme magnitudes (rescale them, e.g. to thousands) or outliers."
    )


def _choose(cv: CrossValidation, y: FloatArray, combinations: bool, series: PreparedSeries) -> Choice:
    if cv.origins and cv.forecasts:
        return choose(cv, allow_combinations=combinations, intermittent=is_intermittent(y))
    # No window, or no candidate survived one: fall back on a robust default, and say so.
    fallback = "CrostonSBA" if is_intermittent(y) else "AutoTheta"
    if cv.origins:
        reason = "every candidate failed in cross-validation (see `skipped`)"
    else:
        reason = (
            "the series is too short for cross-validation with this horizon (it needs "
            f"{min_train(series) + cv.horizon} points)"
        )
    series.warnings.append(f"{reason}; {fallback} was used without comparison.")
    return Choice(fallback, [fallback], "single")


def _fit_members(
    choice: Choice, y: FloatArray, h: int, series: PreparedSeries, levels: list[int], cv: CrossValidation
) -> ModelForecast:
    fits: list[ModelForecast] = []
    for member in choice.members:
        fit = fit_forecast(member, y, h, series.season_length, series.seasons, levels)
        if not parse_model(member)[0].native_intervals:
            residuals = cv.residuals(cv.forecasts[member]) if member in cv.forecasts and cv.origins else None
            fit.lower, fit.upper = conformal_bounds(fit.mean, residuals, y, levels)
        fits.append(fit)
    if choice.combine == "single":
        result = fits[0]
    else:
        how = choice.combine
        result = ModelForecast(
            combine([f.mean for f in fits], how),
            {lv: combine([f.lower[lv] for f in fits], how) for lv in levels},
            {lv: combine([f.upper[lv] for f in fits], how) for lv in levels},
        )
    if cv.origins and all(m in cv.forecasts for m in choice.members):
        windows = [
            combine([cv.forecasts[m][w] for m in choice.members], choice.combine)
            for w in range(len(cv.origins))
        ]
        result.lower, result.upper = widen_to_conformal(
            result.mean, result.lower, result.upper, cv.residuals(windows)
        )
    return result


def _floored(fit: ModelForecast, series: PreparedSeries, non_negative: bool | None) -> ModelForecast:
    """The forecast and its intervals floored at 0 for a quantity that cannot go below it:
    when asked, or by default when the history never goes below 0 (counts, sales, prices,
    durations). A default floor that raised anything says so, and how to lift it."""
    floor = bool(np.all(series.values >= 0)) if non_negative is None else non_negative
    if not floor:
        return fit
    bounds = [fit.mean, *fit.lower.values(), *fit.upper.values()]
    raised = sum(int(np.count_nonzero(b < 0)) for b in bounds)
    if raised and non_negative is None:
        series.warnings.append(
            f"the history never goes below 0, so {raised} forecast value(s) and interval bound(s) "
            "below 0 were raised to 0; pass non_negative=false for a series that can go negative."
        )
    return ModelForecast(
        np.maximum(fit.mean, 0),
        {lv: np.maximum(b, 0) for lv, b in fit.lower.items()},
        {lv: np.maximum(b, 0) for lv, b in fit.upper.items()},
    )


def run_forecast(request: ForecastRequest) -> dict[str, Any]:
    """The `forecast` tool's result for `request`."""
    outcome = forecast_outcome(request)
    series, fit = outcome.series, outcome.forecast
    labels = series.future_labels(request.horizon)
    digits = output_decimals(series.values)

    def number(x: float) -> float:
        return round(float(x), digits)

    points = [
        {
            "ds": labels[i],
            "mean": number(fit.mean[i]),
            "lower": {str(lv): number(fit.lower[lv][i]) for lv in outcome.levels},
            "upper": {str(lv): number(fit.upper[lv][i]) for lv in outcome.levels},
        }
        for i in range(request.horizon)
    ]
    return {
        "model": outcome.model,
        "season_length": series.season_length,
        "freq": series.freq,
        "forecast": points,
        "cv": (
            cv_report(outcome.cv, outcome.choice, is_intermittent(series.values))
            if outcome.cv is not None
            else {}
        ),
        "skipped": outcome.skipped,
        "warnings": series.warnings,
    }
