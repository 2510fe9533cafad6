"""CSV into a `LoadPlan`: types inferred from a sample (the first rows and the last), the
file streamed to COPY byte for byte, exactly as `psql \\copy` does; a CSV whose columns of
numbers, dates or booleans hold missing-value words (`NA`, `NaN`, ...), decimal commas or
grouped thousands is parsed by Arrow and written again with those fields as COPY reads
them. A workbook's sheet, written as CSV (excel.py), takes the same way."""

from __future__ import annotations

import codecs
import csv
import io
import logging
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from psycopg import AsyncCopy, sql

from bastion.missing import MISSING_MARKERS
from servers.analytics.catalog import ColumnSpec
from servers.analytics.errors import LoadError
from servers.analytics.infer import (
    DATE_ORDERS,
    NUMERIC_TYPES,
    THOUSANDS,
    NumberFormat,
    infer_text_type,
    number_format,
    text_hint,
)
from servers.analytics.load_plan import (
    CHUNK,
    Feed,
    Input,
    LoadPlan,
    Progress,
    ReadOptions,
    apply_types,
    stream,
)
from servers.analytics.names import column_names

__all__ = ["CsvReading", "csv_plan", "csv_reading"]

logger = logging.getLogger(__name__)

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


def csv_reading(options: ReadOptions, source: Input) -> CsvReading:
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
    return CsvReading(missing, codec, number_format(decimal or ".", thousands), order)


@dataclass(frozen=True)
class CsvReading:
    missing: frozenset[str]  # words that mean NULL in a column of numbers, dates or booleans
    codec: str  # the file's encoding, as Python names it
    numbers: NumberFormat  # the decimal mark, and what groups thousands
    date_order: str | None  # "DMY", "MDY", or None: only year-first dates


def csv_plan(
    source: Input, overrides: dict[str, str] | None, sample_rows: int, reading: CsvReading, rewrite: bool
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
    chosen = apply_types(columns, overrides)
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
        else stream(source)
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


def _stream_rewritten(
    source: Input,
    delimiter: str,
    width: int,
    typed: list[int],
    numeric: dict[int, str],
    reading: CsvReading,
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
