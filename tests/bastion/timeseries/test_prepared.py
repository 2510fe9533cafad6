"""prepare_series end to end, and the package's public surface."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bastion.timeseries
from bastion.timeseries import SeriesInputError, prepare_series


def test_timestamps_give_frequency_seasons_and_future_labels() -> None:
    stamps = [str(t) for t in pd.date_range("2024-01-01", periods=400, freq="h")]
    series = prepare_series(list(np.arange(400.0)), stamps)
    assert series.freq == "h"
    assert series.seasons == [24, 168]
    assert series.future_labels(2) == ["2024-01-17T16:00:00", "2024-01-17T17:00:00"]


def test_without_timestamps_labels_are_step_indexes() -> None:
    series = prepare_series([float(i % 7) for i in range(70)])
    assert series.season_length == 7
    assert series.labels()[:2] == [0, 1]
    assert series.future_labels(2) == [70, 71]


def test_a_season_too_long_for_the_history_is_dropped_with_a_warning() -> None:
    series = prepare_series(list(np.arange(30.0)), season_length=24)
    assert series.season_length == 1
    assert "season length 24 needs at least 48 points" in series.warnings[0]


def test_timestamps_moved_onto_an_inferred_grid_name_freq_and_fill() -> None:
    days = [f"2024-01-{d:02d}" for d in (1, 2, 5, 6, 9, 12, 13, 16, 20, 23, 26, 27, 30)]
    guessed = prepare_series([1.0] * 6 + [2.0] * 7, days)
    assert guessed.freq == "3D"
    assert "the frequency '3D' was inferred from the timestamps; pass `freq`" in guessed.warnings[-1]
    given = prepare_series([1.0] * 6 + [2.0] * 7, days, freq="3D")
    assert not any("was inferred" in w for w in given.warnings)


def test_a_constant_series_is_flagged_with_a_warning() -> None:
    series = prepare_series([5.0] * 20)
    assert series.constant
    assert "constant" in series.warnings[0]


def test_the_size_limit_is_checked_before_any_work() -> None:
    with pytest.raises(SeriesInputError, match="above the limit of 100000"):
        prepare_series([0.0] * 100_001)


@pytest.mark.parametrize("bad", [0, -2, True])
def test_a_bad_season_length_is_refused(bad: object) -> None:
    with pytest.raises(SeriesInputError, match="`season_length` must be a positive integer"):
        prepare_series(list(np.arange(30.0)), season_length=bad)  # type: ignore[arg-type]


def test_the_public_surface_is_pinned() -> None:
    assert sorted(bastion.timeseries.__all__) == [
        "PreparedSeries", "RegularSeries", "SeriesInputError", "SeriesLimits", "acf", "check_choice",
        "check_horizon", "check_length", "classical_decomposition", "detect_season_length",
        "fill_missing", "format_timestamps", "infer_frequency", "is_constant", "merge_duplicates",
        "normalize_frequency", "output_decimals", "parse_timestamps", "prepare_series", "regularize",
        "require_extra", "season_lengths_for", "seasonal_indices", "seasonality_test", "sort_by_time",
        "to_float_array", "unit_scale",
    ]  # fmt: skip
