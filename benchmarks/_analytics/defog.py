"""The defog sql-eval gold queries, run through the analytics `query` path and directly.

`load_databases` creates one PostgreSQL database per defog-data folder on a server
(`<prefix>_<db>`), loads its dump with psql, and a read-only LOGIN role to register
them with. `run_eval` runs every gold alternative of questions_gen_postgres.csv
through `AnalyticsService.query` on the matching source and directly with psycopg as
the same role, and compares the results. `drop_databases` removes everything.

Gold SQL may list alternatives separated by `;` and column alternatives as `{a,b}`
(with `{}` repeating the previous choice); each expansion is its own query.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
import secrets
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bastion.caller import CallerContext
from servers.analytics.errors import QueryFailedError, QueryRefusedError
from servers.analytics.service import AnalyticsService
from servers.analytics.values import jsonable

__all__ = ["EvalReport", "drop_databases", "expand_gold", "load_databases", "run_eval"]

_BRACES = re.compile(r"\{([^{}]*)\}")


def expand_gold(gold: str) -> list[str]:
    """Every concrete query a gold entry stands for, in order, without duplicates."""
    queries: list[str] = []
    for alternative in (part.strip() for part in gold.split(";")):
        if not alternative:
            continue
        groups = [m.group(1) for m in _BRACES.finditer(alternative)]
        choices = [[o.strip() for o in g.split(",")] for g in groups if g.strip()]
        for combo in itertools.product(*choices) if choices else [()]:
            picks = iter(combo)
            last = ""

            def fill(match: re.Match[str], picks: Iterable[str] = picks) -> str:
                nonlocal last
                if match.group(1).strip():
                    last = next(iter(picks))
                return last

            query = _BRACES.sub(fill, alternative)
            if query not in queries:
                queries.append(query)
    return queries


def load_databases(admin_url: str, data_dir: Path, prefix: str) -> tuple[dict[str, str], str]:
    """Create and load every database; return ({db: read-only DSN}, role)."""
    role, password = f"{prefix}_ro", secrets.token_hex(12)
    dsns: dict[str, str] = {}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )
        for folder in sorted(p for p in (data_dir / "databases").iterdir() if p.is_dir()):
            database = f"{prefix}_{folder.name}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            url = make_conninfo(admin_url, dbname=database)
            subprocess.run(
                ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(folder / f"{folder.name}.sql")],
                check=True,
                capture_output=True,
            )
            with psycopg.connect(url, autocommit=True) as db:
                schemas = db.execute(
                    "SELECT nspname FROM pg_namespace "
                    "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
                ).fetchall()
                for (schema,) in schemas:
                    ident, grantee = sql.Identifier(schema), sql.Identifier(role)
                    db.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, grantee))
                    db.execute(
                        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ident, grantee)
                    )
            dsns[folder.name] = make_conninfo(admin_url, dbname=database, user=role, password=password)
    return dsns, role


def drop_databases(admin_url: str, prefix: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{prefix}\\_%",)
        ).fetchall()
        for (name,) in rows:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(f"{prefix}_ro")))


def _norm(value: Any) -> Any:
    value = jsonable(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(float(value), 6) if math.isfinite(float(value)) else str(value)
    return str(value)


def _rows(rows: Iterable[Iterable[Any]], ordered: bool) -> list[tuple[Any, ...]]:
    normal = [tuple(_norm(v) for v in row) for row in rows]
    return normal if ordered else sorted(normal, key=repr)


@dataclass
class Outcome:
    db: str
    question: str
    query: str
    status: str  # pass, mismatch, refused, error, gold_error
    detail: str = ""


@dataclass
class EvalReport:
    outcomes: list[Outcome] = field(default_factory=list[Outcome])
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def questions(self) -> int:
        return len({(o.db, o.question) for o in self.outcomes})


async def run_eval(
    service: AnalyticsService,
    sources: dict[str, str],
    dsns: dict[str, str],
    questions_csv: Path,
    *,
    limit: int | None = None,
) -> EvalReport:
    """Run the gold queries; `sources` maps a db name to the registered source name."""
    owner = CallerContext.local_owner()
    report = EvalReport()
    started = time.perf_counter()
    with questions_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:limit]:
        db = row["db_name"]
        for query in expand_gold(row["query"]):
            report.outcomes.append(
                await _one(service, owner, sources[db], dsns[db], db, row["question"], query)
            )
    report.seconds = time.perf_counter() - started
    return report


async def _one(
    service: AnalyticsService, owner: CallerContext, source: str, dsn: str, db: str, question: str, query: str
) -> Outcome:
    ordered = "order by" in query.lower()
    try:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            cur = await conn.execute(query.encode())
            direct_cols = [c.name for c in cur.description or []]
            direct = await cur.fetchall()
    except psycopg.Error as exc:
        return Outcome(db, question, query, "gold_error", (exc.diag.message_primary or str(exc)).strip())
    try:
        result = await service.query(owner, query, max_rows=100_000, source=source)
    except QueryRefusedError as exc:
        return Outcome(db, question, query, "refused", exc.reason)
    except QueryFailedError as exc:
        return Outcome(db, question, query, "error", exc.message)
    if [c["name"] for c in result["columns"]] != direct_cols:
        return Outcome(db, question, query, "mismatch", "column names differ")
    if result["truncated"]:
        return Outcome(db, question, query, "mismatch", f"truncated by {result['truncated_by']}")
    if _rows(result["rows"], ordered) != _rows(direct, ordered):
        return Outcome(db, question, query, "mismatch", f"{len(result['rows'])} rows vs {len(direct)} direct")
    return Outcome(db, question, query, "pass")
