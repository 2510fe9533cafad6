"""External PostgreSQL sources: registration, connection, and what they hold.

A source is a DSN sealed in the catalog. Connecting opens one short-lived
connection per call (no pool outlives a request), bounded by the connect timeout.
The DSN's role is the sandbox on that server, so it should be a role that can only
read: registration reports a superuser or a role with write grants as a warning.
Messages never carry the DSN: only host, port and database, and a password that
the driver echoes back is blanked.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict

from bastion.db.database import describe_dsn
from servers.analytics.errors import SourceError

__all__ = ["connect_source", "parse_dsn", "probe_source", "source_tables"]

logger = logging.getLogger(__name__)


def parse_dsn(dsn: str) -> str:
    """Check that `dsn` parses; return its display form (no credentials)."""
    try:
        info = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise SourceError("the DSN does not parse: use postgresql://user:password@host:port/dbname") from None
    if not info.get("dbname"):
        raise SourceError("the DSN names no database: add /dbname (postgresql://user@host:port/dbname)")
    return describe_dsn(dsn)


def _scrub(message: str, dsn: str) -> str:
    password = conninfo_to_dict(dsn).get("password")
    text = message.strip().splitlines()[-1] if message.strip() else "connection failed"
    return text.replace(str(password), "***") if password else text


async def connect_source(name: str, dsn: str, *, timeout_s: int) -> AsyncConnection[Any]:
    try:
        return await AsyncConnection.connect(dsn, autocommit=True, connect_timeout=timeout_s)
    except psycopg.Error as exc:
        raise SourceError(
            f"cannot connect to source {name!r} ({describe_dsn(dsn)}): {_scrub(str(exc), dsn)}"
        ) from None


async def probe_source(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """Who the DSN connects as, what server it is, and warnings about its privileges."""
    cur = await conn.execute(
        """
        SELECT current_user, r.rolsuper, current_setting('server_version'),
               EXISTS (SELECT 1 FROM information_schema.table_privileges
                       WHERE grantee = current_user
                         AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'))
        FROM pg_roles r WHERE r.rolname = current_user
        """
    )
    row = await cur.fetchone()
    assert row is not None
    role, superuser, version, writes = row
    warnings: list[str] = []
    if superuser:
        warnings.append(
            f"the DSN connects as {role!r}, a superuser: register a role that can only read "
            "(GRANT SELECT only), since that role is the sandbox on this server"
        )
    elif writes:
        warnings.append(
            f"the role {role!r} may write to some tables: register a role with SELECT only, "
            "since that role is the sandbox on this server"
        )
    return {"role": role, "server_version": version, "warnings": warnings}


async def source_tables(conn: AsyncConnection[Any]) -> list[tuple[str, str, str]]:
    """(schema, table, kind) of every table and view the source's role can see."""
    cur = await conn.execute(
        """
        SELECT table_schema, table_name, table_type FROM information_schema.tables
        WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg\\_%%'
        ORDER BY 1, 2
        """
    )
    return [(str(s), str(t), "view" if k == "VIEW" else "table") for s, t, k in await cur.fetchall()]
