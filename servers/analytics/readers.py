"""Readers: turn a CSV, Parquet, JSON or workbook input into columns and a COPY feed.

`detect_format` names the format (the caller's `format`, the file's extension, or its
first bytes) and `build_plan` hands the input to the reader of that format: csv_reader
(and excel, whose sheet is written as CSV), parquet_reader or json_reader. Each returns
a `LoadPlan` (load_plan.py): the table's columns, the COPY options and the feed.
"""

from __future__ import annotations

from servers.analytics.csv_reader import csv_plan, csv_reading
from servers.analytics.errors import LoadError
from servers.analytics.excel import EXCEL_EXTENSIONS, looks_like_workbook, read_sheet
from servers.analytics.json_reader import json_plan
from servers.analytics.load_plan import FORMATS, Format, Input, LoadPlan, Progress, ReadOptions
from servers.analytics.parquet_reader import parquet_plan

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

# The read options each format takes (the others are refused, naming what they are for).
_CSV_OPTIONS = frozenset({"null_values", "decimal", "thousands", "date_order"})
_TAKES: dict[str, frozenset[str]] = {
    "csv": _CSV_OPTIONS | {"encoding"},
    "excel": _CSV_OPTIONS | {"sheet"},  # a workbook's text is Unicode already: no encoding
}
_APPLIES_TO = {"encoding": "CSV files", "sheet": "workbooks (.xlsx, .xls, .ods)"}


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
    for option in options.given():
        if option not in _TAKES.get(fmt, ()):
            raise LoadError(
                f"{option} applies to {_APPLIES_TO.get(option, 'CSV files and workbooks')} only, not "
                f"{fmt}. Leave it out for this file."
            )
    if fmt == "csv":
        return csv_plan(source, overrides, sample_rows, csv_reading(options, source), rewrite)
    if fmt == "excel":
        with source.open() as f:
            sheet = read_sheet(source.label, f, options.sheet)
        workbook_text = Input(source.label, data=sheet.csv)
        plan = csv_plan(workbook_text, overrides, sample_rows, csv_reading(options, source), rewrite)
        plan.format, plan.locate = "excel", sheet.locate
        plan.warnings[:0] = sheet.warnings
        return plan
    if fmt == "parquet":
        return parquet_plan(source, overrides)
    return json_plan(source, overrides)
