"""Datasets after `bastion db restore` into another instance, whose cluster has none of
the reader roles (a dump holds no roles or grants)."""

from __future__ import annotations

from pathlib import Path

from bastion.caller import CallerContext, Obligations
from bastion.components import kernel_migrations
from bastion.db.backup import backup, restore
from bastion.db.database import Database
from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from bastion.settings import Settings
from servers.analytics import AnalyticsConfig
from servers.analytics.migrations import MIGRATIONS
from servers.analytics.service import AnalyticsService

OWNER = CallerContext.local_owner()
ANALYST = CallerContext.expiring(
    subject="ann", tenant="default", roles=["analyst"], obligations=Obligations(allowed_datasets=("sales",))
)


def _database(home: Path) -> Database:
    return Database(Settings(home=home, database_url=None, redis_url=None, opa_url=None))


async def _service(home: Path) -> AnalyticsService:
    database = _database(home)
    await database.open(migrations=[kernel_migrations(), MIGRATIONS])
    return AnalyticsService(database, Home(home).instance_key(create=True), home, AnalyticsConfig())


async def _restored(home_path: Path, other_home: Path, tmp_path: Path) -> AnalyticsService:
    first = await _service(home_path)
    await first.load(OWNER, "sales", content="id,v\n1,2\n3,4\n")
    await first.load(OWNER, "costs", content="id,v\n1,1\n")
    assert (await first.query(ANALYST, "SELECT sum(v) FROM sales", None, 10, None))["rows"] == [[6]]
    await backup(first.database, tmp_path / "instance.backup")
    await first.database.close()
    EmbeddedPostgres(Home(home_path)).stop()
    target = _database(other_home)
    await restore(target, tmp_path / "instance.backup")
    await target.close()
    return await _service(other_home)


async def test_queries_reloads_and_drops_work_on_a_restored_instance(
    home_path: Path, other_home: Path, tmp_path: Path
) -> None:
    service = await _restored(home_path, other_home, tmp_path)
    try:
        # A reload and a drop first, before any query has made a role again.
        reloaded = await service.load(OWNER, "sales", content="id,v\n1,2\n3,5\n")
        dropped = await service.drop(OWNER, "costs")
        plain = await service.query(ANALYST, "SELECT 1", None, 10, None)
        summed = await service.query(ANALYST, "SELECT sum(v) FROM sales", None, 10, None)
        owner = await service.query(OWNER, "SELECT count(*) FROM sales", None, 10, None)
    finally:
        await service.database.close()
    assert reloaded.row_count == 2
    assert dropped["dropped"] is True
    assert plain["rows"] == [[1]]
    assert summed["rows"] == [[7]]
    assert owner["rows"] == [[2]]
