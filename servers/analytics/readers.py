"""Readers: turn a CSV, Parquet or JSON input into columns and a COPY feed.

A `LoadPlan` says which columns (names, PostgreSQL types, source headers) the table
gets, the COPY options, and how to feed the data. CSV is streamed to the server byte
for byte, exactly as `psql \\copy` does, after inferring types from a sample; Parquet
is converted to CSV by Arrow, keeping its declared types; JSON (lines, one array of
objects, or one object holding one) is parsed and written row by row. A CSV whose
columns of numbers, dates or booleans hold missing-value words (`NA`, `NaN`, ...) is
parsed by Arrow and written again with those fields NULL.
"""

from __future__ import annotations

import base64
import codecs
import csv
import io
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any, Literal, cast

import anyio.to_thread
import orjson
from psycopg import AsyncCopy, sql
from psycopg.types.json import Jsonb

from bastion.missing import MISSING_MARKERS
from servers.analytics.catalog import ColumnSpec
from servers.analytics.errors import LoadError
from servers.analytics.excel import EXCEL_EXTENSIONS, looks_like_workbook, read_sheet
from servers.analytics.infer import (
    DATE_ORDERS,
    NUMERIC_TYPES,
    THOUSANDS,
    NumberFormat,
    infer_json_type,
    infer_text_type,
    number_format,
    resolve_type,
    text_hint,
)
from servers.analytics.names import column_names

__all__ = [
    "FORMATS",
    "Format",
    "Input",
    "LoadPlan",
    "Progress",
    "ReadOptions",
    "build_plan",
    "detect_format",
    "named_format",
]

logger = logging.getLogger(__name__)

Format = Literal["csv", "parquet", "json", "excel"]
FORMATS: tuple[Format, ...] = ("csv", "parquet", "json", "excel")
Progress = Callable[[int, int], None]
Feed = Callable[[AsyncCopy, Progress | None], Awaitable[None]]
CHUNK = 1 << 20
# Python's codec names, as `codecs.lookup` spells them, to PostgreSQL's for COPY ENCODING.
_PG_ENCODINGS = {
    "utf-8": "UTF8",
    "utf-8-sig": "UTF8",
    "iso8859-1": "LATIN1",
    "iso8859-2": "LATIN2",
    "iso8859-3": "LATIN3",
    "iso8859-4": "LATIN4",
    "iso8859-5": "ISO_8859_5",
    "iso8859-6": "ISO_8859_6",
    "iso8859-7": "ISO_8859_7",
    "iso8859-8": "ISO_8859_8",
    "iso8859-9": "LATIN5",
    "iso8859-10": "LATIN6",
    "iso8859-13": "LATIN7",
    "iso8859-14": "LATIN8",
    "iso8859-15": "LATIN9",
    "iso8859-16": "LATIN10",
    "cp866": "WIN866",
    "cp874": "WIN874",
    **{f"cp{n}": f"WIN{n}" for n in range(1250, 1259)},
    "koi8-r": "KOI8R",
    "koi8-u": "KOI8U",
    "shift_jis": "SJIS",
    "cp932": "SJIS",
    "euc_jp": "EUC_JP",
    "euc_kr": "EUC_KR",
    "cp949": "UHC",
    "gbk": "GBK",
    "gb18030": "GB18030",
    "big5": "BIG5",
}
_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    **dict.fromkeys(EXCEL_EXTENSIONS, "excel"),
}
# What `format` may also be called, to the format it names.
_FORMAT_ALIASES: dict[str, Format] = {
    "jsonl": "json",
    "ndjson": "json",
    "tsv": "csv",
    "pq": "parquet",
    **{ext.removeprefix("."): "excel" for ext in EXCEL_EXTENSIONS},
}
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


def named_format(requested: str) -> Format:
    """The format a caller's `format` names (`xlsx`, `jsonl`, `.csv`...), or LoadError."""
    key = requested.lower().removeprefix(".")
    key = _FORMAT_ALIASES.get(key, key)
    if key not in FORMATS:
        raise LoadError(
            f"format {requested!r} is not supported: use csv, parquet, json or excel (.xlsx, .xls, .ods)"
        )
    return key  # type: ignore[return-value]


