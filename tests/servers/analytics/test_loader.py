"""Loading files: CSV, Parquet and JSON, inferred and overridden types, and bad input."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from bastion.mcp import ServerRuntime
from servers.analytics import AnalyticsConfig
from servers.analytics.service import configure
from tests.servers.analytics.conftest import ClientFactory, Loader, unique

ORIGINAL = "id,name\n1,alpha\n2,beta\n"


async def test_a_malformed_csv_row_is_reported_with_its_line_and_nothing_is_half_loaded(
    tools: ClientFactory, load_csv: Loader
) -> None:
    name = (await load_csv(ORIGINAL, "mal"))["name"]
    rows = "".join(f"{i},name {i}\n" for i in range(3, 40))
    # Line 42 (the header is line 1) has a field too many.
    bad = "id,name\n" + "1,a\n2,b\n" + rows + '41,"x"\n42,y,extra\n43,z\n'
    async with tools(None) as c:
        message = await c.error("load_dataset", name=name, content=bad, format="csv")
        after = await c.ok("query", sql=f"SELECT * FROM {name} ORDER BY id")
    assert "line 42" in message
    assert "nothing was loaded" in message.lower()
    assert after["rows"] == [[1, "alpha"], [2, "beta"]]


async def test_a_malformed_row_after_the_sample_is_reported_by_the_copy_with_its_line(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(inference_rows=5))
    name = unique("late")
    text = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(1, 30)) + "30\n31,n31\n"
    async with tools(None) as c:
        message = await c.error("load_dataset", name=name, content=text, format="csv")
        listed = await c.ok("list_datasets")
    assert "line 31" in message
    assert 'missing data for column "name"' in message
    assert name not in [d["name"] for d in listed["datasets"]]


async def test_a_wrongly_inferred_type_fails_clearly_and_can_be_overridden_per_column(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(inference_rows=10))
    name = unique("infer")
    text = "code,qty\n" + "".join(f"{100 + i},{i}\n" for i in range(20)) + "A17,5\n"
    async with tools(None) as c:
        message = await c.error("load_dataset", name=name, content=text, format="csv")
        loaded = await c.ok(
            "load_dataset", name=name, content=text, format="csv", column_types={"code": "text"}
        )
        result = await c.ok("query", sql=f"SELECT code FROM {name} WHERE qty = 5 ORDER BY code")
        await c.ok("drop_dataset", name=name)
    assert "line 22" in message
    assert "'code' was loaded as bigint (inferred from a sample)" in message
    assert "column_types={'code': 'text'}" in message
    assert [c["type"] for c in loaded["columns"]] == ["text", "bigint"]
    assert result["rows"] == [["105"], ["A17"]]


async def test_unknown_override_columns_and_types_are_named(tools: ClientFactory) -> None:
    async with tools(None) as c:
        no_column = await c.error(
            "load_dataset", name=unique("o"), content=ORIGINAL, format="csv", column_types={"nope": "text"}
        )
        no_type = await c.error(
            "load_dataset", name=unique("o"), content=ORIGINAL, format="csv", column_types={"id": "money"}
        )
    assert "'nope', which the file does not have. Its columns: id, name" in no_column
    assert "'money' is not a type we load" in no_type


async def test_a_dataset_name_unsafe_as_an_identifier_is_refused_with_a_safe_suggestion(
    tools: ClientFactory,
) -> None:
    async with tools(None) as c:
        injection = await c.error("load_dataset", name='x"; DROP TABLE y; --', content=ORIGINAL, format="csv")
        upper = await c.error("load_dataset", name="Sales 2024", content=ORIGINAL, format="csv")
        catalog = await c.error("load_dataset", name="pg_class", content=ORIGINAL, format="csv")
        long = await c.error("load_dataset", name="a" * 64, content=ORIGINAL, format="csv")
    assert "not allowed" in injection
    assert "Try 'x_drop_table_y'" in injection
    assert "Try 'sales_2024'" in upper
    assert "reserved" in catalog
    assert "at most 63 characters" in long


async def test_types_are_inferred_for_dates_timestamps_integers_decimals_booleans_and_text(
    load_csv: Loader,
) -> None:
    text = (
        "Day,At,Count,Price,Flag,Zip,Note\n"
        "2024-01-02,2024-01-02T10:00:00,1,1.5,true,01234,hello\n"
        "2024-01-03,2024-01-03 11:30:00,-2,2,false,99999,\n"
        ",,,,,,\n"
    )
    loaded = await load_csv(text, "types")
    assert [(c["name"], c["type"], c["source_name"]) for c in loaded["columns"]] == [
        ("day", "date", "Day"),
        ("at", "timestamp", "At"),
        ("count", "bigint", "Count"),
        ("price", "numeric", "Price"),
        ("flag", "boolean", "Flag"),
        ("zip", "text", "Zip"),
        ("note", "text", "Note"),
    ]
    assert loaded["row_count"] == 3
    assert loaded["statistics"]["estimated"] is True


async def test_json_lines_and_arrays_load_with_nested_values_as_jsonb(tools: ClientFactory) -> None:
    lines = "\n".join(json.dumps(r) for r in [{"a": 1, "b": "x", "c": {"k": 1}}, {"a": 2, "d": True}])
    array = json.dumps([{"when": "2024-05-01", "v": 1.5}, {"when": "2024-05-02", "v": 2}])
    first, second = unique("jsonl"), unique("jsona")
    async with tools(None) as c:
        from_lines = await c.ok("load_dataset", name=first, content=lines, format="json")
        from_array = await c.ok("load_dataset", name=second, content=array)
        rows = await c.ok("query", sql=f"SELECT a, b, c->>'k', d FROM {first} ORDER BY a")
        bad = await c.error(
            "load_dataset", name=unique("jsonbad"), content='{"a": 1}\n{"a": \n', format="json"
        )
        await c.ok("drop_dataset", name=first)
        await c.ok("drop_dataset", name=second)
    assert [(c["name"], c["type"]) for c in from_lines["columns"]] == [
        ("a", "bigint"),
        ("b", "text"),
        ("c", "jsonb"),
        ("d", "boolean"),
    ]
    assert [(c["name"], c["type"]) for c in from_array["columns"]] == [("when", "date"), ("v", "numeric")]
    assert rows["rows"] == [[1, "x", "1", None], [2, None, None, True]]
    assert "line 2: not valid JSON" in bad


async def test_one_json_object_is_a_row_or_unwraps_its_one_array_of_rows(tools: ClientFactory) -> None:
    # As APIs export: pretty-printed, the rows in one field beside others.
    wrapped = json.dumps({"data": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], "count": 2}, indent=2)
    single = json.dumps({"a": 1, "tags": ["x", "y"]}, indent=2)
    name = unique("wrapped")
    async with tools(None) as c:
        rows = await c.ok("load_dataset", name=name, content=wrapped, format="json")
        one = await c.ok("load_dataset", name=unique("single"), content=single, format="json")
        bom_lines = await c.ok(
            "load_dataset", name=unique("bom"), content='\ufeff{"a": 1}\n{"a": 2}\n', format="json"
        )
        ambiguous = await c.error(
            "load_dataset", name=unique("amb"), content='{"a": [{"x": 1}], "b": [{"y": 2}]}', format="json"
        )
        broken = await c.error("load_dataset", name=unique("broken"), content='{\n "a": 1,\n', format="json")
        values = await c.ok("query", sql=f"SELECT a, b FROM {name} ORDER BY a")
    assert rows["row_count"] == 2 and values["rows"] == [[1, "x"], [2, "y"]]
    assert [(c["name"], c["type"]) for c in one["columns"]] == [("a", "bigint"), ("tags", "jsonb")]
    assert bom_lines["row_count"] == 2
    assert "several arrays of rows ('a', 'b')" in ambiguous
    assert "expected JSON lines, an array of objects or one object" in broken


async def test_parquet_keeps_its_declared_types_from_a_path_or_base64_content(
    tools: ClientFactory, tmp_path: Path
) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "score": pa.array([0.5, None], pa.float64()),
            "label": pa.array(["a", ""], pa.string()),
            "day": pa.array([19000, 19001], pa.date32()),
        }
    )
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    first, second = unique("pq"), unique("pqb")
    async with tools(None) as c:
        from_path = await c.ok("load_dataset", name=first, path=str(path))
        await c.ok(
            "load_dataset",
            name=second,
            content=base64.b64encode(buffer.getvalue()).decode(),
            format="parquet",
        )
        rows = await c.ok("query", sql=f"SELECT * FROM {second} ORDER BY id")
        await c.ok("drop_dataset", name=first)
        await c.ok("drop_dataset", name=second)
    assert [(c["name"], c["type"]) for c in from_path["columns"]] == [
        ("id", "integer"),
        ("score", "double precision"),
        ("label", "text"),
        ("day", "date"),
    ]
    assert rows["rows"] == [[1, 0.5, "a", "2022-01-08"], [2, None, "", "2022-01-09"]]


async def test_a_missing_file_and_an_empty_file_are_clear_errors(
    tools: ClientFactory, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    async with tools(None) as c:
        missing = await c.error("load_dataset", name=unique("m"), path=str(tmp_path / "nope.csv"))
        blank = await c.error("load_dataset", name=unique("m"), path=str(empty))
        both = await c.error("load_dataset", name=unique("m"), path=str(empty), content="a\n1\n")
        neither = await c.error("load_dataset", name=unique("m"), content="")
    assert "no such file" in missing
    assert "the file is empty" in blank
    assert "exactly one of `path`" in both
    assert "nothing to load" in neither
    assert "an empty `content` counts as none" in neither


async def test_a_load_answers_with_when_it_was_loaded(load_csv: Loader, tools: ClientFactory) -> None:
    loaded = await load_csv(ORIGINAL, "when")
    async with tools(None) as c:
        described = await c.ok("describe", dataset=loaded["name"])
    assert loaded["loaded_at"] is not None
    assert loaded["loaded_at"] == described["loaded_at"]


async def test_missing_value_words_load_as_null_in_typed_columns_and_stay_in_text_ones(
    load_csv: Loader, tools: ClientFactory
) -> None:
    # As R's write.csv, NumPy and spreadsheets write them; "NA" is also a country code.
    text = (
        "id,price,day,flag,country,note\n"
        '1,1.5,2024-01-02,true,NA,"two\nlines"\n'
        '2,NA,#N/A,NULL,DE,""\n'
        "3,NaN,2024-01-04,false,NA,\n"
    )
    loaded = await load_csv(text, "na")
    async with tools(None) as c:
        rows = await c.ok("query", sql=f"SELECT * FROM {loaded['name']} ORDER BY id")
        mean = await c.ok("query", sql=f"SELECT avg(price), count(day) FROM {loaded['name']}")
    assert [c["type"] for c in loaded["columns"]] == ["bigint", "numeric", "date", "boolean", "text", "text"]
    assert rows["rows"] == [
        [1, 1.5, "2024-01-02", True, "NA", "two\nlines"],
        # Every other field reads as COPY reads it: `""` is an empty string, a bare empty NULL.
        [2, None, None, None, "DE", ""],
        [3, None, "2024-01-04", False, "NA", None],
    ]
    assert mean["rows"] == [[1.5, 2]]


async def test_a_missing_value_word_after_the_sample_loads_as_null_too(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(inference_rows=5))
    name = unique("latena")
    text = "id,v\n" + "".join(f"{i},{i}.5\n" for i in range(1, 30)) + '30,NA\n"31",\n'
    async with tools(None) as c:
        loaded = await c.ok("load_dataset", name=name, content=text, format="csv")
        rows = await c.ok("query", sql=f"SELECT id, v FROM {name} WHERE v IS NULL ORDER BY id")
        await c.ok("drop_dataset", name=name)
    assert [c["type"] for c in loaded["columns"]] == ["bigint", "numeric"]
    assert loaded["row_count"] == 31
    assert rows["rows"] == [[30, None], [31, None]]


async def test_null_values_replace_the_missing_value_words(load_csv: Loader, tools: ClientFactory) -> None:
    text = "id,a,b\n1,?,1\n2,2,NA\n3,3,3\n"
    custom = await load_csv(text, "nv", null_values=["?"])
    written = await load_csv(text, "nv", null_values=[])
    async with tools(None) as c:
        rows = await c.ok("query", sql=f"SELECT a, b FROM {custom['name']} ORDER BY id")
    assert [c["type"] for c in custom["columns"]] == ["bigint", "bigint", "text"]
    assert rows["rows"] == [[None, "1"], [2, "NA"], [3, "3"]]
    assert [c["type"] for c in written["columns"]] == ["bigint", "text", "text"]


async def test_a_bad_value_after_missing_values_is_reported_at_its_own_line(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(inference_rows=5))
    name = unique("nabad")
    # A field spanning two lines keeps COPY's line count equal to the file's.
    text = 'id,v,note\n1,NA,"a\nb"\n' + "".join(f"{i},{i},x\n" for i in range(2, 20)) + "20,oops,x\n"
    async with tools(None) as c:
        message = await c.error("load_dataset", name=name, content=text, format="csv")
    assert "line 22" in message
    assert 'invalid input syntax for type bigint: "oops"' in message


async def test_a_type_the_caller_chose_is_named_as_chosen_when_a_value_does_not_fit(
    tools: ClientFactory,
) -> None:
    async with tools(None) as c:
        message = await c.error(
            "load_dataset", name=unique("ch"), content="id,v\n1,x\n", column_types={"v": "bigint"}
        )
        json_nulls = await c.error(
            "load_dataset", name=unique("ch"), content='{"a": 1}\n', format="json", null_values=["?"]
        )
    assert "'v' was loaded as bigint, as column_types asked" in message
    assert "inferred" not in message
    assert "null_values applies to CSV files and workbooks only" in json_nulls


async def test_missing_values_are_read_whatever_the_delimiter_line_ends_or_bom(
    load_csv: Loader, tools: ClientFactory
) -> None:
    for text in (
        "\ufeffid;v;who\r\n1;NA;a\r\n2;2.5;x\r\n",
        "id\tv\twho\n1\tNA\ta\n2\t2.5\tx\n",
        "id|v|who\n1|NA|a\n2|2.5|x\n",
    ):
        loaded = await load_csv(text, "sep")
        async with tools(None) as c:
            rows = await c.ok("query", sql=f"SELECT id, v, who FROM {loaded['name']} ORDER BY id")
        assert rows["row_count"] == 2, text
        assert rows["rows"][0][1:] == [None, "a"], text


async def test_a_blank_line_in_a_file_with_missing_values_is_refused_and_nothing_is_loaded(
    tools: ClientFactory,
) -> None:
    name = unique("blank")
    async with tools(None) as c:
        message = await c.error("load_dataset", name=name, content="id,v\n1,NA\n\n3,3\n", format="csv")
        listed = await c.ok("list_datasets")
    assert "malformed CSV" in message
    assert "nothing was loaded" in message
    assert name not in [d["name"] for d in listed["datasets"]]


async def test_a_file_wider_than_a_table_can_be_is_refused_before_anything_is_written(
    tools: ClientFactory,
) -> None:
    name = unique("wide")
    header = ",".join(f"v{i}" for i in range(1601))
    async with tools(None) as c:
        message = await c.error("load_dataset", name=name, content=f"{header}\n{','.join(['1'] * 1601)}\n")
    assert "1,601 columns, and a PostgreSQL table holds at most 1,600" in message
    assert "long form" in message


async def test_a_csv_in_another_encoding_loads_with_its_encoding_and_not_without(
    tools: ClientFactory, tmp_path: Path
) -> None:
    # As Excel saves "CSV" on Western Windows: windows-1252, `;`, and here an NA too.
    legacy = tmp_path / "excel.csv"
    legacy.write_bytes("city;price;note\nCafé Zoë;2.5;€ off\nSão Paulo;NA;\n".encode("cp1252"))
    name = unique("cp1252")
    async with tools(None) as c:
        refused = await c.error("load_dataset", name=name, path=str(legacy))
        # Past the rows the types are read from, PostgreSQL's COPY finds it.
        beyond = tmp_path / "beyond.csv"
        beyond.write_bytes(("a,b\n" + "x,1\n" * 20_000 + "Zoë,2\n").encode("cp1252"))
        late = await c.error("load_dataset", name=unique("late"), path=str(beyond))
        loaded = await c.ok("load_dataset", name=name, path=str(legacy), encoding="windows-1252")
        rows = await c.ok("query", sql=f"SELECT city, price, note FROM {name} ORDER BY city")
        plain = tmp_path / "plain.csv"
        plain.write_bytes("city,n\nMünchen,1\n".encode("latin-1"))
        latin_name = unique("latin")
        await c.ok("load_dataset", name=latin_name, path=str(plain), encoding="latin-1")
        latin = await c.ok("query", sql=f"SELECT city FROM {latin_name}")
        unknown = await c.error("load_dataset", name=unique("e"), path=str(legacy), encoding="utf-16")
        on_content = await c.error(
            "load_dataset", name=unique("e"), content="a\n1\n", format="csv", encoding="latin-1"
        )
        on_json = await c.error(
            "load_dataset", name=unique("e"), content='{"a": 1}\n', format="json", encoding="latin-1"
        )
    assert "line 2: not utf-8" in refused and "give its `encoding` (windows-1252" in refused
    assert "line 20002: invalid byte sequence" in late and "give its `encoding`" in late
    assert [c["type"] for c in loaded["columns"]] == ["text", "numeric", "text"]
    assert rows["rows"] == [["Café Zoë", 2.5, "€ off"], ["São Paulo", None, None]]
    assert latin["rows"] == [["München"]]
    assert "'utf-16' is not one PostgreSQL reads CSV in" in unknown
    assert "encoding applies to a file given by `path`" in on_content
    assert "encoding applies to CSV files only, not json" in on_json


async def test_dates_written_day_or_month_first_load_with_their_order(tools: ClientFactory) -> None:
    european = "tag,menge\n15.03.2024,1\n01.04.2024,NA\n"
    american = "day,when,qty\n03/15/2024,3/15/2024 2:30 PM,1\n04/01/2024,4/1/2024 9:05 AM,2\n"
    async with tools(None) as c:
        as_text = await c.ok("load_dataset", name=unique("d"), content=european, format="csv")
        eu = unique("eu")
        await c.ok("load_dataset", name=eu, content=european, format="csv", date_order="dmy")
        us = unique("us")
        loaded_us = await c.ok("load_dataset", name=us, content=american, format="csv", date_order="MDY")
        rows = await c.ok("query", sql=f"SELECT tag, menge FROM {eu} ORDER BY tag")
        times = await c.ok("query", sql=f'SELECT day, "when" FROM {us} ORDER BY day')
        # column_types without date_order: PostgreSQL's own reading, month first, refuses 15/03.
        refused = await c.error(
            "load_dataset",
            name=unique("e"),
            content="d\n15/03/2024\n",
            format="csv",
            column_types={"d": "date"},
        )
        chosen = unique("c")
        await c.ok(
            "load_dataset",
            name=chosen,
            content="d\n15/03/2024\n",
            format="csv",
            column_types={"d": "date"},
            date_order="DMY",
        )
        chosen_rows = await c.ok("query", sql=f"SELECT d FROM {chosen}")
        bad = await c.error(
            "load_dataset", name=unique("e"), content="a\n1\n", format="csv", date_order="YDM"
        )
    assert as_text["warnings"] == [
        "column 'tag' was loaded as text: it looks like dates written day first, as '15.03.2024': "
        "load it with date_order='DMY'."
    ]
    assert rows["rows"] == [["2024-03-15", 1], ["2024-04-01", None]]
    assert [c["type"] for c in loaded_us["columns"]] == ["date", "timestamp", "bigint"]
    assert times["rows"] == [["2024-03-15", "2024-03-15T14:30:00"], ["2024-04-01", "2024-04-01T09:05:00"]]
    assert "date_order='DMY'" in refused and "Nothing was loaded" in refused
    assert chosen_rows["rows"] == [["2024-03-15"]]
    assert "date_order 'YDM'" in bad and 'give "DMY"' in bad


async def test_numbers_with_marks_between_thousands_load_as_numbers(
    tools: ClientFactory, tmp_path: Path
) -> None:
    # As US spreadsheets save figures: quoted, commas between thousands.
    sheet = tmp_path / "sales.csv"
    sheet.write_text('region,revenue,units\nEast,"1,234.50","12,000"\nWest,NA,7\n')
    # A French export: a space (here a no-break one) between thousands, a decimal comma.
    french = "ville;montant\nLyon;1\u00a0234,5\nNice;12,25\n"
    # A value past the inference sample that the named format cannot read: refused, not misread.
    late = tmp_path / "late.csv"
    late.write_text("n\n" + "".join(f'"{i:,}"\n' for i in range(1000, 13000)) + "1.5.0\n" + '"1,000"\n' * 50)
    async with tools(None) as c:
        us = unique("us")
        loaded = await c.ok("load_dataset", name=us, path=str(sheet), thousands=",")
        rows = await c.ok("query", sql=f"SELECT revenue, units FROM {us} ORDER BY region")
        as_text = await c.ok("load_dataset", name=unique("t"), path=str(sheet))
        fr = unique("fr")
        await c.ok("load_dataset", name=fr, content=french, format="csv", decimal=",", thousands=" ")
        montants = await c.ok("query", sql=f"SELECT montant FROM {fr} ORDER BY ville")
        refused = await c.error("load_dataset", name=unique("late"), path=str(late), thousands=",")
        late.write_text("n\n" + '"3,5"\n' * 12000 + "1.5\n" + '"2,5"\n' * 50)  # was loaded as 15
        point = await c.error("load_dataset", name=unique("late"), path=str(late), decimal=",")
        same = await c.error(
            "load_dataset", name=unique("e"), content="a\n1\n", format="csv", decimal=",", thousands=","
        )
    assert [c["type"] for c in loaded["columns"]] == ["text", "numeric", "bigint"]
    assert rows["rows"] == [[1234.5, 12000], [None, 7]]
    assert as_text["warnings"] == [
        "column 'revenue' was loaded as text: it looks like numbers with commas between thousands "
        "('1,234.50'): load it with thousands=','.",
        "column 'units' was loaded as text: it looks like numbers with commas ('12,000'): load it with "
        "thousands=',' if they group thousands, or decimal=',' if they mark the decimals.",
    ]
    assert montants["rows"] == [[1234.5], [12.25]]
    assert "'1.5.0' in column 'n' is not a number written with ',' between thousands" in refused
    assert "Nothing was loaded" in refused
    assert "'1.5' in column 'n' is not a number written with decimal ',' and '.' between thousands" in point
    assert "thousands ','" in same and "other than the decimal mark" in same


async def test_numbers_with_a_decimal_comma_load_as_numbers(tools: ClientFactory, tmp_path: Path) -> None:
    # As a German or French spreadsheet saves it: `;`, decimal comma, points between thousands.
    sheet = tmp_path / "umsatz.csv"
    sheet.write_bytes("Monat;Umsatz;Stück;Notiz\n2024-01;1.234,50;1.200;ok\n2024-02;NA;7;\n".encode("cp1252"))
    name = unique("komma")
    async with tools(None) as c:
        loaded = await c.ok("load_dataset", name=name, path=str(sheet), encoding="windows-1252", decimal=",")
        rows = await c.ok("query", sql=f"SELECT umsatz, stuck, notiz FROM {name} ORDER BY monat")
        as_text = await c.ok("load_dataset", name=unique("punkt"), path=str(sheet), encoding="windows-1252")
        bad = await c.error("load_dataset", name=unique("e"), content="a\n1\n", format="csv", decimal=";")
        on_json = await c.error(
            "load_dataset", name=unique("e"), content='{"a": 1}', format="json", decimal=","
        )
    assert [(c["name"], c["type"]) for c in loaded["columns"]] == [
        ("monat", "text"),
        ("umsatz", "numeric"),
        ("stuck", "bigint"),
        ("notiz", "text"),
    ]
    assert rows["rows"] == [[1234.5, 1200, "ok"], [None, 7, None]]
    assert [c["type"] for c in as_text["columns"]][1] == "text"
    assert as_text["warnings"] == [
        "column 'umsatz' was loaded as text: it looks like numbers written with a decimal comma "
        "('1.234,50'): load it with decimal=','."
    ]
    assert loaded["warnings"] == []
    assert "decimal ';'" in bad and 'give "." (the default) or ","' in bad
    assert "decimal applies to CSV files and workbooks only, not json" in on_json


async def test_stored_estimates_keep_types_and_count_the_common_values_in_min_and_max(
    load_csv: Loader,
) -> None:
    # 0 is the commonest count, so ANALYZE keeps it among the common values and out of its
    # histogram: the lowest value has to come from both.
    counts = [0] * 400 + list(range(10, 410)) + [0] * 200
    text = "n,price,day,flag\n" + "".join(
        f"{n},{n / 4},2024-01-{1 + i % 28:02d},{'true' if n else 'false'}\n" for i, n in enumerate(counts)
    )
    stats = (await load_csv(text, "estimates"))["statistics"]["columns"]
    assert stats["n"]["min_estimate"] == 0 and stats["n"]["most_common"][0] == 0
    assert stats["n"]["max_estimate"] <= 409 and isinstance(stats["n"]["max_estimate"], int)
    assert stats["price"]["min_estimate"] == 0 and isinstance(stats["price"]["max_estimate"], float)
    assert stats["day"]["min_estimate"] == "2024-01-01" and stats["day"]["max_estimate"] <= "2024-01-28"
    assert (stats["flag"]["min_estimate"], stats["flag"]["max_estimate"]) == (False, True)


async def test_estimates_are_taken_for_every_type_a_caller_may_choose(load_csv: Loader) -> None:
    text = "at,gap,id,doc,x\n" + "".join(
        f'{i % 24:02d}:00,{i} hours,{i:08d}-0000-4000-8000-000000000000,"{{""k"": {i}}}",{i / 3}\n'
        for i in range(1, 50)
    )
    types = {"at": "time", "gap": "interval", "id": "uuid", "doc": "json", "x": "real"}
    stats = (await load_csv(text, "typed", column_types=types))["statistics"]["columns"]
    assert stats["at"]["min_estimate"] == "00:00:00" and stats["at"]["max_estimate"] == "23:00:00"
    assert stats["id"]["min_estimate"].startswith("00000001-")
    assert stats["doc"]["min_estimate"] == {"k": 1} and stats["doc"]["max_estimate"] == {"k": 49}
    assert stats["gap"]["max_estimate"] == "49:00:00"
    assert isinstance(stats["x"]["max_estimate"], float)
