"""Frequency inference and calendar season lengths."""

from __future__ import annotations

import pandas as pd
import pytest

from bastion.timeseries import SeriesInputError, infer_frequency, normalize_frequency, season_lengths_for


@pytest.mark.parametrize(
    ("freq", "expected"),
    [("h", "h"), ("15min", "15min"), ("D", "D"), ("MS", "MS"), ("W-SUN", "W-SUN"), ("QS-JAN", "QS-OCT")],
)
def test_a_regular_index_has_its_frequency_inferred(freq: str, expected: str) -> None:
    # pandas names quarter starts by their last anchor month (QS-OCT == QS-JAN dates).
    index = pd.date_range("2024-01-07", periods=30, freq=freq)
    assert infer_frequency(index) == expected


def test_gaps_do_not_defeat_inference_the_most_common_step_wins() -> None:
    index = pd.date_range("2024-01-01", periods=50, freq="h").delete([5, 6, 20])
    assert infer_frequency(index) == "h"


def test_sparse_events_take_the_smallest_step_that_every_step_is_a_multiple_of() -> None:
    # Rows only on days with a sale: skips of 3 days are the most common here.
    days = pd.DatetimeIndex([f"2024-01-{d:02d}" for d in (1, 2, 5, 6, 9, 12, 13, 16, 20, 23, 26, 27, 30)])
    assert infer_frequency(days) == "3D"
    assert infer_frequency(days, sparse=True) == "D"
    # A reading between two hours is not a step of its own: the hours stay the frequency.
    odd = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 01:25", "2024-01-01 02:00"])
    assert (
        infer_frequency(odd.append(pd.date_range("2024-01-01 03:00", periods=5, freq="h")), sparse=True)
        == "h"
    )


def test_monthly_data_with_a_gap_is_still_monthly() -> None:
    index = pd.date_range("2020-01-01", periods=24, freq="MS").delete([7])
    assert infer_frequency(index) == "MS"


@pytest.mark.parametrize(
    ("freq", "seasons"),
    [
        ("h", [24, 168]),
        ("30min", [48, 336]),
        ("D", [7, 365]),
        ("W-SUN", [52]),
        ("MS", [12]),
        ("QS", [4]),
        ("YS", [1]),
    ],
)
def test_calendar_season_lengths(freq: str, seasons: list[int]) -> None:
    assert season_lengths_for(freq) == seasons


def test_minute_data_keeps_only_seasons_a_model_can_afford() -> None:
    assert season_lengths_for("min") == [1]  # a 1,440-step day is above MAX_SEASON


def test_a_bad_frequency_alias_is_refused_with_examples() -> None:
    with pytest.raises(SeriesInputError, match=r"not a pandas frequency alias.*'h', '15min'"):
        normalize_frequency("fortnightly-ish")


@pytest.mark.parametrize(
    ("word", "dates", "expected"),
    [
        ("monthly", None, "MS"),
        ("Monthly", pd.date_range("2020-01-31", periods=12, freq="ME"), "ME"),  # month ends stay
        ("weekly", pd.date_range("2024-01-01", periods=10, freq="W-MON"), "W-MON"),  # Mondays stay
        ("weekly", pd.date_range("2024-01-01", periods=10, freq="D"), "W-SUN"),  # days: not weekly
        ("daily", pd.date_range("2024-01-01", periods=10, freq="B"), "B"),
        ("hourly", None, "h"),
        ("quarterly", pd.date_range("2020-03-31", periods=8, freq="QE"), "QE-DEC"),
        ("annual", None, "YS-JAN"),
    ],
)
def test_frequency_words_mean_their_period_anchored_as_the_timestamps_are(
    word: str, dates: pd.DatetimeIndex | None, expected: str
) -> None:
    assert normalize_frequency(word, dates) == expected
