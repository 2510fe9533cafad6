"""Column types from sample values, and the types a caller may ask for instead.

Inference picks the narrowest type every non-empty sample value fits, from
boolean, bigint, numeric, date, timestamp, timestamptz and text; JSON values may also
be jsonb. Values with leading zeros (`007`, zip codes) stay text: as numbers they would
lose what makes them identifiers. Dates and times are recognised in ISO 8601 and with
the year first (`2024/03/15`); `03/04/2024` only with the caller's `date_order` ("DMY"
or "MDY"), so it is never silently read as March or April. In CSV, the words exports write
for a missing value (R's `NA`, `NaN`, `NULL`, Excel's `#N/A`, ...) do not make a column
of numbers, dates or booleans text: there they load as NULL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from bastion.missing import MISSING_MARKERS
from servers.analytics.errors import LoadError

__all__ = [
    "DATE_ORDERS",
    "NUMERIC_TYPES",
    "THOUSANDS",
    "TYPE_ALIASES",
    "NumberFormat",
    "date_orders",
    "infer_json_type",
    "infer_text_type",
    "number_format",
    "resolve_type",
    "text_hint",
]

_BOOL = frozenset({"true", "false", "t", "f", "yes", "no", "y", "n"})
_INT = re.compile(r"^[+-]?\d+$")
_DEC = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TS = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?")
# A time of day: `09:15`, `9:15:30`, `23:59:59.5`. Seconds make a one-digit hour safe; without
# them the hour has two digits, so a score or ratio such as `3:10` stays text.
_TIME_OF_DAY = re.compile(r"^(([01]?\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?|([01]\d|2[0-3]):[0-5]\d)$")
_INT64 = 2**63
# With a decimal comma: `3,5`, `-1.234,5` (a point groups thousands), `1.234`.
_COMMA_NUMBER = re.compile(r"^[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?$")
# With commas between thousands, as US and UK spreadsheets write them: `1,234.5`, `12,345`.
_COMMA_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
# What may group thousands, and the spaces French and Swiss exports write for " ".
THOUSANDS = {",": (",",), ".": (".",), "'": ("'", "\u2019"), " ": (" ", "\u00a0", "\u202f")}
# Dates as spreadsheets write them, with an optional time: `15/03/2024`, `3/15/2024 2:30 PM`,
# `15.03.2024 14:30`, and the year first, `2024/03/15` or `2024-3-5`, which only one reading fits.
_TIME = r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s?([AaPp][Mm]))?)?"
_DAY_MONTH = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})" + _TIME + "$")
_YEAR_FIRST = re.compile(r"^(\d{4})([/.-])(\d{1,2})\2(\d{1,2})" + _TIME + "$")
DATE_ORDERS = {"DMY": "day", "MDY": "month"}  # what comes first

# Names a caller may give in `column_types`, to the PostgreSQL type used.
TYPE_ALIASES: dict[str, str] = {
    "text": "text",
    "string": "text",
    "varchar": "text",
    "integer": "bigint",
    "int": "bigint",
    "bigint": "bigint",
    "smallint": "smallint",
    "int4": "integer",
    "numeric": "numeric",
    "decimal": "numeric",
    "float": "double precision",
    "double": "double precision",
    "double precision": "double precision",
    "real": "real",
    "boolean": "boolean",
    "bool": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "datetime": "timestamp",
    "timestamptz": "timestamptz",
    "time": "time",
    "interval": "interval",
    "uuid": "uuid",
    "json": "jsonb",
    "jsonb": "jsonb",
}

NUMERIC_TYPES = frozenset({"smallint", "integer", "bigint", "numeric", "real", "double precision"})

# Widening order when two samples disagree.
_WIDER = {
    frozenset({"bigint", "numeric"}): "numeric",
    frozenset({"date", "timestamp"}): "timestamp",
}


def resolve_type(requested: str, column: str) -> str:
    """The PostgreSQL type for a caller's `column_types` entry, or LoadError."""
    key = " ".join(requested.lower().split())
    if key not in TYPE_ALIASES:
        known = ", ".join(sorted(TYPE_ALIASES))
        raise LoadError(
            f"column_types[{column!r}] = {requested!r} is not a type we load. Use one of: {known}."
        )
    return TYPE_ALIASES[key]