def detect_format(source: Input, requested: str | None) -> Format:
    if requested is not None:
        return named_format(requested)
    if source.path is not None and source.path.suffix.lower() in _EXTENSIONS:
        return _EXTENSIONS[source.path.suffix.lower()]
    head = source.head(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if looks_like_workbook(head):
        return "excel"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"[", b"{"):
        return "json"
    return "csv"


def _apply_types(columns: list[ColumnSpec], overrides: dict[str, str] | None) -> frozenset[str]:
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


def _csv_codec(name: str) -> str:
    """The Python codec for a CSV file's `encoding`, or LoadError naming the ones PostgreSQL reads."""
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        codec = ""
    if codec not in _PG_ENCODINGS:
        known = "utf-8, windows-1252, latin-1, iso-8859-15, windows-1250, windows-1251, shift_jis, gbk, big5"
        raise LoadError(
            f"encoding {name!r} is not one PostgreSQL reads CSV in; use one such as {known}, or save "
            "the file as UTF-8"
        )
    return "utf-8" if codec == "utf-8-sig" else codec


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


def build_plan(
    source: Input,
    fmt: Format,
    overrides: dict[str, str] | None,
    sample_rows: int,
    *,
    read_options: ReadOptions | None = None,
    rewrite: bool = False,
) -> LoadPlan:
    """Read enough of the input to know its columns and types (CPU-bound: run in a thread).

    `read_options` apply to CSV files and workbooks only; `rewrite` writes a CSV again
    (missing words as NULL) even where the sample saw no need.
    """
    options = read_options or ReadOptions()
    if fmt == "csv":
        if options.sheet is not None:
            raise LoadError(
                "sheet applies to workbooks (.xlsx, .xls, .ods) only, not csv. Leave it out for this file."
            )
        reading = _csv_reading(options, source)
        return _csv_plan(source, overrides, sample_rows, reading, rewrite)
    if fmt == "excel":
        if options.encoding is not None:
            raise LoadError(
                "encoding applies to CSV files only: a workbook's text is Unicode already. Leave it out."
            )
        with source.open() as f:
            sheet = read_sheet(source.label, f, options.sheet)
        plan = _csv_plan(
            Input(source.label, data=sheet.csv),
            overrides,
            sample_rows,
            _csv_reading(options, source),
            rewrite,
        )
        plan.format, plan.locate = "excel", sheet.locate
        plan.warnings[:0] = sheet.warnings
        return plan
    for option in options.given():
        applies = {"encoding": "CSV files", "sheet": "workbooks (.xlsx, .xls, .ods)"}
        raise LoadError(
            f"{option} applies to {applies.get(option, 'CSV files and workbooks')} only, not {fmt}. "
            "Leave it out for this file."
        )
    if fmt == "parquet":
        return _parquet_plan(source, overrides)
    return _json_plan(source, overrides)


# -- CSV -------------------------------------------------------------------------


def _csv_reading(options: ReadOptions, source: Input) -> _CsvReading:
    """How to read CSV text written as `options` say, or LoadError naming a bad option."""
    null_values, encoding, decimal = options.null_values, options.encoding, options.decimal
    thousands, date_order = options.thousands, options.date_order
    codec = "utf-8" if encoding is None else _csv_codec(encoding)
    if codec != "utf-8" and source.path is None:
        raise LoadError(
            "encoding applies to a file given by `path`: `content` arrives as text already. "
            "Leave encoding out."
        )
    if decimal not in (None, ".", ","):
        raise LoadError(f'decimal {decimal!r}: give "." (the default) or "," (numbers written 1.234,5)')
    order = None if date_order is None else date_order.upper()
    if order is not None and order not in DATE_ORDERS:
        raise LoadError(
            f'date_order {date_order!r}: give "DMY" (dates written 15/03/2024) or "MDY" (03/15/2024); '
            "dates written year first (2024-03-15, 2024/03/15) need none"
        )
    if thousands is not None and (thousands not in THOUSANDS or thousands == (decimal or ".")):
        raise LoadError(
            f'thousands {thousands!r}: give the mark between thousands, one of "," (1,234.5), '
            f'"." (1.234,5 with decimal=","), "\'" (1\'234.5) or " " (1 234,5), other than the '
            "decimal mark"
        )
    missing = MISSING_MARKERS if null_values is None else frozenset(null_values) - {""}
    return _CsvReading(missing, codec, number_format(decimal or ".", thousands), order)


