"""Collections: the named sets of documents a caller may be allowed to read.

A collection records the embedding model and dimension of its vectors, its counts
(documents, chunks, total BM25 length) and a `version` that every write bumps: cached
search results are keyed by the versions they were computed on, so any change to a
collection makes its cached results unreachable.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from bastion.caller import CallerContext
from servers.retrieval.errors import AccessDeniedError, InputError, NotFoundError
from servers.retrieval.schema import hnsw_index_sql

__all__ = [
    "CollectionRow",
    "check_name",
    "ensure_collection",
    "get_collection",
    "list_collection_rows",
    "missing_collections",
    "readable",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_COLUMNS = (
    "id, name, model, dimension, document_count, chunk_count, total_length, version, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class CollectionRow:
    id: int
    name: str
    model: str
    dimension: int
    document_count: int
    chunk_count: int
    total_length: int
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Sequence[Any]) -> CollectionRow:
        return cls(*row)

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "dimension": self.dimension,
            "documents": self.document_count,
            "chunks": self.chunk_count,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise InputError(
            f"collection name {name!r} is invalid: use 1-128 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return name


def readable(caller: CallerContext, name: str) -> None:
    """Refuse a collection the caller's policy does not allow."""
    if not caller.may_read_collection(name):
        raise AccessDeniedError(
            f"collection {name!r} is not among the collections your policy allows "
            f"({', '.join(caller.obligations.allowed_collections or ()) or 'none'})"
        )


async def get_collection(
    conn: AsyncConnection[Any], name: str, caller: CallerContext | None = None
) -> CollectionRow:
    """Collection `name`; NotFoundError when it does not exist, naming the nearest one
    `caller` may read."""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM retrieval.collections WHERE name = %s", (name,))
    row = await cur.fetchone()
    if row is None:
        raise await missing_collections(conn, [name], caller)
    return CollectionRow.of(row)


async def missing_collections(
    conn: AsyncConnection[Any], names: Sequence[str], caller: CallerContext | None
) -> NotFoundError:
    """The error for collections that do not exist, with the nearest name `caller` may read
    for each (chosen among those alone)."""
    nearest: dict[str, str] = {}
    if caller is not None:
        cur = await conn.execute("SELECT name FROM retrieval.collections")
        known = [str(r[0]) for r in await cur.fetchall() if caller.may_read_collection(str(r[0]))]
        for name in names:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if close:
                nearest[name] = close[0]
    message = f"no collection named {', '.join(map(repr, names))}"
    if len(names) == 1 and nearest:
        message += f"; did you mean {nearest[names[0]]!r}?"
    elif nearest:
        message += "; did you mean " + ", ".join(f"{v!r} for {k!r}" for k, v in nearest.items()) + "?"
    else:
        message += "."
    return NotFoundError(f"{message} `list_collections` shows the ones you can read.")


async def ensure_collection(
    conn: AsyncConnection[Any], name: str, model: str, dimension: int
) -> CollectionRow:
    """The collection `name`, created for `model` if it does not exist yet."""
    await conn.execute(
        "INSERT INTO retrieval.collections (name, model, dimension) VALUES (%s, %s, %s) "
        "ON CONFLICT (name) DO NOTHING",
        (name, model, dimension),
    )
    if dimension != 384:
        await conn.execute(hnsw_index_sql(dimension))
    return await get_collection(conn, name)


async def list_collection_rows(
    conn: AsyncConnection[Any], names: Sequence[str] | None = None
) -> list[CollectionRow]:
    if names is None:
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM retrieval.collections ORDER BY name")
    else:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM retrieval.collections WHERE name = ANY(%s) ORDER BY name", (list(names),)
        )
    return [CollectionRow.of(row) for row in await cur.fetchall()]
