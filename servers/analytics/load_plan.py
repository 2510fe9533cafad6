"""What a load reads and how: the `Input`, the `ReadOptions` it is read with, and the
`LoadPlan` a reader (csv_reader, parquet_reader, json_reader) makes of it: the table's
columns, the COPY options and the feed that writes the rows."""

from __future__ import annotations

import base64
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Literal

from psycopg import AsyncCopy, sql

from servers.analytics.catalog import ColumnSpec
from servers.analytics.errors import LoadError
from servers.analytics.infer import resolve_type

__all__ = [
    "CHUNK",
    "FORMATS",
    "Feed",
    "Format",
    "Input",
    "LoadPlan",
    "Progress",
    "ReadOptions",
    "apply_types",
    "stream",
]

Format = Literal["csv", "parquet", "json", "excel"]
FORMATS: tuple[Format, ...] = ("csv", "parquet", "json", "excel")
Progress = Callable[[int, int], None]
Feed = Callable[[AsyncCopy, Progress | None], Awaitable[None]]
CHUNK = 1 << 20
_BINARY: tuple[Format, ...] = ("parquet", "excel")  # `content` carries them base64-encoded


@dataclass(frozen=True)
class Input:
    """Where the data comes from: a file on this host, or uploaded bytes."""

    label: str
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def from_content(cls, content: str, fmt: Format | None) -> Input:
        if fmt in _BINARY:
            try:
                return cls("upload", data=base64.b64decode(content, validate=True))
            except ValueError:
                what = "Parquet" if fmt == "parquet" else "A workbook's"
                raise LoadError(f"{what} content must be base64-encoded bytes") from None
        return cls("upload", data=content.encode("utf-8"))

    def open(self) -> IO[bytes]:
        if self.path is not None:
            return self.path.open("rb")
        assert self.data is not None
        return io.BytesIO(self.data)

    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None else len(self.data or b"")

    def head(self, n: int) -> bytes:
        with self.open() as f:
            return f.read(n)


@dataclass
class LoadPlan:
    format: Format
    columns: list[ColumnSpec]
    copy_options: sql.Composable
    total_bytes: int
    feed: Feed
    # Where COPY's line N (1-based, the header included when there is one) came from.
    locate: Callable[[int], str] = lambda line: f"line {line}"
    # Columns whose type the caller chose in `column_types` (the rest were inferred).
    chosen: frozenset[str] = frozenset()
    # CSV: the words that mean NULL in a column of numbers, dates or booleans, and whether
    # the feed writes the file again (those words as NULL, decimal commas as points) or
    # streams its bytes as they are.
    missing: frozenset[str] = frozenset()
    rewritten: bool = False
    # CSV: PostgreSQL's DateStyle for COPY when dates are written day or month first.
    date_style: str | None = None
    # What the caller may want to do differently, said with the result (CSV text columns
    # that look like numbers).
    warnings: list[str] = field(default_factory=list[str])

    @property
    def read_as_csv(self) -> bool:
        """Whether the data went the CSV way (a CSV file, or a workbook's sheet written as one):
        types inferred from a sample, missing-value words, dates written day or month first."""
        return self.format in ("csv", "excel")


@dataclass(frozen=True)
class ReadOptions:
    """How a CSV file or a workbook's sheet is written where it differs from the defaults;
    None: the default.

    `null_values` replaces the words that mean NULL in a column of numbers, dates or
    booleans (default `MISSING_MARKERS`); `encoding` is a CSV file's character encoding
    (default UTF-8); `decimal` "," reads numbers written `1.234,5`; `thousands` is what
    groups thousands in numbers (`1,234.5`); `date_order` "DMY" or "MDY" reads dates
    written `15/03/2024` or `03/15/2024`; `sheet` is the workbook sheet to read, by name or
    position from 1 (default: the first visible one).
    """

    null_values: Sequence[str] | None = None
    encoding: str | None = None
    decimal: str | None = None
    thousands: str | None = None
    date_order: str | None = None
    sheet: str | None = None

    def given(self) -> list[str]:
        """The options set, by name."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


def apply_types(columns: list[ColumnSpec], overrides: dict[str, str] | None) -> frozenset[str]:
    """Set the types the caller chose; the names of the columns they apply to."""
    if not overrides:
        return frozenset()
    by_name = {c["name"]: c for c in columns} | {c["source_name"]: c for c in columns}
    chosen: set[str] = set()
    for key, requested in overrides.items():
        column = by_name.get(key)
        if column is None:
            known = ", ".join(c["name"] for c in columns)
            raise LoadError(
                f"column_types names {key!r}, which the file does not have. Its columns: {known}."
            )
        column["type"] = resolve_type(requested, key)
        chosen.add(column["name"])
    return frozenset(chosen)


def stream(source: Input) -> Feed:
    async def feed(copy: AsyncCopy, progress: Progress | None) -> None:
        total, done = source.size(), 0
        with source.open() as f:
            while chunk := f.read(CHUNK):
                await copy.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)

    return feed
