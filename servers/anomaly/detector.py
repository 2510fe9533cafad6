"""The time-series detector: causal features, each judged by its novelty.

Four deviations are measured at every point, each in units of a robust scale, using
only earlier points (so a stream scored point by point gets the same scores as the
whole series at once, and appending points never changes earlier ones):

- spike:           |y - median of the previous 30 points| / scale
- level_shift:     |mean of the last 12 points - median of the 1,000 before| / scale
- variance_change: |log(mean |diff| over the last 60 / mean |diff| over the 1,000 before)|
- seasonal:        |y - y one season ago| / MAD of those seasonal residuals

where scale = 1.4826 * median |spike residual| over the previous 1,000 points (a MAD).
A deviation is anomalous when it is new: its novelty is the deviation divided by the
largest deviation of the same kind in the previous 5,000 points (floored at the
minimum the sensitivity demands in absolute terms). The score is
novelty / (1 + novelty): 0.5 means "as large as the largest deviation seen lately",
above it "larger than anything seen lately". That relative judgement is what makes one
threshold work across series of any scale and noise level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["KINDS", "Detection", "DetectorConfig", "detect"]

FloatArray = npt.NDArray[np.float64]
KINDS = ("spike", "level_shift", "variance_change", "seasonal")


@dataclass(frozen=True)
class DetectorConfig:
    level_window: int = 30
    scale_window: int = 1_000
    shift_window: int = 12
    variance_window: int = 60
    novelty_window: int = 5_000
    min_history: int = 20


@dataclass
class Detection:
    """Per point: score in [0, 1), the dominant kind, expected value, robust scale, and whether
    enough history stood behind the point to know the scale at all."""

    score: FloatArray
    kind: npt.NDArray[np.int64]
    expected: FloatArray
    scale: FloatArray  # robust scale of the residuals around `expected`
    novelty: FloatArray  # one row per kind (KINDS order)
    settled: npt.NDArray[np.bool_]  # False in the warm-up, where `scale` is only a placeholder


def _clean(z: pd.Series | FloatArray) -> FloatArray:
    return np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _novelty(z: FloatArray, window: int, floor: float) -> FloatArray:
    past = pd.Series(z).shift(1).rolling(window, min_periods=1).max().to_numpy()
    past = np.where(np.isnan(past), np.inf, past)
    return z / np.maximum(np.maximum(past, floor), 1e-12)


def detect(
    y: FloatArray,
    season_length: int,
    config: DetectorConfig,
    floors: tuple[float, ...],
    season_ago: npt.NDArray[np.intp] | None = None,
) -> Detection:
    """Scores for `y` (no NaN). `floors` are per-kind minimum deviations for a point to be novel.

    `season_ago[i]`: the point one season of time before point i, or -1 when the timestamps
    skipped that step; by default `season_length` points before it.
    """
    c = config
    s = pd.Series(y)
    before = s.shift(1)
    local = before.rolling(c.level_window, min_periods=1).median()
    residual = s - local
    mad = residual.abs().shift(1).rolling(c.scale_window, min_periods=c.min_history).median() * 1.4826
    sd = before.rolling(c.scale_window, min_periods=c.min_history).std()
    typical = float(np.nanmedian(np.abs(np.diff(y)))) if y.size > 1 else 0.0
    # A flat stretch has MAD 0: fall back to the std, then to a tiny share of the typical step.
    fallback = np.maximum(_clean(sd.to_numpy()) * 1e-2, max(typical, 1e-9) * 1e-3)
    scale = np.maximum(_clean(mad.fillna(sd).to_numpy()), fallback)
    spike = _clean(residual.abs().to_numpy() / scale)

    recent = s.rolling(c.shift_window, min_periods=1).mean()
    baseline = s.shift(c.shift_window).rolling(c.scale_window, min_periods=c.min_history).median()
    level = _clean((recent - baseline).abs().to_numpy() / scale)

    steps = s.diff().abs()
    now = steps.rolling(c.variance_window, min_periods=3).mean()
    usual = steps.shift(c.variance_window).rolling(c.scale_window, min_periods=c.min_history).mean()
    variance = _clean(np.abs(np.log((now + 1e-9) / (usual + 1e-9))))

    expected = local.to_numpy(copy=True)
    expected[0] = y[0]
    band = scale.copy()
    seasonal = np.zeros(y.size)
    if season_length > 1 and y.size > 2 * season_length:
        if season_ago is None:
            ago = s.shift(season_length)
        else:
            ago = pd.Series(np.where(season_ago >= 0, y[np.maximum(season_ago, 0)], np.nan))
        seasonal_residual = s - ago
        seasonal_mad = (
            seasonal_residual.abs().shift(1).rolling(c.scale_window, min_periods=c.min_history).median()
        )
        seasonal_scale = np.maximum(_clean(seasonal_mad * 1.4826), 1e-9)
        seasonal = _clean(seasonal_residual.abs().to_numpy() / seasonal_scale)
        seasonal[np.isnan(seasonal_mad.to_numpy())] = 0.0
        # Where the seasonal naive has predicted better so far, it is the expected value.
        better = (seasonal_mad * 1.4826).to_numpy() < mad.to_numpy()
        better &= ~np.isnan(ago.to_numpy())
        expected = np.where(better, ago.to_numpy(), expected)
        band = np.where(better, seasonal_scale, band)

    # Before the scale is established, deviations mean nothing; left in, a warm-up
    # artefact would become the "largest deviation seen" that later ones must beat.
    unsettled = np.isnan(mad.to_numpy())
    for z in (spike, level, variance):
        z[unsettled] = 0.0
    novelties = np.vstack(
        [
            _novelty(z, c.novelty_window, f)
            for z, f in zip((spike, level, variance, seasonal), floors, strict=True)
        ]
    )
    best = np.max(novelties, axis=0)
    score = best / (1.0 + best)
    score[: c.min_history] = 0.0
    settled = ~unsettled
    return Detection(score, np.argmax(novelties, axis=0), _clean(expected), band, novelties, settled)
