"""Fixtures shared by the whole suite: instance homes, the embedded database, services.

Real services only: the embedded PostgreSQL 18 (one per test session, started here),
the Redis at BASTION_TEST_REDIS_URL and the PostgreSQL 15 at BASTION_TEST_PG_URL
(both started by `make test` when missing).
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest

from bastion.db.database import Database
from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from bastion.settings import Settings

REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG15_URL = os.environ.get("BASTION_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _short_tmp(prefix: str) -> Path:
    # Short paths keep the embedded server's Unix socket under the 108-byte limit,
    # and /tmp is outside /root, which the embedded server needs when run as root.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture
def home_path() -> Iterator[Path]:
    """A fresh, empty BASTION_HOME for one test."""
    path = _short_tmp("bh-")
    yield path
    EmbeddedPostgres(Home(path)).stop() if (path / "pgdata" / "PG_VERSION").exists() else None
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def other_home() -> Iterator[Path]:
    """A second fresh BASTION_HOME, for moving an instance (restore) from `home_path`."""
    path = _short_tmp("bhr-")
    yield path
    EmbeddedPostgres(Home(path)).stop() if (path / "pgdata" / "PG_VERSION").exists() else None
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_home() -> Iterator[Path]:
    """One instance home with a running embedded server, shared by the session."""
    path = _short_tmp("bhs-")
    embedded = EmbeddedPostgres(Home(path))
    embedded.acquire()
    yield path
    embedded.stop()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def settings(shared_home: Path) -> Settings:
    """Settings of the shared embedded instance, with nothing read from the environment."""
    return Settings(home=shared_home, database_url=None, redis_url=None, opa_url=None)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    """An open pool on the shared embedded database (kernel migrations applied)."""
    from bastion.components import kernel_migrations

    db = Database(settings)
    await db.open(migrations=[kernel_migrations()])
    yield db
    await db.close(release_embedded=False)


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis answers at {REDIS_URL} ({exc}); run `make test`, which starts one")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def pg15_url() -> str:
    try:
        with psycopg.connect(PG15_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"no PostgreSQL answers at {PG15_URL} ({exc}); run `make test`, which starts one")
    return PG15_URL


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: skipped when absent, a failure under CI=true."""
    if not SHARED_DATA.is_dir():
        message = f"{SHARED_DATA} is absent: the evaluation data lives beside the repository"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """The collector as the test found it, whatever the test froze (`gc.freeze`)."""
    assert gc.get_freeze_count() == 0
    yield
    gc.unfreeze()
