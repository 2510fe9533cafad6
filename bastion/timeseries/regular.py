"""Putting a series on a regular grid, reporting every repair.

Models need one value per step. Real series arrive unsorted, with repeated
timestamps, skipped steps and null values; each of those is repaired here and
reported as a warning, never silently dropped:

- unsorted timestamps are sorted (values move with them);
- repeated timestamps (and points snapped onto the same step) are averaged;
- timestamps off the frequency's grid are snapped to the nearest step;
- skipped steps and null values are filled by linear interpolation inside the
  series; missing points before the first or after the last observation are dropped.
  With `fill="zero"` they are 0 instead, wherever they are: for counts and sales a
  step with no record had none, and interpolating would invent demand.

With `fill="zero"` the values are amounts, so a step holds the sum of what falls in it:
each timestamp counts in the step that starts at or before it (an order at 23:00 is
that day's), and values sharing a step are added up, not averaged. Raw events (one row
per order) with `freq="D"` become daily totals.

More than half the grid missing is refused when interpolating: it would invent the series.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.tseries.frequencies import to_offset

from bastion.timeseries.errors import SeriesInputError
from bastion.timeseries.validation import SeriesLimits, check_choice

__all__ = [
    "FILLS",
    "RegularSeries",
    "check_fill",
    "fill_missing",
    "merge_duplicates",
    "regularize",
    "sort_by_time",
]

FloatArray = npt.NDArray[np.float64]
MAX_MISSING_SHARE = 0.5
FILLS = ("interpolate", "zero")
_ZERO_HINT = "pass fill='zero' if a missing step means none (counts, sales)"


@dataclass
class RegularSeries:
    values: FloatArray
    index: pd.DatetimeIndex | None
    warnings: list[str] = field(default_factory=list[str])
    moved: int = 0  # timestamps moved onto the grid


def check_fill(fill: object) -> str:
    return check_choice("fill", fill, FILLS)


def regularize(
    values: FloatArray,
    index: pd.DatetimeIndex | None,
    freq: str | None,
    limits: SeriesLimits,
    fill: str = "interpolate",
) -> RegularSeries:
    """`values` on a regular grid of `freq` (only repaired for missing values when no index)."""
    warnings: list[str] = []
    if index is None or freq is None:
        filled, index_kept = fill_missing(values, None, warnings, fill=fill)
        return RegularSeries(filled, index_kept, warnings)
    values, index = sort_by_time(values, index, warnings)
    amounts = fill == "zero"
    grid = pd.date_range(_grid_start(index[0], freq) if amounts else index[0], index[-1], freq=freq)
    if len(grid) > limits.max_points:
        raise SeriesInputError(
            f"the timestamps span {len(grid)} steps of frequency {freq!r}, above the limit of "
            f"{limits.max_points}. Check for a wrong timestamp, or aggregate to a coarser `freq`"
            + (" (with fill='zero' the values in each step are added up)." if amounts else ".")
        )
    if len(grid) == 0:
        raise SeriesInputError(f"the timestamps do not fit frequency {freq!r}; pass the right `freq`.")
    position = grid.get_indexer(index, method="pad" if amounts else "nearest")
    off_grid = int(np.sum(grid[position] != index))
    if off_grid:
        where = "counted in the step they fall in" if amounts else "moved to the nearest step"
        warnings.append(f"{off_grid} timestamps were off the {freq!r} grid and were {where}.")
    duplicated = int(position.size - np.unique(position).size)
    if duplicated:
        first = _iso(index, int(np.argmax(np.r_[False, np.diff(position) == 0])))
        warnings.append(
            f"{duplicated} values shared a step with another (first at {first}) and were added up "
            "into one value per step (fill='zero')."
            if amounts
            else f"{duplicated} repeated timestamps (first at {first}) were averaged into one value each."
        )
    on_grid = (_sum_by_position if amounts else _mean_by_position)(values, position, len(grid))
    gaps = len(grid) - int(np.unique(position).size)
    if gaps:
        missing_at = _iso(grid, int(np.setdiff1d(np.arange(len(grid)), position)[0]))
        how = "with 0 (fill='zero')" if fill == "zero" else f"by interpolation ({_ZERO_HINT})"
        warnings.append(
            f"{gaps} steps were missing from the timestamps (first at {missing_at}) and were filled {how}."
        )
    filled, kept = fill_missing(on_grid, grid, warnings, counted=gaps, fill=fill)
    return RegularSeries(filled, kept, warnings, moved=off_grid)


def sort_by_time(
    values: FloatArray, index: pd.DatetimeIndex, warnings: list[str]
) -> tuple[FloatArray, pd.DatetimeIndex]:
    """Values and index in time order (stable); a warning names the first out-of-order timestamp."""
    order = np.argsort(index.asi8, kind="stable")
    if np.all(order == np.arange(order.size)):
        return values, index
    first = int(np.argmax(np.diff(index.asi8) < 0)) + 1
    warnings.append(
        f"timestamps were not in order (timestamps[{first}] comes before the one above it): "
        "sorted them, values moved with them."
    )
    return values[order], pd.DatetimeIndex(index[order])


def merge_duplicates(
    values: FloatArray, index: pd.DatetimeIndex, warnings: list[str]
) -> tuple[FloatArray, pd.DatetimeIndex]:
    """Average the values of repeated timestamps (index sorted); a warning counts them."""
    unique, position = np.unique(index.asi8, return_inverse=True)
    if unique.size == index.size:
        return values, index
    first = _iso(index, int(np.argmax(np.r_[False, np.diff(position) == 0])))
    warnings.append(
        f"{index.size - unique.size} repeated timestamps (first at {first}) were averaged "
        "into one value each."
    )
    merged = _mean_by_position(values, position, unique.size)
    if index.tz is None:
        return merged, pd.DatetimeIndex(pd.to_datetime(unique))
    return merged, pd.DatetimeIndex(pd.to_datetime(unique, utc=True)).tz_convert(index.tz)


def _grid_start(first: Any, freq: str) -> Any:
    """The start of the step of `freq` that holds timestamp `first`."""
    try:
        return first.floor(freq)  # fixed steps: minutes, hours, days
    except ValueError:  # weeks, months, quarters, years
        return to_offset(freq).rollback(first.normalize())


def _totals(
    values: FloatArray, position: npt.NDArray[np.intp], size: int
) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Per position, the sum of the values that are not NaN and how many there were."""
    ok = ~np.isnan(values)
    sums: FloatArray = np.bincount(position[ok], weights=values[ok], minlength=size).astype(np.float64)
    return sums, np.bincount(position[ok], minlength=size)


