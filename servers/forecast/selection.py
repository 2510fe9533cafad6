"""`auto`: choose a model, or a combination of models, by cross-validated error.

Each candidate is scored by its cross-validated OWA against the seasonal naive
benchmark in the same windows: (sMAPE / sMAPE_bench + MASE / MASE_bench) / 2, the
measure the M4 competition ranks by, so neither a scale-free nor a scaled error
dominates. Intermittent demand is scored by RMSSE against the same benchmark instead
(see `metrics`: the other two reward forecasting no demand). Combinations of the best
two or three (mean, and median of three) are scored the same way from the stored
window forecasts, at no extra fitting cost, and win only when they beat the best
single model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from servers.forecast.crossval import CrossValidation

__all__ = ["Choice", "choose", "combine", "cv_report"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Combine = Literal["single", "mean", "median"]


@dataclass
class Choice:
    name: str
    members: list[str]
    combine: Combine
    scores: dict[str, float] = field(default_factory=dict[str, float])


def combine(forecasts: list[FloatArray], how: Combine) -> FloatArray:
    stacked = np.vstack(forecasts)
    if how == "median":
        return np.median(stacked, axis=0)
    return stacked.mean(axis=0)


def _label(members: list[str], how: Combine) -> str:
    return members[0] if how == "single" else f"{how.capitalize()}({'+'.join(members)})"


def _relative_owa(cv: CrossValidation, bench: list[FloatArray]) -> Callable[[list[FloatArray]], float]:
    bs, bm = cv.mean_errors(bench)

    def score(predictions: list[FloatArray]) -> float:
        s, m = cv.mean_errors(predictions)
        parts = [s / bs if bs > 0 else s, m / bm if bm > 0 and np.isfinite(bm) else 0.0]
        return float(0.5 * (parts[0] + parts[1]) if np.isfinite(m) else parts[0])

    return score


def _relative_rmsse(cv: CrossValidation, bench: list[FloatArray]) -> Callable[[list[FloatArray]], float]:
    b = cv.mean_rmsse(bench)

    def score(predictions: list[FloatArray]) -> float:
        r = cv.mean_rmsse(predictions)
        if not np.isfinite(r):
            return float("inf")  # every window's history was flat: nothing to rank by
        return r / b if b > 0 and np.isfinite(b) else r

    return score


def _benchmark(cv: CrossValidation) -> list[FloatArray]:
    for name in ("SeasonalNaive", "Naive"):
        if name in cv.forecasts:
            return cv.forecasts[name]
    return [np.repeat(h[-1], cv.horizon) for h in cv.histories]


def choose(cv: CrossValidation, allow_combinations: bool = True, intermittent: bool = False) -> Choice:
    """The single model or combination with the lowest cross-validated relative error
    (OWA, or RMSSE for `intermittent` demand)."""
    if not cv.forecasts:
        raise ValueError("no model survived cross-validation")
    relative = (_relative_rmsse if intermittent else _relative_owa)(cv, _benchmark(cv))
    singles = {name: relative(preds) for name, preds in cv.forecasts.items()}
    ranked = sorted(singles, key=lambda name: singles[name])
    best = Choice(ranked[0], [ranked[0]], "single", {ranked[0]: singles[ranked[0]]})
    best_score = singles[ranked[0]]
    if not allow_combinations or len(ranked) < 2:
        return best
    options: list[tuple[list[str], Combine]] = [(ranked[:2], "mean")]
    if len(ranked) >= 3:
        options.append((ranked[:3], "mean"))
        options.append((ranked[:3], "median"))
    for members, how in options:
        windows = [combine([cv.forecasts[m][w] for m in members], how) for w in range(len(cv.origins))]
        score = relative(windows)
        if score < best_score:
            best, best_score = Choice(_label(members, how), members, how, {}), score
    best.scores = {**singles, best.name: best_score}
    return best


def _round(x: float) -> float | None:
    # JSON has no NaN: a MASE with a flat history (zero scale) is reported as null.
    return round(x, 4) if np.isfinite(x) else None


def cv_report(
    cv: CrossValidation, choice: Choice | None = None, intermittent: bool = False
) -> dict[str, dict[str, float | None]]:
    """Mean sMAPE and MASE per model (and the chosen combination) over the windows, and
    RMSSE for `intermittent` demand, the measure it is chosen by."""
    runs = {name: preds for name, preds in cv.forecasts.items()}
    if choice is not None and choice.combine != "single":
        runs[choice.name] = [
            combine([cv.forecasts[m][w] for m in choice.members], choice.combine)
            for w in range(len(cv.origins))
        ]
    report: dict[str, dict[str, float | None]] = {}
    for name, preds in runs.items():
        s, m = cv.mean_errors(preds)
        report[name] = {"smape": _round(s), "mase": _round(m)}
        if intermittent:
            report[name]["rmsse"] = _round(cv.mean_rmsse(preds))
    return report
