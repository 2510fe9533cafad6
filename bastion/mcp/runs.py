"""Recording one row per tool run in a server's own `<schema>.runs` table, for operators.

Each server declares its `runs` table (its own columns beside `tool`, `subject`,
`tenant`) and a dataclass for a run; `record_run` stamps the verified caller and
inserts the row. Recording never fails a tool: a database hiccup is logged and the
caller still gets the tool's answer.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from psycopg import sql

from bastion.db.database import Database
from bastion.mcp.caller_middleware import current_caller

__all__ = ["record_run"]

logger = logging.getLogger(__name__)


async def record_run(database: Database, schema: str, run: Any) -> None:
    """Insert dataclass `run` (which has a `tool` field) as a row of `<schema>.runs`."""
    caller = current_caller()
    row: dict[str, Any] = {**asdict(run), "subject": caller.subject, "tenant": caller.tenant}
    statement = sql.SQL("INSERT INTO {}.runs ({}) VALUES ({})").format(
        sql.Identifier(schema),
        sql.SQL(", ").join(map(sql.Identifier, row)),
        sql.SQL(", ").join(sql.Placeholder() * len(row)),
    )
    try:
        async with database.pool.connection() as conn:
            await conn.execute(statement, tuple(row.values()))
    except Exception as exc:
        logger.warning("could not record a %s run: %s", row.get("tool"), exc)
