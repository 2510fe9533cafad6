"""Frequency and season length: inferred from timestamps, or taken from the caller.

A frequency is a pandas offset alias ("h", "15min", "D", "W-SUN", "MS", "QS-JAN", "YS").
Season lengths follow the calendar: sub-daily data repeats daily (and weekly), daily
data weekly (and yearly), weekly data yearly (52), monthly 12, quarterly 4. The first
length is the main one; the others feed models that take several (MSTL).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from bastion.timeseries.errors import SeriesInputError

__all__ = ["infer_frequency", "normalize_frequency", "season_lengths_for"]

logger = logging.getLogger(__name__)

_DAY = 86_400.0
# Calendar offsets by the rule code pandas gives them (prefix before any "-" anchor).
_CALENDAR_SEASONS: dict[str, list[int]] = {
    "B": [5],
    "C": [5],
    "W": [52],
    "MS": [12],
    "ME": [12],
    "M": [12],
    "SMS": [24],
    "SME": [24],
    "BMS": [12],
    "BME": [12],
    "QS": [4],
    "QE": [4],
    "Q": [4],
    "BQS": [4],
    "BQE": [4],
    "YS": [1],
    "YE": [1],
    "Y": [1],
    "BYS": [1],
    "BYE": [1],
}
# Seasons longer than this are not modelled: a daily cycle of 1-minute data (1440)
# costs more than it helps a statistical model.
MAX_SEASON = 1_000


# Words a caller (often a model) writes for a frequency, and the alias each means when no
# timestamps say more. With timestamps the anchor is theirs: "monthly" month-end dates stay
# month ends ("ME") and "weekly" Mondays stay Mondays ("W-MON"), instead of being moved.
_WORDS = {
    "minutely": "min",
    "hourly": "h",
    "daily": "D",
    "weekly": "W",
    "monthly": "MS",
    "quarterly": "QS",
    "yearly": "YS",
    "annual": "YS",
    "annually": "YS",
}
_PERIODS = ("Minute", "Hour", "Day", "Week", "Month", "Quarter", "Year")


def _period(alias: str) -> tuple[str, int] | None:
    """("Month", 1) for "ME", "MS" or "BME": the calendar period an alias steps by, and how many."""
    offset = to_offset(alias)
    kind = type(offset).__name__
    return next(((p, offset.n) for p in _PERIODS if p in kind), None)


def normalize_frequency(freq: str, index: pd.DatetimeIndex | None = None) -> str:
    """The canonical alias of a caller's `freq` (a pandas alias, or a word such as "monthly",
    anchored as `index`'s timestamps are), or a clear error."""
    word = _WORDS.get(freq.strip().lower()) if isinstance(freq, str) else None  # pyright: ignore[reportUnnecessaryIsInstance]
    if word is not None:
        if index is not None and index.unique().size >= 2:
            inferred = infer_frequency(index.unique().sort_values())
            if _period(inferred) == _period(word):  # the same period, one at a time
                return inferred
        return to_offset(word).freqstr
    try:
        return to_offset(freq).freqstr
    except (ValueError, TypeError):
        raise SeriesInputError(
            f"`freq` {freq!r} is not a pandas frequency alias. Use one such as 'h', '15min', 'D', "
            "'W-SUN', 'MS' or 'QS' (or hourly, daily, weekly, monthly, quarterly, yearly), or leave "
            "it out to infer it from the timestamps."
        ) from None


def infer_frequency(index: pd.DatetimeIndex, sparse: bool = False) -> str:
    """The alias of a sorted, de-duplicated index: pandas' own inference, else the typical step.

    `sparse` is for events, where a missing step means nothing happened: rows only on days
    with a sale skip one, two or five days, and the most common skip can be three. There
    the smallest step is the frequency when every other step is a whole number of it."""
    if len(index) < 2:
        raise SeriesInputError("at least two distinct timestamps are needed to infer a frequency.")
    if len(index) >= 3:
        inferred = pd.infer_freq(index)
        if inferred is not None:
            return to_offset(inferred).freqstr
    # Gaps defeat pandas' inference: use the most common step.
    steps = np.diff(index.asi8)  # nanoseconds
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[int(np.argmax(counts))])
    smallest = int(values[0])
    if sparse and smallest > 0 and not np.any(steps % smallest):
        step = smallest
    return _alias_for_step(step / 1e9, index)


def _alias_for_step(seconds: float, dates: pd.DatetimeIndex) -> str:
    index: Any = dates  # pandas' stubs miss normalize, day and day_name on DatetimeIndex
    days = seconds / _DAY
    anchored_midnight = bool((index == index.normalize()).all())
    if anchored_midnight and 28 <= days <= 31:
        return "MS" if bool((index.day == 1).all()) else "ME"
    if anchored_midnight and 89 <= days <= 92:
        return "QS" if bool((index.day == 1).all()) else "QE"
    if anchored_midnight and 365 <= days <= 366:
        return "YS" if bool((index.day == 1).all()) else "YE"
    if anchored_midnight and days == 7:
        return to_offset(f"W-{index[0].day_name()[:3].upper()}").freqstr
    return to_offset(timedelta(seconds=seconds)).freqstr


def season_lengths_for(freq: str) -> list[int]:
    """Season lengths of `freq`, main one first; [1] when it has no calendar cycle."""
    offset = to_offset(freq)
    code = offset.rule_code.split("-")[0]
    if code in _CALENDAR_SEASONS:
        return list(_CALENDAR_SEASONS[code])
    try:
        seconds = pd.Timedelta(offset).total_seconds()
    except ValueError:
        return [1]
    if seconds <= 0:
        return [1]
    if seconds < _DAY:
        per_day = _DAY / seconds
        if per_day != int(per_day):
            return [1]
        seasons = [int(per_day), int(per_day) * 7]
    elif seconds == _DAY:
        seasons = [7, 365]
    elif seconds == 7 * _DAY:
        seasons = [52]
    else:
        seasons = [1]
    return [s for s in seasons if s <= MAX_SEASON] or [1]
