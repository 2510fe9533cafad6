"""The `anomaly` schema: one row per tool run, for operators.

Who ran which tool on how much data (points, rows or characters), what came out
(method and number flagged, or the risk), how long it took and, when it failed, why.
Recording never fails a tool: a database hiccup is logged and the caller still gets
the scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bastion.db.database import Database
from bastion.db.migrations import Migration, MigrationSet
from bastion.mcp import current_caller

__all__ = ["MIGRATIONS", "RunRecord", "record_run"]

logger = logging.getLogger(__name__)

MIGRATIONS = MigrationSet(
    "anomaly",
    "anomaly",
    (
        Migration(
            "0001_runs",
            """
            CREATE TABLE runs (
                id          bigserial PRIMARY KEY,
                at          timestamptz NOT NULL DEFAULT now(),
                tool        text NOT NULL,
                subject     text NOT NULL,
                tenant      text NOT NULL,
                items       bigint NOT NULL,
                outcome     text,
                duration_ms double precision NOT NULL,
                error       text
            );
            CREATE INDEX runs_at ON runs (at);
            """,
        ),
    ),
)


@dataclass
class RunRecord:
    tool: str
    items: int
    duration_ms: float
    outcome: str | None = None
    error: str | None = None


async def record_run(database: Database, run: RunRecord) -> None:
    caller = current_caller()
    try:
        async with database.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO anomaly.runs (tool, subject, tenant, items, outcome, duration_ms, error) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    run.tool,
                    caller.subject,
                    caller.tenant,
                    run.items,
                    run.outcome,
                    run.duration_ms,
                    run.error,
                ),
            )
    except Exception as exc:
        logger.warning("could not record a %s run: %s", run.tool, exc)
