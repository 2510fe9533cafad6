"""The embedded PostgreSQL: start, share, survive crashes, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from bastion.db.database import Database
from bastion.db.embedded import EmbeddedPostgres, auto_shared_buffers_mb
from bastion.errors import HomeError, PgvectorMissingError
from bastion.home import Home
from bastion.settings import Settings


def _settings(home: Path, **extra: object) -> Settings:
    return Settings(home=home, database_url=None, redis_url=None, **extra)  # type: ignore[arg-type]


def _wait_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid):
            return True
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_embedded_server_starts_with_pgvector_and_keeps_data_across_restarts(home_path: Path) -> None:
    embedded = EmbeddedPostgres(Home(home_path))
    dsn = embedded.acquire()
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 180000
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute("CREATE TABLE kept (v vector(3))")
        conn.execute("INSERT INTO kept VALUES ('[1,2,3]')")
    first_pid = embedded.status().pid
    assert embedded.release() is True
    assert first_pid is not None and _wait_gone(first_pid)
    assert embedded.status().running is False

    dsn = embedded.acquire()
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT v::text FROM kept").fetchone()
    assert row == ("[1,2,3]",)
    assert embedded.release() is True


def test_server_listens_on_a_private_unix_socket_only(home_path: Path) -> None:
    embedded = EmbeddedPostgres(Home(home_path))
    dsn = embedded.acquire()
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SHOW listen_addresses").fetchone()
        assert row == ("",)
        assert (embedded.socket_dir.stat().st_mode & 0o777) == 0o700
    finally:
        embedded.release()


def test_two_processes_share_one_server_and_the_last_holder_stops_it(home_path: Path) -> None:
    embedded = EmbeddedPostgres(Home(home_path))
    embedded.acquire()
    server_pid = embedded.status().pid
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from bastion.db.embedded import EmbeddedPostgres
        from bastion.home import Home
        e = EmbeddedPostgres(Home(Path({str(home_path)!r})))
        e.acquire()
        print(e.status().pid, flush=True)
        sys.stdin.readline()
        print(e.release(), flush=True)
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as other:
        try:
            assert other.stdout is not None and other.stdin is not None
            assert int(other.stdout.readline()) == server_pid
            assert sorted(embedded.status().holders) == sorted([os.getpid(), other.pid])
            # This process leaves first: the server must keep running for the other one.
            assert embedded.release() is False
            assert embedded.status().running
            other.stdin.write("\n")
            other.stdin.flush()
            assert other.stdout.readline().strip() == "True"
            assert other.wait(30) == 0
        finally:
            if other.poll() is None:
                other.kill()
                other.wait(10)
    assert embedded.status().running is False


def test_a_killed_holder_is_pruned_and_does_not_keep_the_server_alive(home_path: Path) -> None:
    embedded = EmbeddedPostgres(Home(home_path))
    script = (
        "from pathlib import Path; from bastion.db.embedded import EmbeddedPostgres; "
        "from bastion.home import Home;"
        f"EmbeddedPostgres(Home(Path({str(home_path)!r}))).acquire(); print('up', flush=True); input()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as other:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "up"
        other.send_signal(signal.SIGKILL)
        other.wait(10)
    embedded.acquire()
    assert embedded.status().holders == [os.getpid()]
    assert embedded.release() is True


def test_a_crashed_server_with_a_stale_pid_file_starts_again(home_path: Path) -> None:
    embedded = EmbeddedPostgres(Home(home_path))
    embedded.acquire()
    pid = embedded.status().pid
    assert pid is not None
    psutil.Process(pid).kill()  # the postmaster dies without cleaning up
    assert _wait_gone(pid)
    pid_file = home_path / "pgdata" / "postmaster.pid"
    assert pid_file.exists()
    # Point the stale file at a live process that is not postgres: still recoverable.
    lines = pid_file.read_text().splitlines()
    lines[0] = str(os.getpid())
    pid_file.write_text("\n".join(lines) + "\n")

    dsn = embedded.acquire()
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert embedded.status().pid not in (None, pid)
    embedded.stop()


def test_a_home_under_root_is_refused_when_running_as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("only root is refused a home under /root")
    embedded = EmbeddedPostgres(Home(Path("/root/bastion-home-test")))
    with pytest.raises(HomeError, match="outside /root"):
        embedded.acquire()
    assert not Path("/root/bastion-home-test").exists()


async def test_database_url_without_pgvector_is_refused_with_the_fix(home_path: Path, pg15_url: str) -> None:
    settings = Settings(home=home_path, database_url=pg15_url, redis_url=None)  # type: ignore[arg-type]
    db = Database(settings)
    with pytest.raises(PgvectorMissingError) as caught:
        await db.open()
    message = str(caught.value)
    assert "pgvector" in message and "127.0.0.1:5432/test" in message
    assert "unset DATABASE_URL" in message
    assert "postgres@" not in message  # no credentials in messages


async def test_database_opens_a_pool_on_the_embedded_server(home_path: Path) -> None:
    db = Database(_settings(home_path))
    await db.open()
    try:
        async with db.pool.connection() as conn:
            cur = await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            assert await cur.fetchone() is not None
    finally:
        await db.close()
    assert EmbeddedPostgres(Home(home_path)).status().running is False


async def test_shared_buffers_come_from_the_setting_or_from_the_machine_memory(home_path: Path) -> None:
    db = Database(_settings(home_path, embedded_shared_buffers_mb=48))
    await db.open()
    try:
        async with db.pool.connection() as conn:
            cur = await conn.execute("SHOW shared_buffers")
            assert await cur.fetchone() == ("48MB",)
    finally:
        await db.close()
    assert 128 <= auto_shared_buffers_mb() <= 2048
    assert EmbeddedPostgres(Home(home_path)).shared_buffers_mb == auto_shared_buffers_mb()
