"""Timestamps as callers send them: ISO 8601 strings or Unix epoch seconds.

Parsing is all-or-nothing with the first bad position named. Offsets are honoured:
when any timestamp carries one, all are converted to UTC so they compare; when none
does, they stay naive (local wall-clock time, as sent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from bastion.timeseries.errors import SeriesInputError

__all__ = ["format_timestamps", "parse_timestamps"]

_HAS_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def parse_timestamps(raw: object, expected: int) -> pd.DatetimeIndex:
    """`raw` as a DatetimeIndex of the same order and length (`expected`, the value count)."""
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise SeriesInputError(f"`timestamps` must be a list, got {type(raw).__name__}.")
    if len(raw) != expected:
        raise SeriesInputError(
            f"`timestamps` has {len(raw)} entries but `values` has {expected}: send one timestamp per value."
        )
    if expected == 0:
        return pd.DatetimeIndex([])
    kinds = {_kind(i, v) for i, v in enumerate(raw)}
    if len(kinds) > 1:
        raise SeriesInputError("`timestamps` mixes ISO strings and epoch numbers: send all of one kind.")
    if kinds == {"epoch"}:
        return pd.DatetimeIndex(pd.to_datetime([float(v) for v in raw], unit="s"))  # type: ignore[arg-type]
    texts = [str(v).strip() for v in raw]
    aware = any(_HAS_OFFSET.search(t) for t in texts)
    try:
        index = pd.DatetimeIndex(pd.to_datetime(texts, format="ISO8601", utc=aware))
    except (ValueError, OverflowError):
        raise SeriesInputError(_first_unparseable(texts)) from None
    return index


def _kind(i: int, v: object) -> str:
    if isinstance(v, bool) or v is None:
        raise SeriesInputError(
            f"`timestamps[{i}]` is {v!r}: every value needs a timestamp (ISO 8601 text or epoch seconds)."
        )
    if isinstance(v, (int, float)):
        return "epoch"
    if isinstance(v, str):
        return "iso"
    raise SeriesInputError(f"`timestamps[{i}]` is a {type(v).__name__}; use ISO 8601 text or epoch seconds.")


def _first_unparseable(texts: list[str]) -> str:
    for i, text in enumerate(texts):
        try:
            pd.Timestamp(text)
        except (ValueError, OverflowError):
            return (
                f"`timestamps[{i}]` = {text!r} is not an ISO 8601 timestamp "
                "(for example 2024-05-01 or 2024-05-01T13:00:00Z)."
            )
    return "`timestamps` could not be parsed as ISO 8601: use one format (and offset style) throughout."


def format_timestamps(index: pd.DatetimeIndex) -> list[str]:
    """ISO 8601 text, one style for the whole index: dates only when every one is a naive midnight."""
    stamps: Any = index  # pandas' stubs miss DatetimeIndex.normalize
    if index.tz is None and bool((stamps == stamps.normalize()).all()):
        return [str(ts.strftime("%Y-%m-%d")) for ts in index]
    return [ts.isoformat() for ts in index]
