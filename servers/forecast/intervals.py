"""Prediction intervals for forecasts that have no native ones.

The Croston family has no error model, so its intervals are conformal: the
`level` quantile of the absolute cross-validation errors (all windows and steps
pooled), added around the forecast. With no cross-validation window to learn from,
the in-sample one-step naive errors are used instead, widening with the square root
of the step. Combinations take the same combination (mean or median) of their
members' bounds.

Native intervals assume the model is right, and a model chosen because it did well
in the last windows is the one most likely to be overconfident. So whenever
cross-validation errors exist, every interval is widened (never narrowed) to at least
the conformal width those errors give: `widen_to_conformal`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["conformal_bounds", "validate_levels", "widen_to_conformal"]

FloatArray = npt.NDArray[np.float64]
Bounds = tuple[dict[int, FloatArray], dict[int, FloatArray]]


def validate_levels(levels: object | None) -> list[int]:
    from bastion.timeseries import SeriesInputError

    if levels is None:
        return [80, 95]
    if not isinstance(levels, list):
        raise SeriesInputError(f"`levels` must be a list of percentages, got {type(levels).__name__}.")
    out: set[int] = set()
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 100:
            raise SeriesInputError(
                f"`levels` entry {level!r} is not a percentage between 0 and 100 (for example 80 or 95)."
            )
        assert isinstance(level, (int, float))
        if level != int(level):
            raise SeriesInputError(f"`levels` entry {level!r} must be a whole percentage such as 80 or 95.")
        out.add(int(level))
    return sorted(out)


def conformal_bounds(
    mean: FloatArray, residuals: FloatArray | None, history: FloatArray, levels: list[int]
) -> Bounds:
    horizon = mean.size
    if residuals is not None and residuals.size:
        errors = np.abs(residuals).ravel()
        widen = np.ones(horizon)
    else:
        errors = np.abs(np.diff(history))
        widen = np.sqrt(np.arange(1, horizon + 1, dtype=np.float64))
    lower: dict[int, FloatArray] = {}
    upper: dict[int, FloatArray] = {}
    for level in levels:
        width = float(np.quantile(errors, level / 100)) * widen if errors.size else np.zeros(horizon)
        lower[level] = mean - width
        upper[level] = mean + width
    return lower, upper


def widen_to_conformal(
    mean: FloatArray, lower: dict[int, FloatArray], upper: dict[int, FloatArray], residuals: FloatArray
) -> Bounds:
    """Bounds at least as wide as the conformal ones from `residuals` (CV errors of this forecast)."""
    if residuals.size == 0:
        return lower, upper
    conf_lower, conf_upper = conformal_bounds(mean, residuals, mean, list(lower))
    return (
        {lv: np.minimum(lower[lv], conf_lower[lv]) for lv in lower},
        {lv: np.maximum(upper[lv], conf_upper[lv]) for lv in upper},
    )
