"""A query naming a column its datasets lack is answered with the columns they have.

PostgreSQL says `column "cnt_total" does not exist`, and suggests a near miss only when
one is within a few typing errors; a caller (most often a model writing SQL) then needs a
`describe` to find the name. The columns of the datasets the query read, and the nearest
to the name it used, come with the error instead.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from psycopg import AsyncConnection

from servers.analytics.catalog import get_dataset
from servers.analytics.errors import QueryFailedError

__all__ = ["UNDEFINED_COLUMN", "with_known_columns"]

UNDEFINED_COLUMN = "42703"
_COLUMNS_SHOWN = 60  # per dataset: a wide table's every column would drown the message
_MISSING = re.compile(r"column (\S+) does not exist")


def _missing_name(message: str) -> str | None:
    """`cnt_total` from `column "cnt_total" does not exist` or `column h.cnt_total does not exist`."""
    found = _MISSING.search(message)
    return found.group(1).rsplit(".", 1)[-1].strip('"') if found else None


async def with_known_columns(
    conn: AsyncConnection[Any], error: QueryFailedError, datasets: list[str]
) -> QueryFailedError:
    """`error` with the columns of `datasets` (and the nearest to the missing name) added."""
    listed: list[str] = []
    every: list[str] = []
    for name in datasets:
        record = await get_dataset(conn, name)
        if record is None:
            continue
        columns = [c["name"] for c in record.columns]
        every += columns
        shown = ", ".join(columns[:_COLUMNS_SHOWN])
        more = f" and {len(columns) - _COLUMNS_SHOWN} more" if len(columns) > _COLUMNS_SHOWN else ""
        listed.append(f"{name}({shown}{more})")
    if not listed:
        return error
    message = f"{error.message} Columns: {'; '.join(listed)}."
    missing = _missing_name(error.message)
    nearest = difflib.get_close_matches(missing, every, n=1, cutoff=0.5) if missing else []
    if nearest and "Perhaps you meant" not in error.message:
        message += f" Did you mean {nearest[0]!r}?"
    return QueryFailedError(message, sqlstate=error.sqlstate)
