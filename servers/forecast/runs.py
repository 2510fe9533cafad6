"""The `forecast` schema: one row per tool run, for operators.

Who ran which tool on how much data, which model won, how long it took and, when it
failed, why. `bastion.mcp.runs.record_run` writes the row; recording never fails a tool.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.db.migrations import Migration, MigrationSet

__all__ = ["MIGRATIONS", "RunRecord"]

MIGRATIONS = MigrationSet(
    "forecast",
    "forecast",
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
                series      integer NOT NULL,
                points      bigint NOT NULL,
                model       text,
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
    series: int
    points: int
    duration_ms: float
    model: str | None = None
    error: str | None = None