@dataclass(frozen=True)
class NumberFormat:
    """How a CSV writes numbers: the decimal mark, and what groups thousands (with a
    decimal comma, the point unless said otherwise)."""

    decimal: str = "."
    thousands: str | None = None

    @property
    def plain(self) -> bool:
        """As PostgreSQL reads numbers: nothing to rewrite."""
        return self.decimal == "." and self.thousands is None

    @property
    def groups(self) -> tuple[str, ...]:
        mark = self.thousands if self.thousands is not None else ("." if self.decimal == "," else None)
        return () if mark is None else THOUSANDS[mark]

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        group = "[" + "".join(re.escape(g) for g in self.groups) + "]" if self.groups else None
        grouped = rf"\d{{1,3}}({group}\d{{3}})+|" if group else ""
        # Spaces around the number: PostgreSQL reads them, so they are not trimmed first.
        return re.compile(rf"^\s*[+-]?({grouped}\d+)({re.escape(self.decimal)}\d+)?\s*$")

    @property
    def described(self) -> str:
        """How the numbers are written, for messages: "with decimal ',' and '.' between thousands"."""
        parts = [f"decimal {self.decimal!r}"] if self.decimal != "." else []
        if self.groups:
            parts.append(f"{self.groups[0]!r} between thousands")
        return "with " + " and ".join(parts) if parts else "plainly"

    def written_plain(self, value: str) -> str:
        """`value` (matching `pattern`) as PostgreSQL reads numbers: `-1.234,5` -> `-1234.5`."""
        v = value.strip()
        for g in self.groups:
            v = v.replace(g, "")
        return v.replace(self.decimal, ".")


PLAIN_NUMBERS = NumberFormat()


@lru_cache(maxsize=32)
def number_format(decimal: str = ".", thousands: str | None = None) -> NumberFormat:
    return NumberFormat(decimal, thousands)


def _calendar_kind(year: str, month: str, day: str, clock: tuple[str | None, ...]) -> str:
    """What the parts make: a date, a timestamp, or text when they are not a real date and time."""
    hour, minute, second, half = clock
    try:
        dt.date(int(year), int(month), int(day))
    except ValueError:
        return "text"
    if hour is None:
        return "date"
    h = int(hour)
    if (half and not 1 <= h <= 12) or h > 23 or int(minute or 0) > 59 or int(second or 0) > 59:
        return "text"
    return "timestamp"


def _written_date_kind(value: str, date_order: str | None) -> str:
    """The kind of a date not in ISO 8601: year first always, day or month first by `date_order`."""
    if match := _YEAR_FIRST.match(value):
        year, _, month, day, *clock = match.groups()
        return _calendar_kind(year, month, day, tuple(clock))
    if date_order is not None and (match := _DAY_MONTH.match(value)):
        first, _, second, year, *clock = match.groups()
        day, month = (first, second) if date_order == "DMY" else (second, first)
        return _calendar_kind(year, month, day, tuple(clock))
    return "text"


def date_orders(value: str) -> set[str]:
    """The `date_order`s under which `value` is a date written day or month first."""
    return {order for order in DATE_ORDERS if _written_date_kind(value.strip(), order) != "text"}


def _text_kind(value: str, numbers: NumberFormat = PLAIN_NUMBERS, date_order: str | None = None) -> str:
    v = value.strip()
    if not numbers.plain:
        if numbers.pattern.match(v):
            v = numbers.written_plain(v)
        elif "." in v and _DEC.match(v):
            return "text"  # `1.5` where a comma is the decimal mark: no reading is safe
    if v.lower() in _BOOL:
        return "boolean"
    if _INT.match(v):
        digits = v.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            return "text"
        return "bigint" if -_INT64 <= int(v) < _INT64 else "numeric"
    if _DEC.match(v):
        return "numeric"
    if _DATE.match(v):
        try:
            dt.date.fromisoformat(v)
        except ValueError:
            return "text"
        return "date"
    if _TS.match(v):
        try:
            parsed = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return "text"
        return "timestamptz" if parsed.tzinfo is not None else "timestamp"
    if _TIME_OF_DAY.match(v):
        return "time"
    return _written_date_kind(v, date_order)


def _merge(kinds: set[str]) -> str:
    if not kinds:
        return "text"
    if len(kinds) == 1:
        return next(iter(kinds))
    if len(kinds) == 2:
        return _WIDER.get(frozenset(kinds), "text")
    return "text"


