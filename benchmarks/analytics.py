"""Analytics server benchmarks: CSV loading vs `psql \\copy`, `query` overhead vs psycopg,
and the defog sql-eval gold queries through `query` vs directly.

1. Load: bike_sharing/hour.csv repeated to at least --rows rows (a temp file, deleted
   afterwards) into the embedded PostgreSQL 18 of a fresh instance, alternating our
   loader (inference, CREATE, COPY, ANALYZE, atomic swap) with `psql \\copy` of the same
   file into a pre-created table of the same types on the same server. Target: our
   speed >= 0.8 of psql's (medians). A third load in each round takes the same rows with
   `cnt` NA in one row of 100, which the loader parses and writes again with NA as NULL;
   a fourth the same rows as a European spreadsheet saves them (`;`, decimal commas,
   points between thousands), every number column checked and written again.
2. Query overhead: the same SQL through `AnalyticsService.query` (guard, reader role,
   READ ONLY transaction, server-side cursor, JSON rows) and through the MCP tool in
   process, against psycopg directly on the same server. Target: <= 2 ms added at p50.
3. defog: every gold query of questions_gen_postgres.csv through `query` on its source
   (the PostgreSQL 15 service) and directly; pass count and every failure.

Usage: python benchmarks/analytics.py [--rows 1000000] [--runs 3] [--iterations 300]
                                      [--no-defog] [--json FILE]
Prints a Markdown report; docs/benchmarks/analytics.md quotes it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import anyio  # noqa: E402
import psycopg  # noqa: E402
from mcp import Client  # noqa: E402

from bastion.caller import CallerContext  # noqa: E402
from bastion.components import kernel_migrations  # noqa: E402
from bastion.db.database import Database  # noqa: E402
from bastion.db.embedded import EmbeddedPostgres, pg_tool  # noqa: E402
from bastion.home import Home  # noqa: E402
from bastion.mcp import ServerRuntime, build_server  # noqa: E402
from bastion.settings import Settings  # noqa: E402
from benchmarks._analytics.defog import drop_databases, load_databases, run_eval  # noqa: E402
from servers.analytics import MIGRATIONS, spec  # noqa: E402
from servers.analytics.service import service_for  # noqa: E402

DATA = REPO.parent / "shared" / "data"
HOUR_CSV = DATA / "bike_sharing" / "hour.csv"
DEFOG = DATA / "sql" / "defog_sql_eval"
PG15_URL = os.environ.get("BASTION_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
OWNER = CallerContext.local_owner()


def _big_csv(rows: int, folder: Path, *, missing_every: int = 0) -> tuple[Path, int]:
    """hour.csv repeated to `rows`; with `missing_every`, that often `cnt` is R's `NA`."""
    lines = HOUR_CSV.read_bytes().splitlines(keepends=True)
    if missing_every:
        lines[1::missing_every] = [line.rsplit(b",", 1)[0] + b",NA\n" for line in lines[1::missing_every]]
    header, body = lines[0], b"".join(lines[1:])
    per_copy = len(lines) - 1
    copies = -(-rows // per_copy)
    path = folder / ("hour_repeated_na.csv" if missing_every else "hour_repeated.csv")
    with path.open("wb") as f:
        f.write(header)
        for _ in range(copies):
            f.write(body)
    return path, copies * per_copy


def _european_csv(path: Path) -> Path:
    """`path` as a European spreadsheet saves it: `;` between fields, a decimal comma, and
    a point between thousands (`cnt` 1,000 and over as `1.000`)."""

    def written(field: bytes) -> bytes:
        if field.isdigit() and len(field) > 3:
            return f"{int(field):,}".replace(",", ".").encode()
        return field.replace(b".", b",") if field.replace(b".", b"", 1).isdigit() else field

    out = path.with_name("hour_repeated_eu.csv")
    with path.open("rb") as src, out.open("wb") as dst:
        dst.write(next(src).replace(b",", b";"))
        for line in src:
            dst.write(b";".join(written(f) for f in line.rstrip(b"\n").split(b",")) + b"\n")
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench_load(
    db: Database,
    settings: Settings,
    key: bytes,
    path: Path,
    with_missing: Path,
    european: Path,
    runs: int,
) -> dict[str, Any]:
    from servers.analytics.config import AnalyticsConfig
    from servers.analytics.readers import Input, ReadOptions, build_plan
    from servers.analytics.service import AnalyticsService

    service = AnalyticsService(db, key, settings.home, AnalyticsConfig())
    psql = pg_tool("psql")
    # psql gets a table of exactly the types our loader infers (hour.csv line 161 holds a
    # stray 0x11 byte, so `instant` is text), so both parse the same values the same way.
    plan = build_plan(Input(str(path), path=path), "csv", None, AnalyticsConfig().inference_rows)
    column_types = ", ".join(f'"{c["name"]}" {c["type"]}' for c in plan.columns)
    copy_command = f"\\copy public.{{table}} FROM '{path}' WITH (FORMAT csv, HEADER true)"
    size_mb = round(path.stat().st_size / 1e6, 1)  # noqa: ASYNC240 - once, before timing
    ours: list[float] = []
    theirs: list[float] = []
    # The same rows with `cnt` NA in every 100th: parsed and written again, NA as NULL.
    rewritten: list[float] = []
    # The same rows with decimal commas and points between thousands: every number column
    # checked against that format and written again.
    comma: list[float] = []
    rows = 0
    for run in range(runs):
        table = f"psql_copy_{run}"
        async with db.pool.connection() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS public.{table}")
            await conn.execute(f"CREATE TABLE public.{table} ({column_types})")
        started = time.perf_counter()
        done = await anyio.run_process(
            [psql, "-q", "-v", "ON_ERROR_STOP=1", "-d", db.dsn, "-c", copy_command.format(table=table)],
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql \\copy failed: {done.stderr.decode().strip()}")
        theirs.append(time.perf_counter() - started)
        async with db.pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM public.{table}")
            copied = (await cur.fetchone() or (0,))[0]
            await conn.execute(f"DROP TABLE public.{table}")
        started = time.perf_counter()
        record = await service.load(OWNER, "bench_hour_big", path=str(path))
        ours.append(time.perf_counter() - started)
        rows = record.row_count
        assert rows == copied, (rows, copied)
        started = time.perf_counter()
        record = await service.load(OWNER, "bench_hour_na", path=str(with_missing))
        rewritten.append(time.perf_counter() - started)
        assert record.row_count == rows and record.columns[-1]["type"] == "bigint", record.columns[-1]
        started = time.perf_counter()
        record = await service.load(
            OWNER, "bench_hour_eu", path=str(european), read_options=ReadOptions(decimal=",")
        )
        comma.append(time.perf_counter() - started)
        assert record.row_count == rows and [c["type"] for c in record.columns] == [
            c["type"] for c in plan.columns
        ], record.columns
    await service.drop(OWNER, "bench_hour_big")
    await service.drop(OWNER, "bench_hour_na")
    await service.drop(OWNER, "bench_hour_eu")
    ours_m, theirs_m = statistics.median(ours), statistics.median(theirs)
    rewritten_m, comma_m = statistics.median(rewritten), statistics.median(comma)
    return {
        "rows": rows,
        "file_mb": size_mb,
        "ours_s": [round(x, 3) for x in ours],
        "psql_s": [round(x, 3) for x in theirs],
        "ours_median_s": round(ours_m, 3),
        "psql_median_s": round(theirs_m, 3),
        "speed_ratio": round(theirs_m / ours_m, 3),
        "missing_s": [round(x, 3) for x in rewritten],
        "missing_median_s": round(rewritten_m, 3),
        "missing_speed_ratio": round(theirs_m / rewritten_m, 3),
        "missing_rows_per_s": round(rows / rewritten_m),
        "comma_s": [round(x, 3) for x in comma],
        "comma_median_s": round(comma_m, 3),
        "comma_speed_ratio": round(theirs_m / comma_m, 3),
        "comma_rows_per_s": round(rows / comma_m),
        "ours_rows_per_s": round(rows / ours_m),
        "psql_rows_per_s": round(rows / theirs_m),
    }


QUERIES: list[tuple[str, str, list[Any] | None]] = [
    ("point lookup", "SELECT * FROM bench_hour WHERE dteday = $1 AND hr = $2", ["2012-06-01", 12]),
    ("aggregate", "SELECT season, avg(cnt) AS avg_cnt FROM bench_hour GROUP BY season ORDER BY season", None),
    ("100 rows", "SELECT * FROM bench_hour ORDER BY instant LIMIT 100", None),
]


async def _timed(fn: Callable[[], Awaitable[Any]], iterations: int) -> list[float]:
    samples: list[float] = []
    for _ in range(iterations):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def bench_overhead(db: Database, settings: Settings, iterations: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with ServerRuntime.open(spec, settings, transport="stdio", database=db) as runtime:
        service = service_for(runtime)
        await service.load(OWNER, "bench_hour", path=str(HOUR_CSV))
        direct = await psycopg.AsyncConnection.connect(db.dsn, autocommit=True)
        await direct.execute("SET search_path = analytics_data")
        try:
            async with Client(build_server(spec, runtime)) as client:
                for label, text, params in QUERIES:
                    psycopg_sql = text.replace("$1", "%s").replace("$2", "%s")

                    async def run_direct(q: str = psycopg_sql, p: list[Any] | None = params) -> None:
                        cur = await direct.execute(q, p)
                        await cur.fetchall()

                    async def run_service(q: str = text, p: list[Any] | None = params) -> None:
                        await service.query(OWNER, q, p, 1000)

                    async def run_tool(q: str = text, p: list[Any] | None = params) -> None:
                        result = await client.call_tool("query", {"sql": q, "params": p})
                        assert not result.is_error

                    for fn in (run_direct, run_service, run_tool):  # warm caches and roles
                        await _timed(fn, 20)
                    samples: dict[str, list[float]] = {"direct": [], "service": [], "tool": []}
                    # Interleave so machine noise lands on all three alike.
                    for _ in range(iterations // 10):
                        samples["direct"] += await _timed(run_direct, 10)
                        samples["service"] += await _timed(run_service, 10)
                        samples["tool"] += await _timed(run_tool, 10)
                    p50 = {k: statistics.median(v) for k, v in samples.items()}
                    results.append(
                        {
                            "query": label,
                            "direct_p50_ms": _ms(p50["direct"]),
                            "service_p50_ms": _ms(p50["service"]),
                            "tool_p50_ms": _ms(p50["tool"]),
                            "direct_p95_ms": _ms(_pct(samples["direct"], 0.95)),
                            "service_p95_ms": _ms(_pct(samples["service"], 0.95)),
                            "tool_p95_ms": _ms(_pct(samples["tool"], 0.95)),
                            "service_added_p50_ms": _ms(p50["service"] - p50["direct"]),
                            "tool_added_p50_ms": _ms(p50["tool"] - p50["direct"]),
                        }
                    )
        finally:
            await direct.close()
            await service.drop(OWNER, "bench_hour")
    return results


async def bench_defog(db: Database, settings: Settings, key: bytes) -> dict[str, Any]:
    from servers.analytics.config import AnalyticsConfig
    from servers.analytics.service import AnalyticsService

    service = AnalyticsService(db, key, settings.home, AnalyticsConfig())
    prefix = f"bastion_defog_{secrets.token_hex(3)}"
    try:
        started = time.perf_counter()
        dsns, _ = load_databases(PG15_URL, DEFOG, prefix)
        load_s = time.perf_counter() - started
        sources = {}
        for name, dsn in dsns.items():
            sources[name] = f"defog_{name}"
            await service.register_source(OWNER, sources[name], dsn)
        report = await run_eval(service, sources, dsns, DEFOG / "questions" / "questions_gen_postgres.csv")
    finally:
        drop_databases(PG15_URL, prefix)
    statuses = sorted({o.status for o in report.outcomes})
    return {
        "questions": report.questions,
        "queries": len(report.outcomes),
        "by_status": {s: report.count(s) for s in statuses},
        "questions_all_pass": sum(
            1
            for q in {(o.db, o.question) for o in report.outcomes}
            if all(o.status == "pass" for o in report.outcomes if (o.db, o.question) == q)
        ),
        "not_passing": [
            {"db": o.db, "status": o.status, "detail": o.detail, "query": o.query}
            for o in report.outcomes
            if o.status != "pass"
        ],
        "load_s": round(load_s, 1),
        "eval_s": round(report.seconds, 1),
    }


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
    }


def _markdown(report: dict[str, Any]) -> str:
    out = [f"machine: {report['machine']}", ""]
    load = report["load"]
    out += [
        f"## Load ({load['rows']:,} rows, {load['file_mb']} MB CSV)",
        "",
        "| | median s | rows/s | runs (s) |",
        "|---|---|---|---|",
        f"| load_dataset | {load['ours_median_s']} | {load['ours_rows_per_s']:,} | {load['ours_s']} |",
        f"| psql \\copy | {load['psql_median_s']} | {load['psql_rows_per_s']:,} | {load['psql_s']} |",
        f"| load_dataset, `cnt` NA in 1 row of 100 | {load['missing_median_s']} | "
        f"{load['missing_rows_per_s']:,} | {load['missing_s']} |",
        f"| load_dataset, decimal commas (`decimal=','`) | {load['comma_median_s']} | "
        f"{load['comma_rows_per_s']:,} | {load['comma_s']} |",
        "",
        f"speed ratio (psql time / ours): **{load['speed_ratio']}** (target >= 0.8); with NA "
        f"rewritten as NULL: {load['missing_speed_ratio']}; with decimal commas: "
        f"{load['comma_speed_ratio']}",
        "",
        "## Query overhead (p50 / p95 ms)",
        "",
        "| query | psycopg | service.query | MCP tool | added p50 (service) | added p50 (tool) |",
        "|---|---|---|---|---|---|",
    ]
    for q in report["overhead"]:
        out.append(
            f"| {q['query']} | {q['direct_p50_ms']} / {q['direct_p95_ms']} | {q['service_p50_ms']} / "
            f"{q['service_p95_ms']} | {q['tool_p50_ms']} / {q['tool_p95_ms']} | "
            f"{q['service_added_p50_ms']} | {q['tool_added_p50_ms']} |"
        )
    if report.get("defog"):
        d = report["defog"]
        out += [
            "",
            "## defog sql-eval (questions_gen_postgres.csv on PostgreSQL 15)",
            "",
            f"{d['questions']} questions, {d['queries']} gold queries: {d['by_status']}; "
            f"questions with every alternative passing: {d['questions_all_pass']}; "
            f"load {d['load_s']} s, eval {d['eval_s']} s",
        ]
        for item in d["not_passing"]:
            out.append(f"- {item['db']} {item['status']}: {item['detail']} -- `{item['query'][:160]}`")
    return "\n".join(out)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-an-", dir="/tmp"))
    home = folder / "home"
    embedded = EmbeddedPostgres(Home(home))
    try:
        embedded.acquire()
        settings = Settings(home=home, database_url=None, redis_url=None, opa_url=None)
        key = Home(home).instance_key(create=True)
        db = Database(settings)
        await db.open(migrations=[kernel_migrations(), MIGRATIONS])
        try:
            path, _ = _big_csv(args.rows, folder)
            with_missing, _ = _big_csv(args.rows, folder, missing_every=100)
            european = _european_csv(path)
            report: dict[str, Any] = {"machine": _machine()}
            report["load"] = await bench_load(db, settings, key, path, with_missing, european, args.runs)
            for big in (path, with_missing, european):
                big.unlink()
            report["overhead"] = await bench_overhead(db, settings, args.iterations)
            if not args.no_defog:
                report["defog"] = await bench_defog(db, settings, key)
        finally:
            await db.close()
    finally:
        embedded.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="rows of the generated CSV (>= 1,000,000)"
    )
    parser.add_argument("--runs", type=int, default=3, help="load runs of each loader")
    parser.add_argument("--iterations", type=int, default=300, help="timed calls per query and path")
    parser.add_argument("--no-defog", action="store_true", help="skip the defog sql-eval run (needs PG15)")
    parser.add_argument("--json", type=Path, help="also write the raw report here")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    sys.stdout.write(_markdown(result) + "\n")
    if arguments.json:
        arguments.json.write_text(json.dumps(result, indent=2))
