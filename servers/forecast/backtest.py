"""`backtest`: how each model would have done on the last few windows of the series.

The same rolling-origin cross-validation `auto` uses, reported window by window:
where each window starts, and per model the sMAPE and MASE (and, for intermittent
demand, RMSSE) in each window and on average. Models default to the ones `auto` would compare for this series.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bastion.timeseries import SeriesInputError
from bastion.timeseries.validation import is_positive_int
from servers.forecast.candidates import auto_candidates, is_intermittent
from servers.forecast.crossval import cross_validate
from servers.forecast.engine import ForecastRequest, min_train, prepare, shortest_fit, well_scaled
from servers.forecast.models import resolve_model

__all__ = ["MAX_WINDOWS", "run_backtest"]

MAX_WINDOWS = 20


def _num(x: float) -> float | None:
    return round(x, 4) if math.isfinite(x) else None


def run_backtest(request: ForecastRequest, models: Sequence[str] | None = None) -> dict[str, Any]:
    if not is_positive_int(request.windows) or request.windows > MAX_WINDOWS:
        raise SeriesInputError(
            f"`windows` must be an integer from 1 to {MAX_WINDOWS}, got {request.windows!r}."
        )
    series, y, _ = prepare(request)
    y, _ = well_scaled(y)  # the errors are ratios: the scale drops out
    if models:
        names = [resolve_model(m) for m in models]
        if "auto" in names:
            raise SeriesInputError(
                "`models` lists concrete models; leave it out to compare the `auto` candidates."
            )
        skipped: dict[str, str] = {}
    else:
        shortest = shortest_fit(series, y, request.horizon, request.windows)
        candidates = auto_candidates(y, series.season_length, series.seasons, request.windows, shortest)
        names, skipped = candidates.models, candidates.skipped
    cv = cross_validate(
        y, request.horizon, names, request.windows, series.season_length, series.seasons, min_train(series)
    )
    if not cv.origins:
        raise SeriesInputError(
            f"the series has {y.size} points: too few for even one backtest window of "
            f"{request.horizon} steps "
            f"after the {min_train(series)} points a model needs. Shorten `horizon` or send more history."
        )
    if len(cv.origins) < request.windows:
        series.warnings.append(
            f"only {len(cv.origins)} of the {request.windows} windows fit in the history; "
            "the others were left out."
        )
    labels = series.labels()
    offset = series.values.size - y.size
    intermittent = is_intermittent(y)
    report: dict[str, Any] = {}
    for name, predictions in cv.forecasts.items():
        windows = [{"smape": _num(s), "mase": _num(m)} for s, m in cv.window_errors(predictions)]
        s_mean, m_mean = cv.mean_errors(predictions)
        mean = {"smape": _num(s_mean), "mase": _num(m_mean)}
        if intermittent:  # the measure `auto` chooses intermittent demand by
            for window, r in zip(windows, cv.window_rmsse(predictions), strict=True):
                window["rmsse"] = _num(r)
            mean["rmsse"] = _num(cv.mean_rmsse(predictions))
        report[name] = {"windows": windows, "mean": mean}
    return {
        "season_length": series.season_length,
        "freq": series.freq,
        "horizon": request.horizon,
        "windows": [{"start": labels[offset + origin], "train_size": origin} for origin in cv.origins],
        "models": report,
        "skipped": {**skipped, **cv.failures},
        "warnings": series.warnings,
    }