@dataclass(frozen=True)
class _CsvReading:
    missing: frozenset[str]  # words that mean NULL in a column of numbers, dates or booleans
    codec: str  # the file's encoding, as Python names it
    numbers: NumberFormat  # the decimal mark, and what groups thousands
    date_order: str | None  # "DMY", "MDY", or None: only year-first dates


def _csv_plan(
    source: Input, overrides: dict[str, str] | None, sample_rows: int, reading: _CsvReading, rewrite: bool
) -> LoadPlan:
    missing, codec = reading.missing, reading.codec
    # A UTF-8 byte order mark is dropped; COPY skips it with the header line.
    text_codec = "utf-8-sig" if codec == "utf-8" else codec
    head = source.head(64 * 1024).decode(text_codec, errors="replace")
    if not head.strip():
        raise LoadError(f"{source.label}: the file is empty; a CSV needs a header row")
    try:
        delimiter = csv.Sniffer().sniff(head.split("\n", 20)[0], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    samples: list[list[str]] = []
    with source.open() as raw:
        reader = csv.reader(io.TextIOWrapper(raw, encoding=text_codec, newline=""), delimiter=delimiter)
        try:
            headers = next(reader)
            for row in reader:
                if len(row) != len(headers):
                    raise LoadError(
                        f"{source.label}: line {reader.line_num}: malformed CSV row with {len(row)} fields, "
                        f"the header has {len(headers)}. Fix the row; nothing was loaded."
                    )
                samples.append(row)
                if len(samples) >= sample_rows:
                    break
        except UnicodeDecodeError as exc:
            advice = (
                "Save the file as UTF-8, or give its `encoding` (windows-1252 for Excel's CSV on "
                "Western Windows)"
                if codec == "utf-8"
                else "Give the file's own `encoding`, or save it as UTF-8"
            )
            raise LoadError(
                f"{source.label}: line {_undecodable_line(source, text_codec)}: not {exc.encoding} "
                f"({exc.reason}). {advice}; nothing was loaded."
            ) from None
        except csv.Error as exc:
            raise LoadError(
                f"{source.label}: line {reader.line_num}: malformed CSV ({exc}); nothing was loaded"
            ) from None
    samples.extend(_csv_tail(source, delimiter, len(headers), codec))
    names = column_names(headers)
    columns: list[ColumnSpec] = [
        {
            "name": name,
            "type": infer_text_type(
                (row[i] for row in samples),
                missing,
                reading.numbers.decimal,
                reading.date_order,
                reading.numbers.thousands,
            ),
            "source_name": header,
        }
        for i, (name, header) in enumerate(zip(names, headers, strict=True))
    ]
    chosen = _apply_types(columns, overrides)
    warnings = [
        f"column {c['name']!r} was loaded as text: it {hint}."
        for i, c in enumerate(columns)
        if c["type"] == "text"
        and c["name"] not in chosen
        and (
            hint := text_hint(
                (row[i] for row in samples),
                missing,
                reading.numbers.decimal,
                reading.date_order,
                reading.numbers.thousands,
            )
        )
    ]
    typed = [i for i, c in enumerate(columns) if c["type"] != "text"]
    # With a decimal comma or marks between thousands every number column is written again,
    # `1.234,5` and `1,234.5` as `1234.5`.
    numeric = (
        {}
        if reading.numbers.plain
        else {i: columns[i]["name"] for i in typed if columns[i]["type"] in NUMERIC_TYPES}
    )
    if missing and typed and not rewrite:
        rewrite = any(row[i] in missing for row in samples for i in typed)
    rewrite = rewrite or bool(numeric)
    feed = (
        _stream_rewritten(source, delimiter, len(headers), typed, numeric, reading)
        if rewrite
        else _stream(source)
    )
    # Arrow writes what it rewrites as UTF-8; the file's own bytes go in its encoding.
    encoding = "UTF8" if rewrite else _PG_ENCODINGS[codec]
    options = sql.SQL("(FORMAT csv, HEADER true, DELIMITER {}, ENCODING {}, FREEZE true)").format(
        sql.Literal(delimiter), sql.Literal(encoding)
    )
    return LoadPlan(
        "csv",
        columns,
        options,
        source.size(),
        feed,
        chosen=chosen,
        missing=missing,
        rewritten=rewrite,
        date_style=None if reading.date_order is None else f"ISO, {reading.date_order}",
        warnings=warnings,
    )


def _undecodable_line(source: Input, codec: str) -> int:
    """The line of the first byte that `codec` cannot decode (the CSV reader's own count
    runs behind: the text is decoded a block ahead of it)."""
    decoder = codecs.getincrementaldecoder(codec)()
    line = 1
    with source.open() as raw:
        while chunk := raw.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return line + chunk.count(b"\n", 0, max(exc.start, 0))
            line += chunk.count(b"\n")
    return line


def _csv_tail(source: Input, delimiter: str, width: int, codec: str) -> list[list[str]]:
    """The file's last rows: a type that changes late is caught before COPY starts."""
    size = source.size()
    if size <= 256 * 1024:
        return []
    with source.open() as raw:
        raw.seek(size - 256 * 1024)
        text = raw.read().decode(codec, errors="replace")
    lines = text.split("\n")[1:]
    try:
        rows = list(csv.reader(lines[-1000:], delimiter=delimiter))
    except csv.Error:
        return []
    return [row for row in rows if len(row) == width]


def _stream(source: Input) -> Feed:
    async def feed(copy: AsyncCopy, progress: Progress | None) -> None:
        total, done = source.size(), 0
        with source.open() as f:
            while chunk := f.read(CHUNK):
                await copy.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)

    return feed


