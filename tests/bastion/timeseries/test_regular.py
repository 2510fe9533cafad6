"""Sorting, duplicates, gaps and missing values: each repaired and reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bastion.timeseries import (
    SeriesInputError,
    SeriesLimits,
    fill_missing,
    merge_duplicates,
    regularize,
    sort_by_time,
)


def _hours(*offsets: int) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp("2024-01-01") + pd.Timedelta(hours=h) for h in offsets])


def test_unsorted_timestamps_are_sorted_with_a_warning_naming_the_first() -> None:
    warnings: list[str] = []
    values, index = sort_by_time(np.array([0.0, 2.0, 1.0]), _hours(0, 2, 1), warnings)
    assert values.tolist() == [0.0, 1.0, 2.0]
    assert index.is_monotonic_increasing
    assert "timestamps[2] comes before" in warnings[0]


def test_repeated_timestamps_are_averaged_and_counted() -> None:
    warnings: list[str] = []
    values, index = merge_duplicates(np.array([1.0, 2.0, 4.0]), _hours(0, 1, 1), warnings)
    assert values.tolist() == [1.0, 3.0]
    assert len(index) == 2
    assert warnings == [
        "1 repeated timestamps (first at 2024-01-01T01:00:00) were averaged into one value each."
    ]


def test_gaps_are_filled_on_the_grid_and_reported() -> None:
    out = regularize(np.array([0.0, 1.0, 4.0]), _hours(0, 1, 4), "h", SeriesLimits())
    assert out.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert any("2 steps were missing" in w for w in out.warnings)


def test_nulls_are_interpolated_and_edges_dropped_with_warnings() -> None:
    warnings: list[str] = []
    values, _ = fill_missing(np.array([np.nan, 1.0, np.nan, 3.0, 4.0, np.nan]), None, warnings)
    assert values.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert "missing points were dropped: 1 before the first observation and 1 after the last." in warnings
    assert any("1 values were null" in w for w in warnings)
    trailing: list[str] = []
    fill_missing(np.array([1.0, 2.0, 3.0, np.nan, np.nan]), None, trailing)
    assert trailing == ["missing points were dropped: 2 after the last observation."]


def test_a_mostly_missing_series_is_refused_naming_fill_zero() -> None:
    with pytest.raises(SeriesInputError, match=r"6 of 8 points are missing.*fill='zero'"):
        fill_missing(np.array([1.0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 2.0]), None, [])


def test_fill_zero_sets_skipped_steps_to_zero_and_says_so() -> None:
    out = regularize(np.array([3.0, 1.0, 4.0]), _hours(0, 1, 5), "h", SeriesLimits(), fill="zero")
    assert out.values.tolist() == [3.0, 1.0, 0.0, 0.0, 0.0, 4.0]
    assert out.warnings == [
        "3 steps were missing from the timestamps (first at 2024-01-01T02:00:00) and were filled "
        "with 0 (fill='zero')."
    ]
    interpolated = regularize(np.array([3.0, 1.0, 4.0]), _hours(0, 1, 5), "h", SeriesLimits())
    assert "pass fill='zero' if a missing step means none" in interpolated.warnings[0]


def test_fill_zero_adds_up_what_falls_in_each_step() -> None:
    # One row per order: each counts in its own day (23:59 is that day's), a day's orders add up.
    orders = pd.DatetimeIndex(
        ["2024-01-01 09:15", "2024-01-01 23:59", "2024-01-03 12:00", "2024-01-05 18:30"]
    )
    daily = regularize(np.array([2.0, 3.0, 1.0, 4.0]), orders, "D", SeriesLimits(), fill="zero")
    assert daily.values.tolist() == [5.0, 0.0, 1.0, 0.0, 4.0]
    assert str(daily.index[0]) == "2024-01-01 00:00:00"
    assert "4 timestamps were off the 'D' grid and were counted in the step they fall in." in daily.warnings
    assert any("added up into one value per step" in w for w in daily.warnings)
    # Weeks and months start at or before their first value.
    weekly = regularize(
        np.array([1.0, 2.0, 3.0]),
        pd.DatetimeIndex(["2024-01-03", "2024-01-10", "2024-01-24"]),
        "W-MON",
        SeriesLimits(),
        fill="zero",
    )
    assert [str(d.date()) for d in weekly.index] == ["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"]
    assert weekly.values.tolist() == [1.0, 2.0, 0.0, 3.0]
    monthly = regularize(
        np.array([1.0, 2.0, 3.0]),
        pd.DatetimeIndex(["2024-01-15", "2024-01-20", "2024-03-02"]),
        "MS",
        SeriesLimits(),
        fill="zero",
    )
    assert monthly.values.tolist() == [3.0, 0.0, 3.0]
    # Measurements are still averaged onto the nearest step: 23:00 is nearer the next day.
    stamps = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 23:00", "2024-01-02 00:00"])
    nearest = regularize(np.array([2.0, 4.0, 6.0]), stamps, "D", SeriesLimits())
    assert nearest.values.tolist() == [2.0, 5.0]
    added = regularize(np.array([2.0, 4.0, 6.0]), stamps, "D", SeriesLimits(), fill="zero")
    assert added.values.tolist() == [6.0, 6.0]


def test_fill_zero_keeps_edges_and_accepts_a_mostly_empty_series() -> None:
    warnings: list[str] = []
    values, _ = fill_missing(
        np.array([np.nan, 2.0, np.nan, np.nan, np.nan, np.nan]), None, warnings, fill="zero"
    )
    assert values.tolist() == [0.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    assert warnings == ["5 values were null or NaN (first at position 0) and were set to 0 (fill='zero')."]


def test_a_series_of_nothing_but_nulls_is_refused_whatever_the_fill() -> None:
    for fill in ("interpolate", "zero"):
        with pytest.raises(SeriesInputError, match="every value is null or NaN"):
            fill_missing(np.array([np.nan, np.nan, np.nan]), None, [], fill=fill)


def test_a_timestamp_far_away_is_caught_by_the_grid_limit() -> None:
    index = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2099-01-01 00:00"])
    with pytest.raises(SeriesInputError, match=r"span .* steps of frequency 'h', above the limit"):
        regularize(np.array([1.0, 2.0, 3.0]), index, "h", SeriesLimits())