def _sum_by_position(values: FloatArray, position: npt.NDArray[np.intp], size: int) -> FloatArray:
    sums, counts = _totals(values, position, size)
    return np.where(counts > 0, sums, np.nan)


def _mean_by_position(values: FloatArray, position: npt.NDArray[np.intp], size: int) -> FloatArray:
    sums, counts = _totals(values, position, size)
    out = np.full(size, np.nan)
    np.divide(sums, counts, out=out, where=counts > 0)
    return out


def fill_missing(
    values: FloatArray,
    index: pd.DatetimeIndex | None,
    warnings: list[str],
    counted: int = 0,
    fill: str = "interpolate",
) -> tuple[FloatArray, pd.DatetimeIndex | None]:
    """Interpolate interior NaNs and drop leading and trailing ones, or set every NaN to 0
    (`fill="zero"`). `counted` gaps were already reported."""
    missing = np.isnan(values)
    total = int(missing.sum())
    if total == 0:
        return values, index
    if total == values.size:
        raise SeriesInputError("every value is null or NaN: there is nothing to model.")
    if fill == "zero":
        nulls = total - counted
        if nulls > 0:
            first = int(np.flatnonzero(missing)[0])
            warnings.append(
                f"{nulls} values were null or NaN (first at position {first}) and were set to 0 "
                "(fill='zero')."
            )
        return np.where(missing, 0.0, values), index
    if total > MAX_MISSING_SHARE * values.size:
        raise SeriesInputError(
            f"{total} of {values.size} points are missing: too few observations to model. "
            f"Send a denser series, aggregate to a coarser frequency, or {_ZERO_HINT}."
        )
    present = np.flatnonzero(~missing)
    lo, hi = int(present[0]), int(present[-1]) + 1
    if lo or hi < values.size:
        edges = [f"{lo} before the first observation"] if lo else []
        if hi < values.size:
            edges.append(f"{values.size - hi} after the last" + ("" if lo else " observation"))
        warnings.append(f"missing points were dropped: {' and '.join(edges)}.")
    interior = values[lo:hi].copy()
    holes = np.isnan(interior)
    if holes.any():
        interior[holes] = np.interp(np.flatnonzero(holes), np.flatnonzero(~holes), interior[~holes])
        nulls = int(holes.sum()) - counted
        if nulls > 0:
            first = int(np.flatnonzero(holes)[0]) + lo
            warnings.append(
                f"{nulls} values were null or NaN (first at position {first}) and were filled by "
                "linear interpolation."
            )
    kept = pd.DatetimeIndex(index[lo:hi]) if index is not None else None
    return interior, kept


def _iso(index: pd.DatetimeIndex, position: int) -> str:
    stamp: Any = index[position]  # a Timestamp; pandas' stubs type it as Index
    return str(stamp.isoformat())
