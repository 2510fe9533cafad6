"""Fitting one model on one series, safely: what comes back is finite or a `ModelFailure`.

statsforecast models raise on series they cannot fit (AutoARIMA "No suitable ARIMA
model found") and emit warnings about their own choices; neither may escape a tool
call. Warnings are silenced for the fit, exceptions become a `ModelFailure` naming the
model and the reason, and a forecast with NaN or infinities counts as a failure too.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from servers.forecast.models import parse_model

__all__ = ["ModelFailure", "ModelForecast", "fit_forecast"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass
class ModelForecast:
    """Point forecast and, per level (e.g. 80, 95), lower and upper bounds."""

    mean: FloatArray
    lower: dict[int, FloatArray] = field(default_factory=dict[int, "FloatArray"])
    upper: dict[int, FloatArray] = field(default_factory=dict[int, "FloatArray"])


class ModelFailure(Exception):
    """A model could not fit this series; `reason` says why in one line."""

    def __init__(self, model: str, reason: str) -> None:
        super().__init__(f"{model}: {reason}")
        self.model = model
        self.reason = reason


def fit_forecast(
    model: str, y: FloatArray, horizon: int, season_length: int, seasons: list[int], levels: list[int]
) -> ModelForecast:
    """Fit `model` on `y`, forecast `horizon` steps; native intervals at `levels` when it has them."""
    info, explicit = parse_model(model)
    if explicit is not None:
        if explicit > y.size // 2:
            raise ModelFailure(model, f"a season of {explicit} needs at least {2 * explicit} points")
        season_length = explicit
    estimator = info.make(season_length, seasons)
    want = sorted(levels) if info.native_intervals and levels else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = estimator.forecast(y=y, h=horizon, level=want)
    except Exception as exc:
        logger.info("model %s failed on a %d-point series: %s", model, y.size, exc)
        raise ModelFailure(model, str(exc).strip() or type(exc).__name__) from None
    mean = np.asarray(raw["mean"], dtype=np.float64)
    if mean.shape != (horizon,) or not np.all(np.isfinite(mean)):
        raise ModelFailure(model, "the fitted model produced non-finite forecasts")
    out = ModelForecast(mean=mean)
    for level in want or []:
        lo = np.asarray(raw[f"lo-{level}"], dtype=np.float64)
        hi = np.asarray(raw[f"hi-{level}"], dtype=np.float64)
        if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
            raise ModelFailure(model, f"the {level}% interval is not finite")
        out.lower[level] = np.minimum(lo, mean)
        out.upper[level] = np.maximum(hi, mean)
    return out
