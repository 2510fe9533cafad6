"""Parsing and formatting timestamps."""

from __future__ import annotations

import pandas as pd
import pytest

from bastion.timeseries import SeriesInputError, format_timestamps, parse_timestamps


def test_iso_dates_parse_in_order() -> None:
    index = parse_timestamps(["2024-01-01", "2024-01-02"], 2)
    assert list(index) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02")]
    assert index.tz is None


def test_offsets_are_converted_to_utc_so_they_compare() -> None:
    index = parse_timestamps(["2024-01-01T02:00:00+02:00", "2024-01-01T01:00:00Z"], 2)
    assert str(index.tz) == "UTC"
    assert index[0] == index[1] - pd.Timedelta(hours=1)


def test_epoch_seconds_are_accepted() -> None:
    index = parse_timestamps([0, 3600], 2)
    assert index[1] == pd.Timestamp("1970-01-01T01:00:00")


def test_a_count_mismatch_says_one_timestamp_per_value() -> None:
    with pytest.raises(SeriesInputError, match="has 1 entries but `values` has 2"):
        parse_timestamps(["2024-01-01"], 2)


def test_an_unparseable_timestamp_is_named_by_position() -> None:
    with pytest.raises(SeriesInputError, match=r"`timestamps\[1\]` = 'yesterday' is not an ISO 8601"):
        parse_timestamps(["2024-01-01", "yesterday"], 2)


def test_mixing_text_and_epoch_numbers_is_refused() -> None:
    with pytest.raises(SeriesInputError, match="mixes ISO strings and epoch numbers"):
        parse_timestamps(["2024-01-01", 0], 2)


def test_a_null_timestamp_is_refused() -> None:
    with pytest.raises(SeriesInputError, match=r"`timestamps\[0\]` is None"):
        parse_timestamps([None, "2024-01-01"], 2)


def test_midnight_only_indexes_format_as_dates_and_others_as_full_timestamps() -> None:
    assert format_timestamps(pd.DatetimeIndex(["2024-01-01", "2024-01-02"])) == ["2024-01-01", "2024-01-02"]
    assert format_timestamps(pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00"])) == [
        "2024-01-01T00:00:00",
        "2024-01-01T01:00:00",
    ]