def infer_text_type(
    values: Iterable[str],
    missing: frozenset[str] = MISSING_MARKERS,
    decimal: str = ".",
    date_order: str | None = None,
    thousands: str | None = None,
) -> str:
    """The type of a CSV column from its sample values; empty values and `missing` are NULL.
    With `decimal` "," numbers are written `1.234,5`; `thousands` is what groups thousands
    (`1,234.5`); `date_order` ("DMY" or "MDY") reads dates written `15/03/2024` or `03/15/2024`."""
    numbers = number_format(decimal, thousands)
    kinds: set[str] = set()
    # Each distinct value once, and stop as soon as only text fits.
    for value in set(values):
        if value == "" or value in missing:
            continue
        kinds.add(_text_kind(value, numbers, date_order))
        if _merge(kinds) == "text":
            return "text"
    return _merge(kinds)


def text_hint(
    values: Iterable[str],
    missing: frozenset[str],
    decimal: str,
    date_order: str | None = None,
    thousands: str | None = None,
) -> str | None:
    """Why a CSV column read as text may be meant as numbers or dates, for the caller to act
    on: numbers written with a decimal comma, dates written day or month first, or a few
    words among numbers (`?`, `-`) that probably mark missing values. None when the column
    looks like text."""
    distinct = {v.strip() for v in values} - {""} - missing
    if not distinct:
        return None
    if decimal == "." and thousands is None and (hint := _comma_hint(distinct)):
        return hint
    if all(_DAY_MONTH.match(v) for v in distinct):
        return _date_hint(distinct, date_order)
    words: list[str] = []
    numbers: set[str] = set()
    for v in distinct:  # a text column shows its fourth word soon: stop there
        kind = _text_kind(v, number_format(decimal, thousands))
        if kind != "text":
            numbers.add(kind)
        elif not _INT.match(v):
            words.append(v)
            if len(words) > 3:
                return None
    if words and numbers <= {"bigint", "numeric"} and len(distinct) >= 10 * len(words):
        listed = ", ".join(repr(w) for w in sorted(words))
        return (
            f"holds numbers but for {listed}: if that marks a missing value, add it to null_values "
            "(which replaces the default list: name those you need too)"
        )
    return None


def _comma_hint(distinct: set[str]) -> str | None:
    """Numbers with commas: a decimal comma (`3,5`), commas between thousands (`1,234.5`,
    `1,234,567`), or either (`1,234`)."""
    with_comma = sorted(v for v in distinct if "," in v)
    if not with_comma:
        return None
    decimal = all(_COMMA_NUMBER.match(v) for v in distinct)
    grouped = all(_COMMA_GROUPED.match(v) or _DEC.match(v) for v in distinct)
    if decimal and grouped:
        return (
            f"looks like numbers with commas ({with_comma[0]!r}): load it with thousands=',' if "
            "they group thousands, or decimal=',' if they mark the decimals"
        )
    if decimal:
        return (
            f"looks like numbers written with a decimal comma ({with_comma[0]!r}): load it with decimal=','"
        )
    if grouped:
        return (
            f"looks like numbers with commas between thousands ({with_comma[0]!r}): load it with "
            "thousands=','"
        )
    return None


def _date_hint(distinct: set[str], date_order: str | None) -> str | None:
    """What to pass for a column of dates written day or month first, if any order reads them all."""
    fits = set(DATE_ORDERS)
    telling: list[str] = []  # values only one order reads, such as 15/03/2024
    for v in distinct:
        orders = date_orders(v)
        fits &= orders
        if not fits:
            return None
        if len(orders) == 1:
            telling.append(v)
    example = min(telling or distinct)
    if len(fits) == 1:
        order = next(iter(fits))
        return (
            f"looks like dates written {DATE_ORDERS[order]} first, as {example!r}: load it with "
            f"date_order={order!r}"
        )
    if date_order is not None:
        return None
    return (
        f"looks like dates ({example!r}), day or month first: load it with date_order='DMY' "
        "(15/03/2024) or date_order='MDY' (03/15/2024)"
    )


def infer_json_type(values: Iterable[Any]) -> str:
    """The type of a JSON field from its values; None is NULL."""
    kinds: set[str] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int):
            kinds.add("bigint" if -_INT64 <= value < _INT64 else "numeric")
        elif isinstance(value, float):
            kinds.add("numeric")
        elif isinstance(value, str):
            kind = _text_kind(value)
            # A JSON string that looks like a number was quoted on purpose.
            kinds.add(kind if kind in {"date", "timestamp", "timestamptz"} else "text")
        else:
            kinds.add("jsonb")
    if "jsonb" in kinds:
        return "jsonb"
    return _merge(kinds)
