"""Forecast accuracy the M4 way: sMAPE, MASE and OWA relative to Naive2.

sMAPE = mean(200 |y - f| / (|y| + |f|)); MASE divides the mean absolute error by the
in-sample mean absolute seasonal difference at lag m (lag 1 when the history is too
short for m). OWA averages the two, each relative to a benchmark's error over the
same set: OWA = (sMAPE / sMAPE_bench + MASE / MASE_bench) / 2.

Intermittent demand is scored by RMSSE, the M5 competition's measure: the root mean
squared error divided by the root mean squared one-step change of the history.
sMAPE and MASE both reward forecasting zero on a series that is mostly zeros (sMAPE
counts a zero met by zero as perfect, MASE is minimised by the median, zero), so they
would pick a model that forecasts no demand at all; squared error is minimised by
the mean demand, which is what stock is planned from.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["mase", "mase_scale", "owa", "rmsse", "smape"]

FloatArray = npt.NDArray[np.float64]


def smape(actual: FloatArray, forecast: FloatArray) -> float:
    denom = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        2.0 * np.abs(actual - forecast), denom, out=np.zeros_like(denom, dtype=np.float64), where=denom > 0
    )
    return float(100.0 * np.mean(ratio))


def mase_scale(history: FloatArray, m: int) -> float:
    """Mean absolute seasonal difference of the history; NaN when it is zero (a flat history)."""
    lag = m if history.size > m else 1
    if history.size <= lag:
        return float("nan")
    scale = float(np.mean(np.abs(history[lag:] - history[:-lag])))
    return scale if scale > 0 else float("nan")


def mase(actual: FloatArray, forecast: FloatArray, history: FloatArray, m: int) -> float:
    return float(np.mean(np.abs(actual - forecast))) / mase_scale(history, m)


def owa(smape_value: float, mase_value: float, smape_bench: float, mase_bench: float) -> float:
    return 0.5 * (smape_value / smape_bench + mase_value / mase_bench)


def rmsse(actual: FloatArray, forecast: FloatArray, history: FloatArray) -> float:
    """NaN when the history never changes (no scale)."""
    if history.size < 2:
        return float("nan")
    scale = float(np.mean(np.diff(history) ** 2))
    if scale <= 0:
        return float("nan")
    return float(np.sqrt(np.mean((actual - forecast) ** 2) / scale))
