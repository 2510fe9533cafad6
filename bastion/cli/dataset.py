"""`bastion dataset ...`: manage analytics datasets from the command line.

`bastion dataset load FILE --name NAME` loads a CSV, Parquet or JSON file into the
instance at BASTION_HOME with a progress bar, through the same loader as the
analytics server's `load_dataset` tool (atomic replace, types inferred or given).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import anyio
import typer

__all__ = ["dataset_app"]

dataset_app = typer.Typer(help="Analytics datasets: load files for SQL queries.", no_args_is_help=True)


def _column_types(pairs: list[str]) -> dict[str, str]:
    types: dict[str, str] = {}
    for pair in pairs:
        column, sep, kind = pair.partition("=")
        if not sep or not column or not kind:
            raise typer.BadParameter(f"--type {pair!r}: expected COLUMN=TYPE, e.g. --type zip=text")
        types[column] = kind
    return types


@dataset_app.command("load")
def load(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV, Parquet, JSON (lines, array or one object) or workbook (.xlsx, .xls, .ods)"
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="dataset name: lowercase letters, digits, _")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet, json or excel (default: by extension)")
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="override a column's type: COLUMN=TYPE (repeatable)"),
    ] = None,
    nulls: Annotated[
        list[str] | None,
        typer.Option(
            "--null",
            help="CSV: a word that means a missing value in a column of numbers, dates or booleans "
            "(repeatable; replaces the defaults NA, N/A, #N/A, NaN, NULL, None, ...; --null '' keeps "
            "every value as written)",
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(help="CSV: the file's character encoding when not UTF-8, e.g. windows-1252"),
    ] = None,
    decimal: Annotated[
        str | None,
        typer.Option(help="CSV: ',' when numbers are written 1.234,5 (the point groups thousands)"),
    ] = None,
    date_order: Annotated[
        str | None,
        typer.Option(help="CSV: DMY when dates are written 15/03/2024, MDY when 03/15/2024"),
    ] = None,
    thousands: Annotated[
        str | None,
        typer.Option(help="CSV: the mark between thousands in numbers, ',' for 1,234.5"),
    ] = None,
    sheet: Annotated[
        str | None,
        typer.Option(help="workbook (.xlsx, .xls, .ods): the sheet to load, by name or position from 1"),
    ] = None,
    description: Annotated[str | None, typer.Option(help="what the dataset holds")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """Load FILE into dataset NAME (replacing it atomically if it exists), showing progress."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from bastion.logs import configure_logging
    from bastion.settings import load_settings
    from servers.analytics import ReadOptions, load_file
    from servers.analytics.errors import AnalyticsError

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, component="dataset")
    overrides = _column_types(types or [])
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        disable=quiet,
        transient=False,
    )
    task = bar.add_task(f"loading {file.name}", total=None)
    path = file.expanduser().absolute()  # the server reads a relative path under uploads/

    def progress(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    async def go():
        return await load_file(
            settings,
            path,
            name,
            fmt=fmt,
            column_types=overrides,
            # typer gives [] for an option never given
            read_options=ReadOptions(nulls or None, encoding, decimal, thousands, date_order, sheet),
            description=description,
            progress=progress,
        )

    try:
        with bar:
            record = anyio.run(go)
    except AnalyticsError as exc:
        sys.stderr.write(f"bastion: error: {exc.message}\n")
        raise typer.Exit(2) from None
    columns = ", ".join(f"{c['name']} {c['type']}" for c in record.columns)
    typer.echo(f"loaded {record.row_count} rows into dataset {record.name!r} ({columns})")
    for warning in record.warnings:
        sys.stderr.write(f"bastion: warning: {warning}\n")
