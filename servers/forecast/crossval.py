"""Rolling-origin cross-validation on the tail of one series.

The last `windows * horizon` points are split into `windows` consecutive test
windows; for each, every model is fitted on everything before it and scored on it
(sMAPE, and MASE scaled by that training part). Windows whose training part would be
too short are left out, earliest first. A model that fails in any window is dropped
from the comparison, with its reason kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from servers.forecast.fitting import ModelFailure, fit_forecast
from servers.forecast.metrics import mase, rmsse, smape

__all__ = ["CrossValidation", "cross_validate", "plan_origins"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass
class CrossValidation:
    """Forecasts of each model in each window, with the actuals and training histories."""

    horizon: int
    season_length: int
    origins: list[int]
    actuals: list[FloatArray]
    histories: list[FloatArray]
    forecasts: dict[str, list[FloatArray]] = field(default_factory=dict[str, list["FloatArray"]])
    failures: dict[str, str] = field(default_factory=dict[str, str])

    def window_errors(self, predictions: list[FloatArray]) -> list[tuple[float, float]]:
        """(sMAPE, MASE) of `predictions` in each window."""
        m = self.season_length
        return [
            (smape(a, p), mase(a, p, h, m))
            for a, p, h in zip(self.actuals, predictions, self.histories, strict=True)
        ]

    def mean_errors(self, predictions: list[FloatArray]) -> tuple[float, float]:
        """Mean sMAPE and MASE over the windows; MASE is NaN when no window has a MASE scale."""
        errors = np.array(self.window_errors(predictions), dtype=np.float64).reshape(-1, 2)
        if errors.size == 0:
            return float("nan"), float("nan")
        scaled = errors[:, 1][np.isfinite(errors[:, 1])]
        return float(np.mean(errors[:, 0])), float(np.mean(scaled)) if scaled.size else float("nan")

    def window_rmsse(self, predictions: list[FloatArray]) -> list[float]:
        """RMSSE of `predictions` in each window (NaN where the history never changes)."""
        return [rmsse(a, p, h) for a, p, h in zip(self.actuals, predictions, self.histories, strict=True)]

    def mean_rmsse(self, predictions: list[FloatArray]) -> float:
        """Mean RMSSE over the windows that have a scale; NaN when none has."""
        errors = np.array(self.window_rmsse(predictions), dtype=np.float64)
        scaled = errors[np.isfinite(errors)]
        return float(np.mean(scaled)) if scaled.size else float("nan")

    def residuals(self, predictions: list[FloatArray]) -> FloatArray:
        """Actual minus forecast, one row per window, one column per step ahead."""
        return np.array([a - p for a, p in zip(self.actuals, predictions, strict=True)], dtype=np.float64)


def plan_origins(n: int, horizon: int, windows: int, min_train: int) -> list[int]:
    """Training lengths of the windows that leave at least `min_train` points to fit on."""
    origins = [n - (windows - i) * horizon for i in range(windows)]
    return [o for o in origins if o >= min_train]


def cross_validate(
    y: FloatArray,
    horizon: int,
    models: list[str],
    windows: int,
    season_length: int,
    seasons: list[int],
    min_train: int,
) -> CrossValidation:
    origins = plan_origins(y.size, horizon, windows, min_train)
    cv = CrossValidation(
        horizon=horizon,
        season_length=season_length,
        origins=origins,
        actuals=[y[o : o + horizon] for o in origins],
        histories=[y[:o] for o in origins],
    )
    for model in models:
        predictions: list[FloatArray] = []
        try:
            for origin in origins:
                # Seasons longer than half the training part cannot be fitted in this window.
                usable = [s for s in seasons if 2 * s <= origin] or [1]
                fitted = fit_forecast(model, y[:origin], horizon, min(season_length, usable[0]), usable, [])
                predictions.append(fitted.mean)
        except ModelFailure as failure:
            cv.failures[model] = failure.reason
            continue
        except Exception as exc:  # a model's own precondition (e.g. MSTL without a season)
            cv.failures[model] = str(exc)
            continue
        cv.forecasts[model] = predictions
    return cv
