"""Excel and OpenDocument workbooks (.xlsx, .xlsm, .xlsb, .xls, .ods): one sheet as CSV text.

The sheet is read with python-calamine (the Rust `calamine` reader that pandas also uses)
and written out as CSV, which then takes the CSV path: the same type inference,
missing-value words, day- or month-first dates and warnings as a CSV file. Cells keep what
the workbook stored: numbers as numbers (a whole number as an integer: calamine reads
every number as a float), dates and times in ISO 8601, booleans as true and false, text
as written.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from typing import IO, Any

from servers.analytics.errors import LoadError

__all__ = ["EXCEL_EXTENSIONS", "MAX_CELLS", "Sheet", "looks_like_workbook", "read_sheet"]

EXCEL_EXTENSIONS = (".xlsx", ".xlsm", ".xlsb", ".xls", ".ods")
# A sheet is read whole into memory (a cell costs tens of bytes there): past this many
# cells, CSV (which streams) is the way in.
MAX_CELLS = 20_000_000
_ZIP, _OLE2 = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_EXACT = 2**53  # floats hold every integer up to here exactly


@dataclass
class Sheet:
    """One sheet as CSV bytes, and where its rows were in the workbook."""

    name: str
    csv: bytes
    first_row: int  # the workbook's row number (1-based) of the CSV's first line
    warnings: list[str] = field(default_factory=list[str])

    def locate(self, line: int) -> str:
        """Where CSV line `line` (1-based) came from."""
        return f"sheet {self.name!r} row {self.first_row + line - 1}"


def looks_like_workbook(head: bytes) -> bool:
    """Whether bytes start as a workbook does (a zip, as .xlsx and .ods are, or OLE2, as .xls is)."""
    return head.startswith(_OLE2) or head.startswith(_ZIP)


def read_sheet(label: str, data: IO[bytes], sheet: str | None) -> Sheet:
    """Sheet `sheet` (a name, or a 1-based position) of the workbook in `data`, else its first
    visible worksheet, as CSV."""
    import python_calamine as calamine

    try:
        workbook = calamine.CalamineWorkbook.from_filelike(data)
    except calamine.PasswordError:
        raise LoadError(f"{label}: the workbook is password-protected; save it without a password") from None
    except Exception as exc:  # calamine's errors for a corrupt or foreign file share no base
        raise LoadError(
            f"{label}: not a workbook that can be read ({exc}); save it as .xlsx, or export the sheet "
            "as CSV. Nothing was loaded"
        ) from None
    try:
        names = [m.name for m in workbook.sheets_metadata if m.typ == calamine.SheetTypeEnum.WorkSheet]
        visible = [
            m.name
            for m in workbook.sheets_metadata
            if m.typ == calamine.SheetTypeEnum.WorkSheet and m.visible == calamine.SheetVisibleEnum.Visible
        ]
        name = _choose(label, names, visible, sheet)
        table = workbook.get_sheet_by_name(name)
        if table.height * table.width > MAX_CELLS:
            raise LoadError(
                f"{label}: sheet {name!r} has {table.height:,} rows of {table.width:,} columns, over the "
                f"{MAX_CELLS:,} cells read from a workbook; export it as CSV and load that. Nothing was "
                "loaded"
            )
        rows = table.to_python(skip_empty_area=True)
        start = table.start
    finally:
        workbook.close()
    while rows and not any(cell != "" for cell in rows[-1]):
        rows.pop()
    if not rows:
        raise LoadError(f"{label}: sheet {name!r} is empty; nothing was loaded")
    warnings: list[str] = []
    if sheet is None and len(names) > 1:
        others = ", ".join(repr(n) for n in names if n != name)
        warnings.append(
            f"the workbook has other sheets ({others}); {name!r} was loaded. Pass `sheet` for another."
        )
    return Sheet(name, _as_csv(rows), (start[0] if start else 0) + 1, warnings)


def _choose(label: str, names: list[str], visible: list[str], sheet: str | None) -> str:
    if not names:
        raise LoadError(f"{label}: the workbook has no worksheet; nothing was loaded")
    if sheet is None:
        return (visible or names)[0]
    if sheet in names:
        return sheet
    if sheet.isdigit() and 1 <= int(sheet) <= len(names):
        return names[int(sheet) - 1]
    listed = ", ".join(repr(n) for n in names)
    raise LoadError(
        f"{label}: no sheet {sheet!r}; the workbook's sheets are {listed} (or their position, from 1)"
    )


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < _EXACT else repr(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _as_csv(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")
