"""The catalog: what datasets and sources exist, read and written in `analytics.*`.

Dataset rows are written by the loader in the same transaction as the data, so the
catalog and the tables never disagree. Source rows hold the DSN sealed by `DsnVault`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, TypedDict

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

__all__ = [
    "ColumnSpec",
    "DatasetRecord",
    "SourceRecord",
    "delete_dataset",
    "get_dataset",
    "get_source",
    "list_dataset_names",
    "list_datasets",
    "list_sources",
    "save_dataset",
    "save_source",
]


class ColumnSpec(TypedDict):
    name: str
    type: str
    source_name: str


@dataclass
class DatasetRecord:
    name: str
    owner: str
    format: str
    origin: str
    row_count: int
    columns: list[ColumnSpec]
    description: str = ""
    stats: dict[str, Any] = field(default_factory=dict[str, Any])
    created_at: dt.datetime | None = None
    loaded_at: dt.datetime | None = None
    # What the load that made this record noticed (not stored): see `load_dataset`.
    warnings: list[str] = field(default_factory=list[str])

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "dataset",
            "description": self.description,
            "owner": self.owner,
            "row_count": self.row_count,
            "columns": [{"name": c["name"], "type": c["type"]} for c in self.columns],
            "format": self.format,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
        }


@dataclass
class SourceRecord:
    name: str
    sealed_dsn: bytes
    display: str
    registered_by: str
    registered_at: dt.datetime | None = None


_DATASET_COLUMNS = (
    "name, owner, format, origin, row_count, columns, description, stats, created_at, loaded_at"
)


_SOURCE_COLUMNS = "name, dsn_ciphertext, display, registered_by, registered_at"


def _dataset(row: tuple[Any, ...]) -> DatasetRecord:
    return DatasetRecord(*row)


async def list_datasets(conn: AsyncConnection[Any]) -> list[DatasetRecord]:
    cur = await conn.execute(f"SELECT {_DATASET_COLUMNS} FROM analytics.datasets ORDER BY name")
    return [_dataset(r) for r in await cur.fetchall()]


async def list_dataset_names(conn: AsyncConnection[Any]) -> set[str]:
    cur = await conn.execute("SELECT name FROM analytics.datasets")
    return {str(r[0]) for r in await cur.fetchall()}


async def get_dataset(conn: AsyncConnection[Any], name: str, *, lock: bool = False) -> DatasetRecord | None:
    suffix = " FOR UPDATE" if lock else ""
    cur = await conn.execute(
        f"SELECT {_DATASET_COLUMNS} FROM analytics.datasets WHERE name = %s{suffix}", (name,)
    )
    row = await cur.fetchone()
    return None if row is None else _dataset(row)


async def save_dataset(conn: AsyncConnection[Any], record: DatasetRecord) -> None:
    """Insert or replace the catalog row; `created_at` survives a reload. The record takes the
    row's timestamps, so what a load returns says when it was loaded."""
    cur = await conn.execute(
        """
        INSERT INTO analytics.datasets (name, owner, format, origin, row_count, columns, description, stats)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (name) DO UPDATE SET
            owner = EXCLUDED.owner, format = EXCLUDED.format, origin = EXCLUDED.origin,
            row_count = EXCLUDED.row_count, columns = EXCLUDED.columns,
            description = EXCLUDED.description, stats = EXCLUDED.stats, loaded_at = now()
        RETURNING created_at, loaded_at
        """,
        (
            record.name,
            record.owner,
            record.format,
            record.origin,
            record.row_count,
            Jsonb(record.columns),
            record.description,
            Jsonb(record.stats),
        ),
    )
    row = await cur.fetchone()
    assert row is not None  # an upsert with RETURNING always yields its row
    record.created_at, record.loaded_at = row[0], row[1]


async def delete_dataset(conn: AsyncConnection[Any], name: str) -> None:
    await conn.execute("DELETE FROM analytics.datasets WHERE name = %s", (name,))


async def save_source(conn: AsyncConnection[Any], record: SourceRecord) -> None:
    await conn.execute(
        """
        INSERT INTO analytics.sources (name, dsn_ciphertext, display, registered_by) VALUES (%s, %s, %s, %s)
        ON CONFLICT (name) DO UPDATE SET dsn_ciphertext = EXCLUDED.dsn_ciphertext,
            display = EXCLUDED.display, registered_by = EXCLUDED.registered_by, registered_at = now()
        """,
        (record.name, record.sealed_dsn, record.display, record.registered_by),
    )


async def get_source(conn: AsyncConnection[Any], name: str) -> SourceRecord | None:
    cur = await conn.execute(
        f"SELECT {_SOURCE_COLUMNS} FROM analytics.sources WHERE name = %s",
        (name,),
    )
    row = await cur.fetchone()
    return None if row is None else SourceRecord(row[0], bytes(row[1]), row[2], row[3], row[4])


async def list_sources(conn: AsyncConnection[Any]) -> list[SourceRecord]:
    cur = await conn.execute(f"SELECT {_SOURCE_COLUMNS} FROM analytics.sources ORDER BY name")
    return [SourceRecord(r[0], bytes(r[1]), r[2], r[3], r[4]) for r in await cur.fetchall()]
