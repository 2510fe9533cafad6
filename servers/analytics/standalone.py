"""Loading a file without a running server: what `bastion dataset load` calls.

It opens the instance database with the analytics migrations applied, loads the file
as the local owner, and closes everything again.
"""

from __future__ import annotations

from pathlib import Path

from bastion.caller import CallerContext
from bastion.db.database import Database
from bastion.home import Home
from bastion.settings import Settings
from servers.analytics.catalog import DatasetRecord
from servers.analytics.config import AnalyticsConfig
from servers.analytics.readers import Progress, ReadOptions
from servers.analytics.service import AnalyticsService

__all__ = ["load_file"]


async def load_file(
    settings: Settings,
    path: str | Path,
    name: str,
    *,
    fmt: str | None = None,
    column_types: dict[str, str] | None = None,
    read_options: ReadOptions | None = None,
    description: str | None = None,
    progress: Progress | None = None,
) -> DatasetRecord:
    """Load `path` into dataset `name` of the instance at `settings.home`, as the local owner
    (a relative `path` is read under its uploads folder, as the `load_dataset` tool reads it)."""
    from bastion.components import kernel_migrations
    from servers.analytics.migrations import MIGRATIONS

    key = Home(settings.home).instance_key(create=True)
    database = Database(settings)
    await database.open(migrations=[kernel_migrations(), MIGRATIONS])
    try:
        service = AnalyticsService(database, key, settings.home, AnalyticsConfig.from_environ())
        return await service.load(
            CallerContext.local_owner(),
            name,
            path=str(path),
            fmt=fmt,
            column_types=column_types,
            read_options=read_options,
            description=description,
            progress=progress,
        )
    finally:
        await database.close()
