"""The SQL guard, without a database: what it accepts, what it refuses and why."""

from __future__ import annotations

import pytest

from servers.analytics.errors import QueryRefusedError
from servers.analytics.guard import Relation, check_sql


def test_a_single_select_is_returned_without_its_semicolon_and_with_what_it_reads() -> None:
    checked = check_sql("  SELECT a FROM t JOIN s.u USING (id) WHERE b = $2;  ")
    assert checked.text == "SELECT a FROM t JOIN s.u USING (id) WHERE b = $2"
    assert checked.kind == "select"
    assert checked.relations == [Relation(None, "t"), Relation("s", "u")]
    assert checked.param_count == 2


def test_cte_names_are_not_tables_but_a_non_recursive_cte_cannot_see_itself() -> None:
    assert check_sql("WITH x AS (SELECT 1) SELECT * FROM x").relations == []
    assert check_sql("WITH x AS (SELECT * FROM x) SELECT * FROM x").relations == [Relation(None, "x")]
    recursive = "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < 3) SELECT * FROM x"
    assert check_sql(recursive).relations == []
    # A CTE inside a subquery does not hide a table of the same name outside it.
    nested = "SELECT * FROM (WITH secret AS (SELECT 1) SELECT * FROM secret) q, secret"
    assert check_sql(nested).relations == [Relation(None, "secret")]


def test_values_table_and_explain_are_accepted() -> None:
    assert check_sql("VALUES (1), (2)").kind == "select"
    assert check_sql("TABLE t").relations == [Relation(None, "t")]
    explained = check_sql("EXPLAIN (VERBOSE, FORMAT JSON) SELECT * FROM t")
    assert explained.kind == "explain"
    assert explained.relations == [Relation(None, "t")]


def test_multibyte_text_before_the_statement_keeps_the_slice_exact() -> None:
    checked = check_sql("/* é日本 */ SELECT 'ü' AS x -- trailing")
    assert checked.text == "SELECT 'ü' AS x -- trailing"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "holds no statement"),
        ("SELEC 1", "not valid SQL"),
        ("SELECT 1; SELECT 2", "one statement per query"),
        ("DELETE FROM t", "DELETE (DeleteStmt)"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "data-modifying CTEs are refused"),
        ("SELECT * INTO t2 FROM t", "SELECT INTO creates a table"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE/SHARE"),
        ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE executes"),
        ("EXPLAIN INSERT INTO t VALUES (1)", "read-only queries only"),
        ("SELECT pg_sleep(1)", "pg_sleep() is not on the allow-list"),
        ("SELECT myschema.f()", "only built-in functions"),
        ("SELECT x::regclass FROM t", "type regclass"),
        ("SELECT * FROM pg_catalog.pg_class", "system catalogs are not queryable"),
        ("SELECT * FROM pg_roles", "names starting with pg_"),
        ("SELECT * FROM db.s.t", "never spans databases"),
        ("SELECT 1 OPERATOR(s.+) 1", "only built-in operators"),
        ("SELECT * FROM t TABLESAMPLE system_time(5)", "TABLESAMPLE method"),
        ("SELECT 'a\x00'", "NUL character"),
        ("SELECT " + "1+" * 200_000 + "1", "bytes; the limit is"),
    ],
)
def test_refusals_say_why(sql: str, reason: str) -> None:
    with pytest.raises(QueryRefusedError) as info:
        check_sql(sql)
    assert reason in info.value.message
    assert info.value.message.startswith("query refused: ")


def test_builtin_functions_used_by_analysts_are_allowed() -> None:
    sql = (
        "SELECT date_trunc('month', d), extract(year FROM d), to_char(d, 'YYYY'), round(avg(x)::numeric, 2), "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY x), rank() OVER (ORDER BY x), coalesce(a, b), "
        "nullif(a, 0), greatest(a, b), lower(s), split_part(s, '-', 1), string_agg(s, ','), "
        "jsonb_build_object('a', 1), now(), current_date, cast(x AS integer), x::pg_catalog.float8 "
        "FROM t GROUP BY d, a, b, s, x"
    )
    assert check_sql(sql).relations == [Relation(None, "t")]
