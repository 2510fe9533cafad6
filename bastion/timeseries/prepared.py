"""`prepare_series`: from a caller's JSON series to one a model can take, with warnings.

It runs every check in order - types and limits, timestamps, frequency, the regular
grid, length, seasonality, constancy - and returns a `PreparedSeries` that also knows
how to label past and future steps (ISO timestamps, or step indexes without them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from bastion.timeseries.errors import SeriesInputError
from bastion.timeseries.frequency import infer_frequency, normalize_frequency, season_lengths_for
from bastion.timeseries.regular import check_fill, regularize
from bastion.timeseries.seasonality import detect_season_length
from bastion.timeseries.timestamps import format_timestamps, parse_timestamps
from bastion.timeseries.validation import (
    SeriesLimits,
    check_length,
    is_constant,
    is_positive_int,
    to_float_array,
)

__all__ = ["PreparedSeries", "prepare_series"]

FloatArray = npt.NDArray[np.float64]
Label = str | int


@dataclass
class PreparedSeries:
    """A regular, gap-free series with its frequency, season lengths and the repairs made."""

    values: FloatArray
    index: pd.DatetimeIndex | None
    freq: str | None
    season_length: int
    seasons: list[int]
    constant: bool
    warnings: list[str] = field(default_factory=list[str])

    def labels(self) -> list[Label]:
        """Labels of the history: ISO timestamps, or step indexes 0..n-1."""
        if self.index is None:
            return list(range(self.values.size))
        return list(format_timestamps(self.index))

    def future_labels(self, horizon: int) -> list[Label]:
        """Labels of the next `horizon` steps after the history."""
        if self.index is None or self.freq is None:
            n = self.values.size
            return list(range(n, n + horizon))
        future = pd.date_range(self.index[-1], periods=horizon + 1, freq=self.freq)[1:]
        return list(format_timestamps(pd.DatetimeIndex(future)))


def prepare_series(
    values: object,
    timestamps: object | None = None,
    freq: str | None = None,
    season_length: object | None = None,
    limits: SeriesLimits | None = None,
    min_cycles: int = 2,
    fill: object = "interpolate",
) -> PreparedSeries:
    """Check and repair a series; seasons need `min_cycles` full cycles of history to be kept.
    `fill` is how skipped steps and nulls are filled: "interpolate" or "zero"."""
    limits = limits or SeriesLimits()
    how = check_fill(fill)
    if (
        isinstance(values, Sequence)
        and not isinstance(values, (str, bytes))
        and len(values) > limits.max_points
    ):
        check_length(len(values), limits)
    y = to_float_array(values)
    index = parse_timestamps(timestamps, y.size) if timestamps is not None else None
    inferred = freq is None and index is not None
    if freq is not None:
        freq = normalize_frequency(freq, index)
    elif index is not None:
        freq = infer_frequency(index.unique().sort_values(), sparse=how == "zero")
    regular = regularize(y, index, freq, limits, how)
    check_length(regular.values.size, limits)
    warnings = regular.warnings
    if inferred and regular.moved:
        # Rows only on days with a sale make "every third day" the most common step.
        warnings.append(
            f"the frequency {freq!r} was inferred from the timestamps; pass `freq` if the data has "
            + (
                "another (for example 'D': the values in each step are added up)."
                if how == "zero"
                else "another (for example 'D'), or fill='zero' if a missing step means none (counts, sales)."
            )
        )
    seasons = _seasons(regular.values, freq, season_length)
    usable = [m for m in seasons if m > 1 and regular.values.size >= min_cycles * m]
    dropped = [m for m in seasons if m > 1 and m not in usable]
    if dropped:
        warnings.append(
            f"season length {dropped[0]} needs at least {min_cycles * dropped[0]} points "
            f"({min_cycles} cycles); the series has {regular.values.size}, so it was not modelled."
        )
    constant = is_constant(regular.values)
    if constant:
        warnings.append(
            f"the series is constant ({regular.values[0]:g}): nothing varies to model, so the forecast "
            "repeats it with zero-width intervals."
        )
    return PreparedSeries(
        values=regular.values,
        index=regular.index,
        freq=freq,
        season_length=usable[0] if usable else 1,
        seasons=usable or [1],
        constant=constant,
        warnings=warnings,
    )


def _seasons(y: FloatArray, freq: str | None, season_length: object | None) -> list[int]:
    if season_length is not None:
        if not is_positive_int(season_length):
            raise SeriesInputError(f"`season_length` must be a positive integer, got {season_length!r}.")
        assert isinstance(season_length, int)
        # The caller's season leads; the frequency's longer seasons still feed multi-season
        # models. An explicit 1 means "not seasonal" and keeps every season out.
        longer = (
            [s for s in season_lengths_for(freq) if s > season_length] if freq and season_length > 1 else []
        )
        return [season_length, *longer]
    if freq is not None:
        return season_lengths_for(freq)
    return [detect_season_length(y)]
