"""Which models `auto` compares, given the series' shape and what the request can afford.

- Intermittent demand (non-negative, at least 30% zeros): the Croston family
  (CrostonOptimized, CrostonSBA, TSB, ADIDA, IMAPA) against Naive.
- Seasonal (a main season above 1 with two full cycles): SeasonalNaive, AutoTheta,
  AutoCES and MSTL (with every season the frequency has), plus SeasonalNaive at the
  longer season when there is one (the week of hourly data). AutoETS and AutoARIMA
  join only for short seasons (up to 12): with a season of 24 a single AutoETS fit
  costs more than the four others together and, on M4 Hourly, forecasts worse than
  MSTL, whose trend is itself an ETS; AutoARIMA costs more still.
- Otherwise: Naive, AutoTheta, AutoCES, AutoETS and AutoARIMA.

Every candidate is fitted once per cross-validation window; a model whose estimated
cost for that exceeds the per-series budget is left out, and the result says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from servers.forecast.models import parse_model

__all__ = [
    "INTERMITTENT_ZERO_SHARE",
    "SERIES_BUDGET_SECONDS",
    "SHORT_SEASON",
    "CandidateSet",
    "auto_candidates",
    "is_intermittent",
]

FloatArray = npt.NDArray[np.float64]

INTERMITTENT_ZERO_SHARE = 0.3
# Estimated CPU seconds one series may spend on candidate fits.
SERIES_BUDGET_SECONDS = 20.0
SHORT_SEASON = 12
ARIMA_MAX_POINTS = 2_000


@dataclass
class CandidateSet:
    models: list[str]
    skipped: dict[str, str] = field(default_factory=dict[str, str])


def is_intermittent(y: FloatArray) -> bool:
    return bool(np.all(y >= 0) and np.mean(y == 0) >= INTERMITTENT_ZERO_SHARE)


def estimated_seconds(model: str, n: int, season_length: int, fits: int) -> float:
    info, _ = parse_model(model)
    cost = info.cost * n / 1_000 * fits
    if info.name == "AutoARIMA":
        cost *= max(1.0, season_length / 4)
    return cost


def _seasonal(
    n: int, shortest: int, season_length: int, seasons: list[int], skipped: dict[str, str]
) -> list[str]:
    names = ["SeasonalNaive", "AutoTheta", "AutoCES", "MSTL"]
    for s in seasons[1:]:
        if shortest >= 2 * s:
            names.append(f"SeasonalNaive({s})")
        elif n >= 2 * s:  # the whole history would do; the comparison's earliest window would not
            skipped[f"SeasonalNaive({s})"] = (
                f"a season of {s} needs {2 * s} points before each cross-validation window and the "
                f"earliest has {shortest} (send more history, or fewer `windows` or a shorter `horizon`)"
            )
    if season_length <= SHORT_SEASON:
        names.append("AutoETS")
        if n <= ARIMA_MAX_POINTS:
            names.append("AutoARIMA")
        else:
            skipped["AutoARIMA"] = f"compared only on series up to {ARIMA_MAX_POINTS} points"
    else:
        reason = (
            f"compared only for seasons up to {SHORT_SEASON} (too costly at {season_length}; MSTL covers it)"
        )
        skipped["AutoETS"] = reason
        skipped["AutoARIMA"] = reason
    return names


def auto_candidates(
    y: FloatArray, season_length: int, seasons: list[int], windows: int, shortest: int | None = None
) -> CandidateSet:
    """The models `auto` compares on `y`. `shortest` is the fewest points any of its fits sees
    (the earliest cross-validation window's training part; the whole series by default)."""
    n = y.size
    skipped: dict[str, str] = {}
    if is_intermittent(y):
        names = ["Naive", "CrostonOptimized", "CrostonSBA", "TSB", "ADIDA", "IMAPA"]
    elif season_length > 1:
        names = _seasonal(n, n if shortest is None else shortest, season_length, seasons, skipped)
    else:
        names = ["Naive", "AutoTheta", "AutoCES", "AutoETS"]
        if n <= ARIMA_MAX_POINTS:
            names.append("AutoARIMA")
        else:
            skipped["AutoARIMA"] = f"compared only on series up to {ARIMA_MAX_POINTS} points"
    kept: list[str] = []
    for name in names:
        seconds = estimated_seconds(name, n, season_length, windows + 1)
        if seconds > SERIES_BUDGET_SECONDS and not name.startswith(("Naive", "SeasonalNaive")):
            skipped[name] = (
                f"estimated {seconds:.0f} s of fitting, above the {SERIES_BUDGET_SECONDS:.0f} s budget"
            )
        else:
            kept.append(name)
    return CandidateSet(kept, skipped)