def _stream_rewritten(
    source: Input,
    delimiter: str,
    width: int,
    typed: list[int],
    numeric: dict[int, str],
    reading: _CsvReading,
) -> Feed:
    """Parse the CSV with Arrow and write it again: missing words as NULL in the `typed`
    columns, and in the `numeric` ones (by index, with their names; a decimal comma, marks
    between thousands) `1.234,5` and `1,234.5` as `1234.5`, refusing a value written
    otherwise rather than misreading it (`1.5` with a decimal comma).

    Every other field keeps what COPY would have read: an unquoted empty field stays NULL,
    a quoted one an empty string; quoted newlines stay inside their fields, so COPY's
    line numbers are still the file's. Arrow parses in blocks, in a worker thread.
    """

    async def feed(copy: AsyncCopy, progress: Progress | None) -> None:
        try:
            import pyarrow as pa
            import pyarrow.compute as pc
            import pyarrow.csv as pacsv
        except ImportError:  # pragma: no cover - exercised only without the extra
            raise LoadError("rewriting a CSV needs pyarrow: pip install 'bastion[analytics]'") from None
        names = [f"c{i}" for i in range(width)]
        nullable = frozenset(typed)
        words = pa.array(sorted(reading.missing), pa.string())
        null = pa.scalar(None, pa.string())
        written = pacsv.WriteOptions(include_header=False, delimiter=delimiter)
        total = source.size()

        def next_block(reader: Any) -> bytes | None:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return None
            # Compute functions are generated at import, so the type checker cannot see them.
            is_in, if_else = pc.is_in, pc.if_else  # pyright: ignore[reportAttributeAccessIssue]
            columns: list[Any] = []
            for i, column in enumerate(batch.columns):
                if i in nullable:
                    column = if_else(is_in(column, value_set=words), null, column)
                if i in numeric:
                    column = _plain_numbers(pc, column, reading.numbers, numeric[i], source.label)
                columns.append(column)
            out = io.BytesIO()
            pacsv.write_csv(pa.RecordBatch.from_arrays(columns, names=names), out, written)
            return out.getvalue()

        with source.open() as raw:
            try:
                reader = pacsv.open_csv(
                    raw,
                    read_options=pacsv.ReadOptions(
                        column_names=names, skip_rows=1, block_size=CHUNK, encoding=reading.codec
                    ),
                    parse_options=pacsv.ParseOptions(
                        delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types=dict.fromkeys(names, pa.string()),
                        strings_can_be_null=True,
                        quoted_strings_can_be_null=False,
                        null_values=[""],
                    ),
                )
                await copy.write(delimiter.join(names).encode() + b"\n")  # the header COPY skips
                # Arrow writes the next block while PostgreSQL takes this one: two cores busy.
                send, receive = anyio.create_memory_object_stream[bytes](2)

                async def produce() -> None:
                    async with send:
                        while (block := await anyio.to_thread.run_sync(next_block, reader)) is not None:
                            await send.send(block)

                async with anyio.create_task_group() as tasks, receive:
                    tasks.start_soon(produce)
                    async for block in receive:
                        await copy.write(block)
                        if progress is not None:
                            progress(min(raw.tell(), total), total)
            except pa.ArrowInvalid as exc:
                raise LoadError(f"{source.label}: malformed CSV ({exc}); nothing was loaded") from None
            except BaseExceptionGroup as group:
                raise _only(group, source.label) from None

    return feed


