"""`score_series`: per-point anomaly scores, bands and episodes for one series.

Input is repaired as the forecast server does it, except that points are never
moved onto a grid (each input point keeps its own score): unsorted timestamps are
sorted, repeated ones averaged, missing values interpolated for the detector (and
reported with value null and never flagged). Each repair is a warning.

Sensitivity sets how new a deviation must be (its novelty, see `detector`) and how
large in absolute terms, and how wide the bands are:

    sensitivity  novelty >=  minimum |deviation|  band
    low          1.25        4 scales             expected +/- 5 scales
    medium       1.10        3 scales             expected +/- 4 scales
    high         1.00        2 scales             expected +/- 3 scales
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bastion.timeseries import (
    SeriesInputError,
    SeriesLimits,
    check_length,
    detect_season_length,
    format_timestamps,
    infer_frequency,
    is_constant,
    merge_duplicates,
    parse_timestamps,
    season_lengths_for,
    sort_by_time,
    to_float_array,
)
from bastion.timeseries.validation import is_positive_int
from servers.anomaly.detector import DetectorConfig, detect
from servers.anomaly.episodes import episodes

__all__ = ["LIMITS", "SENSITIVITIES", "Sensitivity", "score_series"]

LIMITS = SeriesLimits(min_points=10, max_points=100_000)


@dataclass(frozen=True)
class Sensitivity:
    novelty: float
    floors: tuple[float, float, float, float]  # spike, level, variance (log ratio), seasonal
    band: float

    @property
    def threshold(self) -> float:
        return self.novelty / (1 + self.novelty)


SENSITIVITIES = {
    "low": Sensitivity(1.25, (4.0, 4.0, 1.0, 4.0), 5.0),
    "medium": Sensitivity(1.10, (3.0, 3.0, 0.7, 3.0), 4.0),
    "high": Sensitivity(1.00, (2.0, 2.0, 0.5, 2.0), 3.0),
}


def _sensitivity(name: object) -> Sensitivity:
    found = SENSITIVITIES.get(name) if isinstance(name, str) else None
    if found is None:
        raise SeriesInputError(f"`sensitivity` {name!r} is not one of: low, medium, high.")
    return found


def score_series(
    values: object,
    timestamps: object | None = None,
    season_length: object | None = None,
    sensitivity: object = "medium",
) -> dict[str, Any]:
    level = _sensitivity(sensitivity)
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        check_length(len(values), LIMITS)
    y = to_float_array(values)
    check_length(y.size, LIMITS)
    warnings: list[str] = []
    labels: list[Any] = list(range(y.size))
    freq = None
    if timestamps is not None:
        index = parse_timestamps(timestamps, y.size)
        y, index = sort_by_time(y, index, warnings)
        y, index = merge_duplicates(y, index, warnings)
        check_length(y.size, LIMITS)
        labels = list(format_timestamps(index))
        freq = infer_frequency(index)
    missing = np.isnan(y)
    if missing.all():
        raise SeriesInputError("every value is null: there is nothing to score.")
    if missing.any():
        warnings.append(
            f"{int(missing.sum())} values were null or NaN (first at position {int(np.argmax(missing))}); "
            "they were interpolated for the detector and are never flagged."
        )
        present = np.flatnonzero(~missing)
        y = y.copy()
        y[missing] = np.interp(np.flatnonzero(missing), present, y[present])
    m = _season(y, freq, season_length)
    if is_constant(y):
        warnings.append("the series is constant: nothing deviates, so nothing is flagged.")
    detection = detect(y, m, DetectorConfig(), level.floors)
    flags = (detection.score >= level.threshold) & ~missing
    lower = detection.expected - level.band * detection.scale
    upper = detection.expected + level.band * detection.scale
    points = [
        {
            "ds": labels[i],
            "value": None if missing[i] else float(y[i]),
            "score": round(float(detection.score[i]), 6),
            "expected": float(detection.expected[i]),
            # No band in the warm-up: the scale is not known yet, and nothing there is flagged.
            "lower": float(lower[i]) if detection.settled[i] else None,
            "upper": float(upper[i]) if detection.settled[i] else None,
            "is_anomaly": bool(flags[i]),
        }
        for i in range(y.size)
    ]
    return {
        "points": points,
        "anomalies": episodes(flags, detection.score, detection.kind, labels),
        "season_length": m,
        "freq": freq,
        "threshold": round(level.threshold, 6),
        "warnings": warnings,
    }


def _season(y: np.ndarray, freq: str | None, season_length: object | None) -> int:
    if season_length is not None:
        if not is_positive_int(season_length):
            raise SeriesInputError(f"`season_length` must be a positive integer, got {season_length!r}.")
        assert isinstance(season_length, int)
        return season_length
    if freq is not None:
        return season_lengths_for(freq)[0]
    return detect_season_length(y)
