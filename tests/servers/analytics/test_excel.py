"""Workbooks (.xlsx) load as datasets: one sheet, typed as the workbook stored it."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import openpyxl

from bastion.mcp import ServerRuntime
from servers.analytics import AnalyticsConfig
from servers.analytics.service import configure
from tests.servers.analytics.conftest import ClientFactory, unique


def _workbook(path: Path, sheets: dict[str, list[list[object]]], *, at: str = "A1") -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)  # pyright: ignore[reportArgumentType]
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        first = sheet[at]
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                sheet.cell(first.row + r, first.column + c, value)  # pyright: ignore[reportArgumentType]
    book.save(path)
    return path


SALES = [
    ["Region", "Day", "At", "Amount", "Units", "Flag", "Code"],
    ["north", dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 10, 30), 10.5, 3, True, "007"],
    ["south", dt.date(2024, 1, 3), dt.datetime(2024, 1, 3, 11, 0), 20, 4, False, "012"],
    ["east", None, None, 7.25, None, None, None],
]


async def test_a_sheet_loads_with_the_types_the_workbook_stored(tools: ClientFactory, tmp_path: Path) -> None:
    book = _workbook(tmp_path / "sales.xlsx", {"Sales": SALES})
    name = unique("xlsx")
    async with tools(None) as c:
        loaded = await c.ok("load_dataset", name=name, path=str(book))
        rows = await c.ok("query", sql=f"SELECT * FROM {name} ORDER BY region")
        await c.ok("drop_dataset", name=name)
    assert [(col["name"], col["type"]) for col in loaded["columns"]] == [
        ("region", "text"),
        ("day", "date"),
        ("at", "timestamp"),
        ("amount", "numeric"),
        ("units", "bigint"),  # whole numbers, which a workbook keeps as floats
        ("flag", "boolean"),
        ("code", "text"),  # leading zeros: an identifier, not a number
    ]
    assert loaded["format"] == "excel" and loaded["warnings"] == []
    assert rows["rows"] == [
        ["east", None, None, 7.25, None, None, None],
        ["north", "2024-01-02", "2024-01-02T10:30:00", 10.5, 3, True, "007"],
        ["south", "2024-01-03", "2024-01-03T11:00:00", 20, 4, False, "012"],
    ]


async def test_the_sheet_is_chosen_by_name_or_position_and_the_others_are_named(
    tools: ClientFactory, tmp_path: Path
) -> None:
    book = _workbook(
        tmp_path / "book.xlsx",
        {"Sales": SALES, "Costs": [["item", "cost"], ["rent", 1200], ["power", 80.5]]},
    )
    first, by_name, by_position = unique("first"), unique("named"), unique("nth")
    async with tools(None) as c:
        default = await c.ok("load_dataset", name=first, path=str(book))
        named = await c.ok("load_dataset", name=by_name, path=str(book), sheet="Costs")
        nth = await c.ok("load_dataset", name=by_position, path=str(book), sheet="2")
        missing = await c.error("load_dataset", name=unique("none"), path=str(book), sheet="Budget")
        for name in (first, by_name, by_position):
            await c.ok("drop_dataset", name=name)
    assert default["row_count"] == 3
    assert default["warnings"] == [
        "the workbook has other sheets ('Costs'); 'Sales' was loaded. Pass `sheet` for another."
    ]
    assert named["row_count"] == nth["row_count"] == 2 and named["warnings"] == []
    assert [c["name"] for c in nth["columns"]] == ["item", "cost"]
    assert "no sheet 'Budget'; the workbook's sheets are 'Sales', 'Costs'" in missing


async def test_a_table_below_a_title_loads_and_a_bad_cell_is_named_by_its_row(
    tools: ClientFactory, tmp_path: Path
) -> None:
    rows: list[list[object]] = [["when", "count"], ["2024-01-01", 3], ["2024-01-02", "many"]]
    rows.append(["2024-01-03", 5])
    book = _workbook(tmp_path / "offset.xlsx", {"Log": rows}, at="B3")
    name = unique("offset")
    async with tools(None) as c:
        as_text = await c.ok("load_dataset", name=name, path=str(book))
        forced = await c.error("load_dataset", name=name, path=str(book), column_types={"count": "bigint"})
        after = await c.ok("query", sql=f"SELECT count(*) FROM {name}")
        await c.ok("drop_dataset", name=name)
    assert [(col["name"], col["type"]) for col in as_text["columns"]] == [("when", "date"), ("count", "text")]
    # The header is on the sheet's row 3, so the bad value is on its row 5.
    assert "sheet 'Log' row 5" in forced and '"many"' in forced
    assert after["rows"] == [[3]]  # the failed reload kept the dataset as it was


async def test_a_missing_value_word_after_the_sample_loads_as_null_as_in_a_csv(
    tools: ClientFactory, runtime: ServerRuntime, tmp_path: Path
) -> None:
    configure(runtime, AnalyticsConfig(inference_rows=5))
    rows: list[list[object]] = [["id", "v"], *([i, i + 0.5] for i in range(1, 30)), [30, "NA"], [31, None]]
    book = _workbook(tmp_path / "late.xlsx", {"Late": rows})
    name = unique("latena")
    async with tools(None) as c:
        loaded = await c.ok("load_dataset", name=name, path=str(book))
        nulls = await c.ok("query", sql=f"SELECT id, v FROM {name} WHERE v IS NULL ORDER BY id")
        await c.ok("drop_dataset", name=name)
    assert [c["type"] for c in loaded["columns"]] == ["bigint", "numeric"]
    assert nulls["rows"] == [[30, None], [31, None]]


async def test_a_workbook_uploads_as_base64_content(tools: ClientFactory, tmp_path: Path) -> None:
    book = _workbook(tmp_path / "up.xlsx", {"Sales": SALES})
    content = base64.b64encode(book.read_bytes()).decode()
    name = unique("upload")
    async with tools(None) as c:
        loaded = await c.ok("load_dataset", name=name, content=content, format="xlsx")
        not_base64 = await c.error("load_dataset", name=unique("bad"), content="a,b\n1,2\n", format="excel")
        await c.ok("drop_dataset", name=name)
    assert loaded["row_count"] == 3
    assert "A workbook's content must be base64-encoded bytes" in not_base64


async def test_bad_workbooks_and_misplaced_options_are_refused_clearly(
    tools: ClientFactory, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really a workbook")
    empty = _workbook(tmp_path / "empty.xlsx", {"Blank": []})
    good = _workbook(tmp_path / "good.xlsx", {"Sales": SALES})
    csv = tmp_path / "plain.csv"
    csv.write_text("a,b\n1,2\n")
    async with tools(None) as c:
        unreadable = await c.error("load_dataset", name=unique("x"), path=str(broken))
        blank = await c.error("load_dataset", name=unique("x"), path=str(empty))
        encoded = await c.error("load_dataset", name=unique("x"), path=str(good), encoding="latin-1")
        sheet_for_csv = await c.error("load_dataset", name=unique("x"), path=str(csv), sheet="Sales")
    assert "not a workbook that can be read" in unreadable and "Nothing was loaded" in unreadable
    assert "sheet 'Blank' is empty" in blank
    assert "encoding applies to CSV files only" in encoded
    assert "sheet applies to workbooks (.xlsx, .xls, .ods) only, not csv" in sheet_for_csv


async def test_times_of_day_load_as_time_from_a_workbook_and_a_csv(
    tools: ClientFactory, tmp_path: Path
) -> None:
    book = _workbook(tmp_path / "shifts.xlsx", {"Shifts": [["shift", "starts"], ["A", dt.time(9, 15)]]})
    csv = tmp_path / "shifts.csv"
    csv.write_text("shift,starts\nA,09:15\nB,17:30:00\n")
    from_book, from_csv = unique("tbook"), unique("tcsv")
    async with tools(None) as c:
        book_loaded = await c.ok("load_dataset", name=from_book, path=str(book))
        csv_loaded = await c.ok("load_dataset", name=from_csv, path=str(csv))
        rows = await c.ok("query", sql=f"SELECT starts FROM {from_csv} ORDER BY starts")
        for name in (from_book, from_csv):
            await c.ok("drop_dataset", name=name)
    for loaded in (book_loaded, csv_loaded):
        assert [(c["name"], c["type"]) for c in loaded["columns"]] == [("shift", "text"), ("starts", "time")]
    assert rows["rows"] == [["09:15:00"], ["17:30:00"]]
