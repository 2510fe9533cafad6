"""Run a checked query where it can only read, within its limits.

Every query runs in a READ ONLY transaction that is always rolled back, with
`statement_timeout` and `lock_timeout` set for it alone. On the embedded database it
also runs as a reader role (`roles.ReaderRoles`) with the data schema first on the
search path; on an external source the DSN's own role is the sandbox and the search
path is pinned to `public`, the schema unqualified names are authorised against.

Rows come from a server-side cursor, fetched in batches until the row cap or the byte
cap is reached: a query never materialises more than it may return. Parameters are
bound by the server (`$1`, `$2`, ...), never formatted into the text.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
import psycopg
from psycopg import AsyncConnection, AsyncRawCursor, sql
from pydantic import WithJsonSchema

# The MCP SDK builds output schemas from nested TypedDicts only from typing_extensions on 3.11.
from typing_extensions import TypedDict

from servers.analytics.errors import QueryFailedError, QueryRefusedError, QueryTimeoutError
from servers.analytics.guard import CheckedQuery
from servers.analytics.migrations import DATA_SCHEMA
from servers.analytics.values import jsonable_row, register_json_loaders, row_converter

__all__ = ["ColumnInfo", "Limits", "QueryResult", "execute", "preamble"]

logger = logging.getLogger(__name__)

_CURSOR = "bastion_analytics_q"
_DECLARE_PREFIX = f'DECLARE "{_CURSOR}" NO SCROLL CURSOR FOR '
_FETCH = f'FETCH FORWARD {{}} FROM "{_CURSOR}"'

TEMP_FILE_LIMIT = "1GB"


class ColumnInfo(TypedDict):
    name: str
    type: str


# The published schemas stop at the outer arrays: MCP clients validate every result
# against the tool's output schema, and a per-cell schema costs them a validator step per
# value (about 15 ms for 100 rows x 17 columns with the Python SDK's client).
Rows = Annotated[
    list[list[Any]],
    WithJsonSchema({"type": "array", "description": "rows, each an array of values in column order"}),
]
Columns = Annotated[
    list[ColumnInfo],
    WithJsonSchema({"type": "array", "description": "one {name, type} object per column, in order"}),
]


class QueryResult(TypedDict):
    columns: Columns
    rows: Rows
    row_count: int
    truncated: bool
    truncated_by: str | None
    elapsed_ms: float


@dataclass(frozen=True)
class Limits:
    max_rows: int
    max_bytes: int
    statement_timeout_ms: int
    lock_timeout_ms: int
    fetch_batch: int


@functools.lru_cache(maxsize=256)
def preamble(limits: Limits, *, role: str | None, superuser: bool) -> tuple[bytes, ...]:
    """BEGIN READ ONLY, then every transaction-local setting in one statement.

    `set_config(name, value, true)` is `SET LOCAL` (the role included); one SELECT
    instead of one statement per setting saves the server a parse and execute each.
    """
    settings: list[tuple[str, str]] = [
        ("statement_timeout", str(limits.statement_timeout_ms)),
        ("lock_timeout", str(limits.lock_timeout_ms)),
        # A cursor would otherwise be planned for its first 10% of rows; the caller
        # fetches them all, so plan as the direct query would be.
        ("cursor_tuple_fraction", "1"),
    ]
    if role is None:
        settings.append(("search_path", "public"))
    else:
        # Listing pg_catalog after the data schema lets a dataset name shadow a catalog name.
        settings.append(("search_path", f"{sql.Identifier(DATA_SCHEMA).as_string()}, pg_catalog"))
        if superuser:
            settings.append(("temp_file_limit", TEMP_FILE_LIMIT))
        settings.append(("role", role))  # last: the settings above need no privilege
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in settings
    )
    return (b"BEGIN READ ONLY", sql.SQL("SELECT {}").format(calls).as_bytes())


def _param_mismatch(used: int, given: int) -> str:
    gave = "none was" if given == 0 else f"{given} {'was' if given == 1 else 'were'}"
    if used == 0:
        return f"the query uses no parameters but {gave} given: leave `params` out, or write $1 where it goes"
    plural = "s" if used > 1 else ""
    return (
        f"the query uses {used} parameter{plural} ($1..${used}) but {gave} given: give `params` "
        f"as a list of {used} value{plural}, the first for $1"
    )


async def execute(
    conn: AsyncConnection[Any],
    query: CheckedQuery,
    params: Sequence[Any] | None,
    limits: Limits,
    *,
    role: str | None,
) -> QueryResult:
    """Run `query` on `conn` (autocommit, idle) and roll back, whatever happens.

    The settings, the DECLARE, the first FETCH and, when that FETCH can hold every row
    the call may return, the ROLLBACK go out in one pipeline: one round trip to the
    server. Larger results fetch in batches and roll back afterwards.
    """
    if query.param_count != len(params or ()):
        raise QueryRefusedError(_param_mismatch(query.param_count, len(params or ())))
    bound = list(params) if params else None
    superuser = conn.info.parameter_status("is_superuser") == "on"
    started = time.perf_counter()
    cur = AsyncRawCursor(conn)
    register_json_loaders(cur.adapters)
    try:
        first = min(limits.fetch_batch, limits.max_rows + 1)
        async with conn.pipeline():
            for statement in preamble(limits, role=role, superuser=superuser):
                await cur.execute(statement)
            if query.kind == "explain":
                await cur.execute(query.text.encode("utf-8"), bound)
            else:
                # The newline ends a trailing `-- comment` of the caller's text.
                await cur.execute(_DECLARE_PREFIX.encode() + query.text.encode("utf-8") + b"\n", bound)
                await cur.execute(_FETCH.format(first).encode())
            if query.kind == "explain" or first == limits.max_rows + 1:
                # Everything this call can return is in hand: end the transaction in the
                # same round trip (another cursor, so `cur` keeps its rows). After an
                # error the pipeline skips it and the rollback below runs instead.
                await conn.execute(b"ROLLBACK")
        columns = await _columns(conn, cur.description or [])
        if query.kind == "explain":
            result = _result(columns, [jsonable_row(r) for r in await cur.fetchall()], None)
        else:
            result = await _collect(cur, columns, first, limits)
        result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result
    except psycopg.Error as exc:
        raise _failure(exc, limits, query, bound) from None
    finally:
        if not conn.closed:
            await conn.rollback()
        await cur.close()


def _result(columns: list[ColumnInfo], rows: list[list[Any]], truncated_by: str | None) -> QueryResult:
    return {
        "columns": columns,
        "rows": rows,
        "row_count": len(rows),
        "truncated": truncated_by is not None,
        "truncated_by": truncated_by,
        "elapsed_ms": 0.0,
    }


async def _collect(
    cur: AsyncRawCursor[Any], columns: list[ColumnInfo], first: int, limits: Limits
) -> QueryResult:
    """Rows of the cursor until it ends or a cap is reached, fetching more batches as needed."""
    convert = row_converter([c["type"] for c in columns])
    rows: list[list[Any]] = []
    size = 2
    batch, want = await cur.fetchall(), first
    while True:
        for raw in batch:
            if len(rows) == limits.max_rows:
                return _result(columns, rows, "max_rows")
            row = convert(raw)
            size += len(orjson.dumps(row)) + 1
            if size > limits.max_bytes:
                return _result(columns, rows, "max_bytes")
            rows.append(row)
        if len(batch) < want:
            return _result(columns, rows, None)
        want = min(limits.fetch_batch, limits.max_rows + 1 - len(rows))
        await cur.execute(_FETCH.format(want).encode())
        batch = await cur.fetchall()


async def _columns(conn: AsyncConnection[Any], description: Sequence[psycopg.Column]) -> list[ColumnInfo]:
    unknown = [c.type_code for c in description if c.type_display == str(c.type_code)]
    names: dict[int, str] = {}
    if unknown:
        # Types psycopg has no name for (enums, domains, extension types): ask the server.
        cur = await conn.execute(
            "SELECT oid::int8, format_type(oid, NULL) FROM pg_type WHERE oid = ANY(%s)", (unknown,)
        )
        names = {int(r[0]): str(r[1]) for r in await cur.fetchall()}
    return [{"name": c.name, "type": names.get(c.type_code, c.type_display)} for c in description]


def _failure(
    exc: psycopg.Error, limits: Limits, query: CheckedQuery, params: Sequence[Any] | None = None
) -> QueryFailedError:
    diag = exc.diag
    message = (diag.message_primary or str(exc)).strip()
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return QueryTimeoutError(
            f"query cancelled: it ran longer than the statement timeout of {limits.statement_timeout_ms} ms "
            "(statement_timeout; raise BASTION_ANALYTICS_STATEMENT_TIMEOUT_MS or make the query cheaper)",
            sqlstate=exc.sqlstate,
        )
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return QueryTimeoutError(
            "query cancelled: a table stayed locked longer than the lock timeout of "
            f"{limits.lock_timeout_ms} ms "
            "(lock_timeout; a dataset is probably being reloaded, try again)",
            sqlstate=exc.sqlstate,
        )
    detail = f" ({diag.message_detail})" if diag.message_detail else ""
    hint = f" Hint: {diag.message_hint}" if diag.message_hint else ""
    if not hint and isinstance(exc, psycopg.errors.UndefinedTable):
        hint = (
            " Hint: list_datasets shows the tables you may read; on a source, name a table "
            "outside `public` with its schema (schema.table)."
        )
    if isinstance(exc, psycopg.errors.UndefinedFunction) and any(_typed(v) for v in params or ()):
        # `user_id = $1` with params [118] compares text with smallint: the JSON number
        # binds as a number, which PostgreSQL's own hint does not say.
        hint += (
            " A value in `params` binds with its JSON type: give a number or boolean compared"
            ' with a text column as text ("118"), or cast the parameter ($1::text).'
        )
    position = ""
    if diag.statement_position:
        # Positions count from the start of what was sent: DECLARE ... FOR precedes a SELECT.
        offset = len(_DECLARE_PREFIX) if query.kind == "select" else 0
        at = int(diag.statement_position) - offset
        position = f" at character {at}" if 0 < at <= len(query.text) else ""
    return QueryFailedError(
        f"PostgreSQL refused the query{position}: {message}{detail}.{hint}", sqlstate=exc.sqlstate
    )


def _typed(value: Any) -> bool:
    """Whether a bound value carries a type of its own (text binds untyped: PostgreSQL infers it)."""
    if isinstance(value, list | tuple):
        return any(_typed(v) for v in value)  # pyright: ignore[reportUnknownVariableType]
    return value is not None and not isinstance(value, str)
