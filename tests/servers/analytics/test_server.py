"""The analytics tools in process: load, list, describe, profile, query, explain, chart, drop."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.mcp import ServerRuntime
from servers.analytics import AnalyticsConfig
from servers.analytics.service import AnalyticsService, configure
from tests.servers.analytics.conftest import ClientFactory, Loader, caller, unique
from tests.vega_render import drawn_marks

SALES = "region,month,amount,units\nnorth,2024-01-01,10.5,3\nsouth,2024-01-01,20,4\nnorth,2024-02-01,7.25,1\n"


async def test_a_loaded_csv_is_listed_described_and_queryable(tools: ClientFactory, load_csv: Loader) -> None:
    loaded = await load_csv(SALES, "sales")
    name = loaded["name"]
    assert loaded["row_count"] == 3
    assert [(c["name"], c["type"]) for c in loaded["columns"]] == [
        ("region", "text"),
        ("month", "date"),
        ("amount", "numeric"),
        ("units", "bigint"),
    ]
    async with tools(None) as c:
        listed = await c.ok("list_datasets")
        described = await c.ok("describe", dataset=name)
        result = await c.ok(
            "query", sql=f"SELECT region, sum(amount) AS total FROM {name} GROUP BY 1 ORDER BY 1"
        )
    assert name in [d["name"] for d in listed["datasets"]]
    assert described["row_count"] == 3
    assert len(described["sample_rows"]) == 3
    assert result["columns"] == [{"name": "region", "type": "text"}, {"name": "total", "type": "numeric"}]
    assert result["rows"] == [["north", 17.75], ["south", 20]]
    assert result["truncated"] is False
    assert result["elapsed_ms"] >= 0


async def test_profile_reports_exact_statistics_per_column(tools: ClientFactory, load_csv: Loader) -> None:
    name = (await load_csv(SALES + "east,2024-03-01,,2\n", "prof"))["name"]
    async with tools(None) as c:
        report = await c.ok("profile", dataset=name, columns=["amount", "region"])
    assert report["row_count"] == 4
    amount, region = report["columns"]
    assert amount["name"] == "amount"
    assert amount["nulls"] == 1
    assert amount["distinct"] == 3
    assert amount["min"] == 7.25 and amount["max"] == 20  # numbers, not their text
    assert amount["mean"] == pytest.approx((10.5 + 20 + 7.25) / 3)
    assert amount["quantiles"]["p50"] == pytest.approx(10.5)
    assert region["top_values"][0] == {"value": "north", "count": 2}
    assert region["mean"] is None


async def test_profile_values_keep_their_type_and_drop_binary_noise(
    tools: ClientFactory, load_csv: Loader
) -> None:
    rows = [(3, "true"), (4, "false"), (1, "true"), (2, "true"), (7, "false"), (11, "true"), (13, "true")]
    name = (await load_csv("n,ok\n" + "".join(f"{n},{ok}\n" for n, ok in rows), "noise"))["name"]
    async with tools(None) as c:
        n, ok = (await c.ok("profile", dataset=name))["columns"]
    # PostgreSQL's percentile_cont gives 12.399999999999999 for the 95th here.
    assert n["quantiles"] == {"p5": 1.3, "p25": 2.5, "p50": 4.0, "p75": 9.0, "p95": 12.4}
    assert (n["min"], n["max"], n["mean"]) == (1, 13, 5.85714285714)
    assert n["top_values"][0] == {"value": 1, "count": 1}
    assert ok["top_values"] == [{"value": True, "count": 5}, {"value": False, "count": 2}]


async def test_explain_returns_the_plan_without_running_the_query(
    tools: ClientFactory, load_csv: Loader
) -> None:
    name = (await load_csv(SALES, "expl"))["name"]
    async with tools(None) as c:
        explained = await c.ok("explain", sql=f"SELECT * FROM {name} WHERE units > 2")
        text = await c.ok("query", sql=f"EXPLAIN SELECT * FROM {name}")
        refused = await c.error("explain", sql=f"EXPLAIN ANALYZE SELECT * FROM {name}")
    assert explained["plan"][0]["Plan"]["Node Type"] == "Seq Scan"
    assert "Seq Scan" in text["rows"][0][0]
    assert "EXPLAIN ANALYZE executes the statement" in refused


async def test_chart_defaults_follow_the_column_types(tools: ClientFactory, load_csv: Loader) -> None:
    name = (await load_csv(SALES, "chart"))["name"]
    async with tools(None) as c:
        line = await c.ok(
            "chart", sql=f"SELECT month, sum(amount) AS total FROM {name} GROUP BY 1 ORDER BY 1"
        )
        bar = await c.ok("chart", sql=f"SELECT region, sum(units) AS units FROM {name} GROUP BY 1")
        hist = await c.ok("chart", sql=f"SELECT amount FROM {name}")
        scatter = await c.ok("chart", sql=f"SELECT amount, units, region FROM {name}", color="region")
        forced = await c.ok(
            "chart", sql=f"SELECT month, amount FROM {name}", kind="bar", x="month", y="amount"
        )
        bad = await c.error("chart", sql=f"SELECT month FROM {name}", x="nope")
    assert line["$schema"] == "https://vega.github.io/schema/vega-lite/v5.json"
    assert line["mark"]["type"] == "line"
    assert line["encoding"]["x"] == {"field": "month", "type": "temporal"}
    assert line["encoding"]["y"] == {"field": "total", "type": "quantitative"}
    assert line["data"]["values"][0] == {"month": "2024-01-01", "total": 30.5}
    assert bar["mark"]["type"] == "bar"
    assert bar["encoding"]["x"]["type"] == "nominal"
    assert hist["mark"]["type"] == "bar"
    assert hist["encoding"]["x"]["bin"] is True
    assert hist["encoding"]["y"]["aggregate"] == "count"
    assert scatter["mark"]["type"] == "point"
    assert scatter["encoding"]["color"] == {"field": "region", "type": "nominal"}
    assert forced["mark"]["type"] == "bar"
    assert len(forced["data"]["values"]) == 3
    assert "'nope' is not a column" in bad
    # Vega-Lite itself draws them: a line of 2 months, 2 region bars, the binned amounts,
    # 3 points, 3 forced bars.
    assert drawn_marks(line) == {"line": 2, "symbol": 2}
    assert drawn_marks(bar) == {"rect": 2}
    assert drawn_marks(hist)["rect"] >= 1
    assert drawn_marks(scatter) == {"symbol": 3}
    assert drawn_marks(forced) == {"rect": 3}


HOURLY = (
    "SELECT timestamp '2024-01-01' + g * interval '1 hour' AS t,"
    " CASE WHEN g = 777 THEN 1000 WHEN g = 333 THEN -50 ELSE g % 10 END AS v"
    " FROM generate_series(1, 1000) g"
)


async def test_a_chart_over_its_row_limit_is_reduced_over_every_row(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(chart_max_rows=100))
    async with tools(None) as c:
        line = await c.ok("chart", sql=HOURLY)
        hist = await c.ok("chart", sql="SELECT (g % 50)::float8 AS v FROM generate_series(1, 1000) g")
        hist_by = await c.ok(
            "chart",
            sql="SELECT (g % 50)::float8 AS v, (g % 2)::text AS odd FROM generate_series(1, 1000) g",
            kind="histogram",
            color="odd",
        )
        bars = await c.ok(
            "chart", sql="SELECT (ARRAY['a', 'b', 'c'])[1 + g % 3] AS k FROM generate_series(1, 1000) g"
        )
        scatter = await c.ok("chart", sql="SELECT g AS a, g * 7 % 101 AS b FROM generate_series(1, 1000) g")
        per_row = await c.ok(
            "chart", sql="SELECT g::text AS k, g AS v FROM generate_series(1, 1000) g", kind="bar"
        )
    # The line keeps both ends and the spike and dip far past the first 100 rows.
    points = line["data"]["values"]
    assert len(points) <= 100
    assert {"t": "2024-01-01T01:00:00", "v": 1} in points
    assert {"t": "2024-02-11T16:00:00", "v": 0} in points
    assert max(p["v"] for p in points) == 1000 and min(p["v"] for p in points) == -50
    assert line["description"].startswith("1,000 rows drawn as ")
    # The histogram is binned here over all 1,000 values.
    assert hist["encoding"]["x"] == {"field": "v", "type": "quantitative", "bin": {"binned": True}}
    assert hist["encoding"]["x2"] == {"field": "v_end"}
    assert sum(b["count"] for b in hist["data"]["values"]) == 1000
    assert hist["data"]["values"][0] == {"v": 0, "v_end": 5, "count": 100}
    # With a color, each series is binned on the same edges.
    assert {b["odd"] for b in hist_by["data"]["values"]} == {"0", "1"}
    assert sum(b["count"] for b in hist_by["data"]["values"] if b["odd"] == "1") == 500
    assert hist_by["data"]["values"][0] == {"v": 0, "v_end": 5, "count": 40, "odd": "1"}
    # Rows counted per category over every row, not over the first 100.
    assert bars["data"]["values"] == [
        {"k": "b", "count": 334},
        {"k": "c", "count": 333},
        {"k": "a", "count": 333},
    ]
    assert bars["encoding"]["y"]["field"] == "count"
    # A scatter is sampled but keeps each axis's extremes.
    sampled = scatter["data"]["values"]
    assert len(sampled) <= 100
    assert {1, 1000} <= {p["a"] for p in sampled} and {0, 100} <= {p["b"] for p in sampled}
    # One bar per row cannot be merged: cut, and said.
    assert len(per_row["data"]["values"]) == 100
    assert per_row["description"] == "first 100 of 1,000 rows (one bar each)"
    # Each reduced spec is drawn by Vega-Lite as it says.
    assert drawn_marks(line) == {"line": len(points)}
    assert drawn_marks(hist) == {"rect": len(hist["data"]["values"])}
    assert drawn_marks(hist_by) == {"rect": len(hist_by["data"]["values"])}
    assert drawn_marks(bars) == {"rect": 3}
    assert drawn_marks(scatter) == {"symbol": len(sampled)}
    assert drawn_marks(per_row) == {"rect": 100}


async def test_a_chart_of_a_result_cut_by_the_row_ceiling_says_so(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(max_rows=500, chart_max_rows=100))
    async with tools(None) as c:
        line = await c.ok("chart", sql=HOURLY)
        small = await c.ok("chart", sql=f"{HOURLY} LIMIT 50")
        compact = await c.ok("chart", sql=f"{HOURLY} LIMIT 200", max_points=40)
        over_ceiling = await c.ok("chart", sql=f"{HOURLY} LIMIT 200", max_points=1_000)
    assert line["description"].startswith("the query's first 500 rows (cut by max_rows); 500 rows drawn as ")
    assert max(p["v"] for p in line["data"]["values"]) == 9  # the spike, row 777, was never read
    assert len(small["data"]["values"]) == 50 and "description" not in small
    # A caller may ask for fewer points than the server's ceiling, never for more.
    assert len(compact["data"]["values"]) <= 40 and compact["description"].startswith("200 rows drawn as ")
    assert len(over_ceiling["data"]["values"]) <= 100


async def test_a_column_the_datasets_lack_is_answered_with_the_columns_they_have(
    tools: ClientFactory, load_csv: Loader
) -> None:
    sales = (await load_csv(SALES, "cols"))["name"]
    other = (await load_csv("code,label\nnorth,North\n", "labels"))["name"]
    async with tools(None) as c:
        misnamed = await c.error("query", sql=f"SELECT region, sum(amount_total) FROM {sales} GROUP BY 1")
        joined = await c.error(
            "query", sql=f"SELECT s.region, l.name FROM {sales} s JOIN {other} l ON l.code = s.region"
        )
        unrelated = await c.error("query", sql="SELECT nope FROM (VALUES (1)) v(x)")
    assert 'column "amount_total" does not exist' in misnamed
    assert f"Columns: {sales}(region, month, amount, units)." in misnamed
    assert misnamed.endswith("Did you mean 'amount'?")
    assert f"Columns: {sales}(region, month, amount, units); {other}(code, label)." in joined
    assert "Columns:" not in unrelated  # no dataset read: nothing to list


async def test_parameters_bind_as_values_never_as_sql(tools: ClientFactory, load_csv: Loader) -> None:
    name = (await load_csv(SALES, "params"))["name"]
    async with tools(None) as c:
        north = await c.ok("query", sql=f"SELECT count(*) FROM {name} WHERE region = $1", params=["north"])
        hostile = await c.ok(
            "query", sql=f"SELECT count(*) FROM {name} WHERE region = $1", params=["x' OR '1'='1"]
        )
        dated = await c.ok(
            "query", sql=f"SELECT count(*) FROM {name} WHERE month >= $1", params=["2024-02-01"]
        )
        missing = await c.error("query", sql=f"SELECT * FROM {name} WHERE region = $1")
        extra = await c.error("query", sql=f"SELECT count(*) FROM {name}", params=["north"])
        after = await c.ok("query", sql=f"SELECT count(*) FROM {name}")
        number_for_text = await c.error("query", sql=f"SELECT * FROM {name} WHERE region = $1", params=[7])
        text_for_number = await c.ok(
            "query", sql=f"SELECT count(*) FROM {name} WHERE units > $1", params=["2"]
        )
    assert north["rows"] == [[2]]
    assert "operator does not exist: text = smallint" in number_for_text
    assert 'give a number or boolean compared with a text column as text ("118")' in number_for_text
    assert text_for_number["rows"] == [[2]]  # text binds untyped: PostgreSQL reads it as the column's type
    assert hostile["rows"] == [[0]]
    assert dated["rows"] == [[1]]
    assert "uses 1 parameter ($1..$1) but none was given: give `params` as a list of 1 value" in missing
    assert "uses no parameters but 1 was given: leave `params` out" in extra
    assert after["rows"] == [[3]]


async def test_a_result_over_the_row_cap_is_truncated_and_flagged(tools: ClientFactory) -> None:
    async with tools(None) as c:
        capped = await c.ok("query", sql="SELECT g FROM generate_series(1, 5000) g", max_rows=10)
        exact = await c.ok("query", sql="SELECT g FROM generate_series(1, 10) g", max_rows=10)
        columns_only = await c.ok("query", sql="SELECT g FROM generate_series(1, 10) g", max_rows=0)
        negative = await c.error("query", sql="SELECT 1", max_rows=-1)
    assert "max_rows" in negative and "greater than or equal to 0" in negative
    assert columns_only["columns"] == [{"name": "g", "type": "int4"}] and columns_only["rows"] == []
    assert capped["row_count"] == 10
    assert capped["truncated"] is True
    assert capped["truncated_by"] == "max_rows"
    assert [r[0] for r in capped["rows"]] == list(range(1, 11))
    assert exact["truncated"] is False


async def test_a_result_over_the_byte_cap_is_truncated_and_flagged(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(max_result_bytes=10_000))
    async with tools(None) as c:
        result = await c.ok("query", sql="SELECT g, repeat('x', 100) FROM generate_series(1, 1000) g")
    assert result["truncated"] is True
    assert result["truncated_by"] == "max_bytes"
    assert 50 < result["row_count"] < 100


async def test_a_query_over_the_timeout_fails_with_an_error_naming_the_limit(
    tools: ClientFactory, runtime: ServerRuntime
) -> None:
    configure(runtime, AnalyticsConfig(statement_timeout_ms=200))
    async with tools(None) as c:
        message = await c.error("query", sql="SELECT count(*) FROM generate_series(1, 1000000000) a")
        still_fine = await c.ok("query", sql="SELECT 1 AS one")
    assert "statement timeout of 200 ms" in message
    assert "BASTION_ANALYTICS_STATEMENT_TIMEOUT_MS" in message
    assert still_fine["rows"] == [[1]]


async def test_a_misspelt_dataset_is_answered_with_the_nearest_one_the_caller_may_read(
    tools: ClientFactory, load_csv: Loader
) -> None:
    shown = (await load_csv(SALES, "near"))["name"]
    kept = shown + "x"  # exists, nearer still, but not for this caller
    async with tools(None) as owner:
        await owner.ok("load_dataset", name=kept, content=SALES, format="csv")
    try:
        async with tools(caller("dana", datasets=[shown])) as c:
            misspelt = await c.error("query", sql=f"SELECT * FROM {shown[:-1]}")
            forbidden = await c.error("query", sql=f"SELECT * FROM {kept}")
            described = await c.error("describe", dataset=shown[:-1])
            unlike = await c.error("query", sql="SELECT * FROM zzzz_nothing_like_it")
    finally:
        async with tools(None) as owner:
            await owner.ok("drop_dataset", name=kept)
    suggestion = f"that you may read (see list_datasets); did you mean {shown!r}?"
    assert misspelt.endswith(f"query refused: no dataset named {shown[:-1]!r} {suggestion}")
    # A dataset the caller may not read gets the answer an unknown one gets.
    assert forbidden.endswith(f"query refused: no dataset named {kept!r} {suggestion}")
    assert described.endswith(suggestion)
    assert unlike.endswith("(see list_datasets)")


async def test_policy_limits_which_datasets_a_caller_sees_and_how_many_rows(
    tools: ClientFactory, load_csv: Loader
) -> None:
    open_name = (await load_csv(SALES, "open"))["name"]
    hidden = (await load_csv(SALES, "hidden"))["name"]
    bob = caller("bob", datasets=[open_name], row_limit=2)
    async with tools(bob) as c:
        listed = await c.ok("list_datasets")
        rows = await c.ok("query", sql=f"SELECT * FROM {open_name}", max_rows=100)
        refused = await c.error("query", sql=f"SELECT * FROM {hidden}")
        joined = await c.error("query", sql=f"SELECT * FROM {open_name} JOIN {hidden} USING (region)")
        not_found = await c.error("describe", dataset=hidden)
        not_profiled = await c.error("profile", dataset=hidden)
        not_admin = await c.error("register_source", name="x", dsn="postgresql://u@127.0.0.1/test")
        not_owner = await c.error("drop_dataset", name=open_name)
        not_replaced = await c.error("load_dataset", name=open_name, content="a\n1\n", format="csv")
    names = [d["name"] for d in listed["datasets"]]
    assert open_name in names
    assert hidden not in names
    assert rows["row_count"] == 2
    assert rows["truncated"] is True
    for message in (refused, joined, not_found, not_profiled):
        assert f"no dataset named {hidden!r}" in message
    assert "register_source is for admins" in not_admin
    assert "only its owner or an admin may drop it" in not_owner
    assert "only its owner or an admin may replace it" in not_replaced


async def test_a_non_admin_may_load_a_file_only_from_the_uploads_folder(
    tools: ClientFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    async with tools(caller("carol")) as c:
        message = await c.error("load_dataset", name=unique("path"), path=str(data))
    assert "limited to" in message
    assert "uploads" in message


async def test_a_relative_path_is_read_from_the_uploads_folder_and_a_refusal_reveals_no_file(
    tools: ClientFactory, service: AnalyticsService, tmp_path: Path
) -> None:
    uploads = service.home / "uploads"
    uploads.mkdir(exist_ok=True)
    name = unique("upload")
    upload = uploads / f"{name}.csv"
    upload.write_text("a,b\n1,x\n2,y\n")
    outside = tmp_path / "secret.csv"
    outside.write_text("a\n1\n")
    try:
        async with tools(caller("carol")) as c:
            loaded = await c.ok("load_dataset", name=name, path=f"{name}.csv")
            missing = await c.error("load_dataset", name=unique("m"), path="not-there.csv")
            escaped = await c.error("load_dataset", name=unique("m"), path="../secret.csv")
            existing = await c.error("load_dataset", name=unique("m"), path=str(outside))
            absent = await c.error("load_dataset", name=unique("m"), path=str(tmp_path / "none.csv"))
            await c.ok("drop_dataset", name=name)
    finally:
        upload.unlink()
    assert loaded["row_count"] == 2
    assert f"{uploads / 'not-there.csv'}: no such file" in missing
    # Outside the folder a non-admin is refused before anything is looked up, so the answer
    # is the same whether the file exists or not.
    assert "limited to" in escaped
    assert existing == absent


async def test_reloading_replaces_the_dataset_and_keeps_it_queryable(
    tools: ClientFactory, load_csv: Loader
) -> None:
    name = (await load_csv(SALES, "reload"))["name"]
    async with tools(None) as c:
        before = await c.ok("query", sql=f"SELECT count(*) FROM {name}")
        await c.ok(
            "load_dataset", name=name, content="region,amount\nwest,1\n", format="csv", description="v2"
        )
        after = await c.ok("query", sql=f"SELECT * FROM {name}")
        described = await c.ok("describe", dataset=name)
    assert before["rows"] == [[3]]
    assert after["rows"] == [["west", 1]]
    assert described["description"] == "v2"


async def test_a_dropped_dataset_is_gone_with_its_roles(tools: ClientFactory, runtime: ServerRuntime) -> None:
    name = unique("drop")
    async with tools(None) as c:
        await c.ok("load_dataset", name=name, content="a\n1\n", format="csv")
        await c.ok("query", sql=f"SELECT * FROM {name}")
        dropped = await c.ok("drop_dataset", name=name)
        gone = await c.error("query", sql=f"SELECT * FROM {name}")
    assert dropped == {"name": name, "dropped": True, "row_count": 1}
    assert f"no dataset named {name!r}" in gone
    async with runtime.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM analytics.reader_roles WHERE %s = ANY(datasets)", (name,)
        )
        assert await cur.fetchone() == (0,)