def _only(group: BaseExceptionGroup[BaseException], label: str) -> BaseException:
    """The one error a task group failed with (a malformed block, a refused value, the
    database's own), as the loader reports it; the group itself when there are several."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        else:
            leaves.append(error)
    if len(leaves) != 1:
        return group
    import pyarrow as pa

    if isinstance(leaves[0], pa.ArrowInvalid):
        return LoadError(f"{label}: malformed CSV ({leaves[0]}); nothing was loaded")
    return leaves[0]


def _plain_numbers(pc: Any, column: Any, numbers: NumberFormat, name: str, label: str) -> Any:
    """An Arrow column of numbers written as `numbers` says, as PostgreSQL reads them."""
    written = pc.match_substring_regex(column, pattern=numbers.pattern.pattern)
    odd = pc.and_(pc.is_valid(column), pc.invert(written))
    if pc.any(odd).as_py():
        value = column.filter(odd)[0].as_py()
        raise LoadError(
            f"{label}: {value!r} in column {name!r} is not a number written {numbers.described}, as "
            f"the column's other values are; fix it, or pass column_types={{{name!r}: 'text'}}. "
            "Nothing was loaded."
        )
    for mark in numbers.groups:
        column = pc.replace_substring(column, pattern=mark, replacement="")
    if numbers.decimal != ".":
        column = pc.replace_substring(column, pattern=numbers.decimal, replacement=".")
    return column


# -- Parquet ---------------------------------------------------------------------


def _is_aware_timestamp(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_timestamp(arrow_type) and arrow_type.tz is not None)


def _arrow_type(arrow_type: Any) -> str:
    import pyarrow as pa

    t = pa.types
    checks: list[tuple[Callable[[Any], bool], str]] = [
        (t.is_boolean, "boolean"),
        (t.is_int8, "smallint"),
        (t.is_int16, "smallint"),
        (t.is_uint8, "smallint"),
        (t.is_int32, "integer"),
        (t.is_uint16, "integer"),
        (t.is_integer, "bigint"),
        (t.is_floating, "double precision"),
        (t.is_decimal, "numeric"),
        (t.is_date, "date"),
        (t.is_time, "time"),
        (t.is_duration, "interval"),
        (_is_aware_timestamp, "timestamptz"),
        (t.is_timestamp, "timestamp"),
        (t.is_string, "text"),
        (t.is_large_string, "text"),
        (t.is_binary, "bytea"),
        (t.is_large_binary, "bytea"),
    ]
    for check, pg in checks:
        if check(arrow_type):
            return pg
    return "jsonb"


def _parquet_plan(source: Input, overrides: dict[str, str] | None) -> LoadPlan:
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise LoadError("loading Parquet needs pyarrow: pip install 'bastion[analytics]'") from None
    try:
        with source.open() as f:
            table = pq.read_table(f)
    except (pa.ArrowException, OSError) as exc:
        raise LoadError(f"{source.label}: not a readable Parquet file ({exc}); nothing was loaded") from None
    headers = [str(n) for n in table.column_names]
    names = column_names(headers)
    columns: list[ColumnSpec] = []
    arrays: list[Any] = []
    for name, header, column in zip(names, headers, table.columns, strict=True):
        pg = _arrow_type(column.type)
        if pg == "jsonb":
            column = pa.array(
                [None if v is None else orjson.dumps(v, default=str).decode() for v in column.to_pylist()]
            )
        elif pg == "bytea":
            column = pa.array([None if v is None else "\\x" + v.hex() for v in column.to_pylist()])
        elif pg == "interval":
            column = pa.array(
                [None if v is None else f"{v.total_seconds()} seconds" for v in column.to_pylist()]
            )
        columns.append({"name": name, "type": pg, "source_name": header})
        arrays.append(column)
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(arrays, names=names), buffer, pacsv.WriteOptions(include_header=True))
    data = buffer.getvalue()
    options = sql.SQL("(FORMAT csv, HEADER true, ENCODING 'UTF8', FREEZE true)")
    chosen = _apply_types(columns, overrides)
    return LoadPlan(
        "parquet",
        columns,
        options,
        len(data),
        _stream(Input(source.label, data=data)),
        lambda line: f"row {line - 1}",
        chosen=chosen,
    )


# -- JSON ------------------------------------------------------------------------


def _json_records(source: Input) -> list[tuple[str, Any]]:
    """(where, record) pairs from a JSON array, JSON lines, or one JSON object: a row of its
    own, or, when it holds exactly one array of objects (`{"data": [...]}`, as APIs export),
    those objects."""
    with source.open() as f:
        data = f.read()
    data = data.removeprefix(b"\xef\xbb\xbf")
    text = data.lstrip(b" \t\r\n")
    if text.startswith(b"["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise LoadError(f"{source.label}: not valid JSON ({exc}); nothing was loaded") from None
        return [(f"element {i}", item) for i, item in enumerate(items)]
    records: list[tuple[str, Any]] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            if not records and text.startswith(b"{"):
                return _json_object(source, _json_document(source, text))  # spread over lines
            raise LoadError(
                f"{source.label}: line {number}: not valid JSON ({exc}); nothing was loaded"
            ) from None
    if len(records) == 1 and isinstance(records[0][1], dict):
        return _json_object(source, cast(dict[str, Any], records[0][1]))
    return records


def _json_document(source: Input, text: bytes) -> dict[str, Any]:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise LoadError(
            f"{source.label}: not valid JSON ({exc}); expected JSON lines, an array of objects or one "
            "object; nothing was loaded"
        ) from None


def _json_object(source: Input, document: dict[str, Any]) -> list[tuple[str, Any]]:
    arrays = [
        key
        for key, value in document.items()
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value)
    ]
    if not arrays:
        return [("the object", document)]
    if len(arrays) > 1:
        named = ", ".join(repr(key) for key in arrays[:5])
        raise LoadError(
            f"{source.label}: one JSON object with several arrays of rows ({named}): load one of them "
            "as its own file (an array of objects, or one object per line); nothing was loaded"
        )
    key = arrays[0]
    return [(f"{key}[{i}]", item) for i, item in enumerate(document[key])]


def _json_value(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "jsonb":
        return Jsonb(value)
    if pg_type == "text" and not isinstance(value, str):
        return orjson.dumps(value).decode()
    return value


def _json_plan(source: Input, overrides: dict[str, str] | None) -> LoadPlan:
    records = _json_records(source)
    keys: dict[str, None] = {}
    for where, record in records:
        if not isinstance(record, dict):
            raise LoadError(
                f"{source.label}: {where}: expected a JSON object per row, got {type(record).__name__}"
            )
        keys.update(dict.fromkeys(record))  # pyright: ignore[reportUnknownArgumentType]
    headers = list(keys)
    if not headers:
        raise LoadError(f"{source.label}: no fields found; a JSON dataset needs objects with fields")
    names = column_names(headers)
    columns: list[ColumnSpec] = [
        {"name": name, "type": infer_json_type(r.get(h) for _, r in records), "source_name": h}
        for name, h in zip(names, headers, strict=True)
    ]
    chosen = _apply_types(columns, overrides)
    types = [c["type"] for c in columns]

    async def feed(copy: AsyncCopy, progress: Progress | None) -> None:
        total = len(records)
        for index, (_, record) in enumerate(records, start=1):
            await copy.write_row([_json_value(record.get(h), t) for h, t in zip(headers, types, strict=True)])
            if progress is not None and (index % 10_000 == 0 or index == total):
                progress(index, total)

    def locate(line: int) -> str:
        return records[line - 1][0] if 0 < line <= len(records) else f"row {line}"

    return LoadPlan("json", columns, sql.SQL("(FREEZE true)"), len(records), feed, locate, chosen=chosen)
