"""`score_series`: per-point anomaly scores, bands and episodes for one series.

Input is repaired as the forecast server does it, except that points are never
moved onto a grid (each input point keeps its own score): unsorted timestamps are
sorted, repeated ones averaged, missing values interpolated for the detector (and
reported with value null and never flagged). Each repair is a warning. Where the
timestamps skip steps, "one season ago" is still a season of time, not of points (a
point whose step a season back was skipped has no seasonal deviation); the other
deviations compare a point with the points sent before it, so a jump across a gap
still reads as one.

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
import numpy.typing as npt
import pandas as pd
from pandas.tseries.frequencies import to_offset

from bastion.timeseries import (
    SeriesInputError,
    SeriesLimits,
    check_length,
    detect_season_length,
    format_timestamps,
    infer_frequency,
    is_constant,
    merge_duplicates,
    output_decimals,
    parse_timestamps,
    season_lengths_for,
    sort_by_time,
    to_float_array,
)
from bastion.timeseries.validation import check_choice, is_positive_int
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


POINT_CHOICES = ("all", "anomalous", "none")


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
    points: object = "all",
) -> dict[str, Any]:
    level = _sensitivity(sensitivity)
    shown = check_choice("points", points, POINT_CHOICES)
    if isinstance(values, Sequence) and not isinstance(values, (str, bytes)):
        check_length(len(values), LIMITS)
    y = to_float_array(values)
    check_length(y.size, LIMITS)
    warnings: list[str] = []
    labels: list[Any] = list(range(y.size))
    freq = None
    index = None
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
    season_ago = None
    if index is not None and freq is not None and m > 1:
        season_ago = _season_ago(index, freq, m, warnings)
    detection = detect(y, m, DetectorConfig(), level.floors, season_ago)
    flags = (detection.score >= level.threshold) & ~missing
    lower = detection.expected - level.band * detection.scale
    upper = detection.expected + level.band * detection.scale
    # A long series' every point is megabytes an agent rarely needs: `points` may keep
    # only the flagged ones, or none (the episodes in `anomalies` remain).
    if shown == "all":
        kept = range(y.size)
    elif shown == "anomalous":
        kept = np.flatnonzero(flags).tolist()
    else:
        kept = range(0)
    digits = output_decimals(y)
    scored = [
        {
            "ds": labels[i],
            "value": None if missing[i] else float(y[i]),
            "score": round(float(detection.score[i]), 6),
            "expected": round(float(detection.expected[i]), digits),
            # No band in the warm-up: the scale is not known yet, and nothing there is flagged.
            "lower": round(float(lower[i]), digits) if detection.settled[i] else None,
            "upper": round(float(upper[i]), digits) if detection.settled[i] else None,
            "is_anomaly": bool(flags[i]),
        }
        for i in kept
    ]
    return {
        "points": scored,
        "anomalies": episodes(flags, detection.score, detection.kind, labels),
        "season_length": m,
        "freq": freq,
        "threshold": round(level.threshold, 6),
        "warnings": warnings,
    }


def _season_ago(
    index: pd.DatetimeIndex, freq: str, m: int, warnings: list[str]
) -> npt.NDArray[np.intp] | None:
    """For each point, the point `m` steps of `freq` before it in time (-1 where that step was
    skipped); None when no step is skipped, or the timestamps fit no grid of `freq`."""
    try:
        step = to_offset(freq)
        # A fixed step gives the grid's size before it is built: sparse timestamps of a fine
        # frequency would otherwise make a grid of millions.
        too_sparse = (index[-1] - index[0]).value // step.nanos + 1 > 2 * len(index)
    except ValueError:
        too_sparse = False  # months, quarters, years: steps of varying length, few of them
    if too_sparse:
        warnings.append(
            f"the timestamps skip more steps of {freq!r} than they hold: a point is compared "
            f"with the one {m} points before it, which may not be one season earlier. Send one "
            "value per step (null where unknown)."
        )
        return None
    try:
        grid = pd.date_range(index[0], index[-1], freq=freq)
    except ValueError:
        return None
    if len(grid) == len(index):
        return None
    position = grid.get_indexer(index)
    if (position < 0).any() or len(grid) > 2 * len(index):
        # Off the grid (a sampler's jitter) or mostly gaps: keep comparing by count, and say
        # so when steps are missing, as then a count is not a season.
        skipped = len(grid) - int(np.unique(grid.get_indexer(index, method="nearest")).size)
        if skipped:
            warnings.append(
                f"the timestamps skip {skipped} steps of {freq!r} and are not all on its grid: "
                f"a point is compared with the one {m} points before it, which may not be one "
                "season earlier. Send one value per step (null where unknown)."
            )
        return None
    skipped = len(grid) - len(index)
    first = format_timestamps(pd.DatetimeIndex(grid[np.setdiff1d(np.arange(len(grid)), position)[:1]]))
    warnings.append(
        f"{skipped} steps were missing from the timestamps (first at {first[0]}): seasonal "
        "comparisons still look one season back in time, and a point whose step a season "
        "earlier is missing gets none."
    )
    point_at = np.full(len(grid), -1, dtype=np.intp)
    point_at[position] = np.arange(len(index))
    back = position - m
    return np.where(back >= 0, point_at[np.maximum(back, 0)], -1).astype(np.intp)


def _season(y: np.ndarray, freq: str | None, season_length: object | None) -> int:
    if season_length is not None:
        if not is_positive_int(season_length):
            raise SeriesInputError(f"`season_length` must be a positive integer, got {season_length!r}.")
        assert isinstance(season_length, int)
        return season_length
    if freq is not None:
        return season_lengths_for(freq)[0]
    return detect_season_length(y)
