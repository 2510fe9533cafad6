"""Result values as JSON: what a query returns to an MCP client, and how big it is.

Numbers stay numbers (a `numeric` becomes an int when integral, else a float),
dates and times become ISO 8601 strings, intervals become seconds, bytes become
`\\x`-prefixed hex as PostgreSQL prints them, and anything else its text. What JSON has
no number or date for keeps PostgreSQL's spelling as text: `NaN`, `Infinity` and
`-Infinity`, the dates and timestamps `infinity` and `-infinity`, and an integer beyond
64 bits (its exact digits).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from psycopg.adapt import AdaptersMap, Buffer, Loader
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader

__all__ = ["jsonable", "jsonable_row", "register_json_loaders", "row_converter"]

# What a JSON encoder (orjson) takes as an integer; the rest stays text.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _integer(value: int, text: str) -> int | str:
    return value if _INT_MIN <= value <= _INT_MAX else text


def _real(value: float, text: str) -> float | str:
    return value if math.isfinite(value) else text


def jsonable(value: Any) -> Any:
    """`value` as plain JSON data."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _NON_FINITE[str(value)]
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value() and value.as_tuple().exponent >= 0:  # pyright: ignore[reportOperatorIssue]
            return _integer(int(value), str(value))
        return _real(float(value), str(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType]
    return str(value)


def jsonable_row(row: Sequence[Any]) -> list[Any]:
    return [jsonable(v) for v in row]


class _JsonNumericLoader(Loader):
    """`numeric` text straight to what `jsonable` makes of a Decimal: an int when written
    without a fraction, else a float; NaN and infinities stay strings. No Decimal is built."""

    def load(self, data: Buffer) -> Any:
        text = bytes(data)
        if b"." in text:
            return _real(float(text), text.decode())
        if text[-1:].isdigit():
            return _integer(int(text), text.decode())
        return text.decode()


class _InfinityDateLoader(DateLoader):
    def load(self, data: Buffer) -> Any:
        text = bytes(data)
        return text.decode() if text.endswith(b"infinity") else super().load(data)


class _InfinityTimestampLoader(TimestampLoader):
    def load(self, data: Buffer) -> Any:
        text = bytes(data)
        return text.decode() if text.endswith(b"infinity") else super().load(data)


class _InfinityTimestamptzLoader(TimestamptzLoader):
    def load(self, data: Buffer) -> Any:
        text = bytes(data)
        return text.decode() if text.endswith(b"infinity") else super().load(data)


def register_json_loaders(adapters: AdaptersMap) -> None:
    """Load `numeric` as JSON numbers, and infinite dates and timestamps as their text (which
    psycopg refuses to load), on a cursor whose rows go through `row_converter`."""
    adapters.register_loader("numeric", _JsonNumericLoader)
    adapters.register_loader("date", _InfinityDateLoader)
    adapters.register_loader("timestamp", _InfinityTimestampLoader)
    adapters.register_loader("timestamptz", _InfinityTimestamptzLoader)


# Column types (as psycopg names them, and their SQL spellings) whose values are already
# plain JSON on a cursor set up by `register_json_loaders`: their columns are passed through.
_PLAIN = frozenset(
    {
        "int2", "int4", "int8", "smallint", "integer", "bigint",
        "text", "varchar", "character varying", "bpchar", "character", "name",
        "bool", "boolean", "numeric",
    }
)  # fmt: skip


def row_converter(types: Sequence[str]) -> Callable[[Sequence[Any]], list[Any]]:
    """A fast `jsonable_row` for rows of these column types: plain columns are not visited.

    For cursors set up by `register_json_loaders` (numeric columns are plain there)."""
    convert = [i for i, t in enumerate(types) if t.split("(")[0].strip() not in _PLAIN]
    if not convert:
        return list
    if len(convert) == len(types):
        return jsonable_row

    def row(values: Sequence[Any]) -> list[Any]:
        out = list(values)
        for i in convert:
            value = out[i]
            if value is not None:
                out[i] = jsonable(value)
        return out

    return row
