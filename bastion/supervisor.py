"""`bastion up`: start an instance, keep it running, stop all of it on a signal.

The supervisor owns the embedded database (as one of its holders), the gateway and
every built-in server configured to run over HTTP. Children are started with a
parent-death signal, so a `kill -9` of the supervisor takes them down too; the
database survives and is reused by the next `bastion up`. A crashed child is
restarted with exponential backoff. SIGINT or SIGTERM stops the children, then the
database if no other process holds it, and removes the state file.

The state file (`$BASTION_HOME/run/supervisor.json`) is what `bastion status` reads.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil

from bastion.components import all_migration_sets
from bastion.db.database import Database
from bastion.errors import ConfigError, PortInUseError, RuntimeFailure
from bastion.home import Home
from bastion.settings import Settings

__all__ = ["Child", "Supervisor", "read_state"]

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
STABLE_AFTER = 30.0  # a child up this long has its backoff reset
STOP_GRACE = 10.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    health_url: str
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 0.5
    next_start: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                preexec_fn=_die_with_parent,
                start_new_session=False,
            )
        self.started_at = time.monotonic()
        logger.info("started %s (pid %s)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = STOP_GRACE) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.0f s; killing it", self.name, grace)
            self.process.kill()
            self.process.wait(5)

    def describe(self) -> dict[str, Any]:
        return {
            "pid": self.process.pid if self.process else None,
            "url": self.health_url.rsplit("/", 1)[0],
            "restarts": self.restarts,
            "log": str(self.log_path),
            **self.extra,
        }


def check_port_free(host: str, port: int, what: str, setting: str) -> None:
    """Fail with one line naming the port and the fix when `host:port` is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            owner = _port_owner(port)
            by = f" by {owner}" if owner else ""
            raise PortInUseError(
                f"cannot listen on {host}:{port} for the {what}: {exc.strerror}{by}. "
                f"Stop that process or choose another port with {setting}=PORT."
            ) from None


def _port_owner(port: int) -> str | None:
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="inet"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                return f"pid {conn.pid} ({psutil.Process(conn.pid).name()})"
    return None


def read_state(home: Home) -> dict[str, Any] | None:
    """The running supervisor's state, or None when none runs for this home."""
    try:
        state = json.loads(home.supervisor_state.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not _same_process(state.get("pid"), state.get("create_time")):
        return None
    return state


def _same_process(pid: Any, create_time: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        proc = psutil.Process(pid)
        return abs(proc.create_time() - float(create_time)) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, TypeError, ValueError):
        return False


class Supervisor:
    """Runs one instance until a signal asks it to stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = Home(settings.home)
        self.database = Database(settings, home=self.home)
        self.children: list[Child] = []
        self._stopping = threading.Event()
        self._owns_state = False
        self.phase = "starting"
        self.started = time.time()

    # -- start -----------------------------------------------------------------

    def prepare(self) -> None:
        """Everything that can fail with a clear message, before any child starts."""
        self.home.ensure()
        existing = read_state(self.home)
        if existing is not None:
            raise ConfigError(
                f"Bastion already runs for {self.home.path} (supervisor pid {existing['pid']}, "
                f"gateway {existing.get('gateway_url')}). Stop it first, or use another BASTION_HOME."
            )
        self._reap_orphans()
        self.home.instance_key(create=True)
        check_port_free(self.settings.host, self.settings.port, "gateway", "BASTION_PORT")
        for name, server in self.settings.servers.items():
            if server.transport == "http" and server.port:
                check_port_free(server.host, server.port, f"{name} server", f"servers.{name}.port")
        if self.settings.redis_url is not None:
            _check_redis(self.settings.redis_url.get_secret_value())

    def _reap_orphans(self) -> None:
        """Children of a supervisor that was killed -9 may still run; stop them."""
        try:
            stale = json.loads(self.home.supervisor_state.read_text())
        except (FileNotFoundError, ValueError):
            return
        for name, child in (stale.get("children") or {}).items():
            if _same_process(child.get("pid"), child.get("create_time")):
                logger.warning("stopping %s (pid %s) left by a previous supervisor", name, child["pid"])
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(child["pid"])
                    proc.terminate()
                    proc.wait(STOP_GRACE)
        self.home.supervisor_state.unlink(missing_ok=True)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["BASTION_HOME"] = str(self.home.path)
        env["BASTION_SUPERVISED"] = "1"
        env.setdefault("BASTION_LOG_FORMAT", "json")
        return env

    def _children(self) -> list[Child]:
        python = sys.executable
        env = self._child_env()
        host, port = self.settings.host, self.settings.port
        url_host = f"[{host}]" if ":" in host else host
        # Servers over HTTP with `port = 0` get a free port here; the gateway learns every
        # port through its environment (which wins over bastion.toml), so it finds them.
        ports = {
            name: server.port or _free_port(server.host)
            for name, server in self.settings.servers.items()
            if server.transport == "http"
        }
        gateway_env = env
        if ports:
            servers = {
                name: {**server.model_dump(mode="json"), **({"port": ports[name]} if name in ports else {})}
                for name, server in self.settings.servers.items()
            }
            gateway_env = {**env, "BASTION_SERVERS": json.dumps(servers)}
        children = [
            Child(
                name="gateway",
                argv=[python, "-m", "bastion.cli", "gateway", "--host", host, "--port", str(port)],
                health_url=f"http://{url_host}:{port}/healthz",
                log_path=self.home.logs / "gateway.log",
                env=gateway_env,
            )
        ]
        for name, server in sorted(self.settings.servers.items()):
            if server.transport != "http":
                continue  # stdio servers are the gateway's children
            server_port = ports[name]
            children.append(
                Child(
                    name=name,
                    argv=[
                        python,
                        "-m",
                        "bastion.cli",
                        "serve",
                        name,
                        "--transport",
                        "http",
                        "--host",
                        server.host,
                        "--port",
                        str(server_port),
                    ],
                    health_url=f"http://{server.host}:{server_port}/healthz",
                    log_path=self.home.logs / f"{name}.log",
                    env=env,
                )
            )
        return children

    def start(self) -> None:
        """Start the database and the children; `prepare()` must have passed."""
        self._owns_state = True
        anyio.run(self._prepare_database)
        self.children = self._children()
        try:
            for child in self.children:
                child.start()
            self.write_state()
            for child in self.children:
                self._wait_healthy(child)
        except BaseException:
            self.shutdown()
            raise
        self.phase = "running"
        self.write_state()

    async def _prepare_database(self) -> None:
        await self.database.resolve()
        applied = await self.database.migrate(all_migration_sets())
        if applied:
            logger.info("applied %d migration(s): %s", len(applied), ", ".join(applied))

    def _wait_healthy(self, child: Child) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not child.alive():
                    code = child.process.returncode if child.process else "?"
                    raise RuntimeFailure(
                        f"{child.name} exited during start (code {code}): {_tail(child.log_path)}. "
                        f"Full log: {child.log_path}."
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(child.health_url).status_code == 200:
                        return
                if self._stopping.wait(0.05):
                    return
        raise RuntimeFailure(
            f"{child.name} did not become healthy within {self.settings.startup_timeout:.0f} s "
            f"({child.health_url}). Its log: {child.log_path}."
        )

    # -- run -------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGINT/SIGTERM; return the exit code."""
        self.prepare()  # refusals happen here, before anything is started or owned
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            self.announce()
            while not self._stopping.wait(0.2):
                self._watch()
        finally:
            self.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _on_signal(self, signum: int, _frame: Any) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        self._stopping.set()

    def _watch(self) -> None:
        now = time.monotonic()
        changed = False
        for child in self.children:
            if child.alive():
                if now - child.started_at > STABLE_AFTER:
                    child.backoff = 0.5
                continue
            if child.next_start == 0.0:
                code = child.process.returncode if child.process else None
                child.next_start = now + child.backoff
                logger.warning("%s exited (code %s); restarting in %.1f s", child.name, code, child.backoff)
                child.backoff = min(child.backoff * 2, self.settings.restart_backoff_max)
            elif now >= child.next_start:
                child.next_start = 0.0
                child.restarts += 1
                child.start()
                changed = True
        if changed:
            self.write_state()

    def announce(self) -> None:
        db = (
            "embedded PostgreSQL 18 (" + str(self.home.pgdata) + ")"
            if self.database.embedded
            else "DATABASE_URL"
        )
        store = "Redis (REDIS_URL)" if self.settings.redis_url else "PostgreSQL"
        lines = [
            f"Bastion is up (supervisor pid {os.getpid()}, home {self.home.path})",
            f"  gateway   {self.children[0].health_url.rsplit('/', 1)[0]}",
            *[f"  {c.name:<9} {c.health_url.rsplit('/', 1)[0]}/mcp" for c in self.children[1:]],
            f"  database  {db}",
            f"  store     {store}",
            f"  logs      {self.home.logs}",
            "Press Ctrl+C to stop.",
        ]
        print("\n".join(lines), flush=True)

    def write_state(self) -> None:
        children: dict[str, Any] = {}
        for child in self.children:
            info = child.describe()
            if child.process is not None:
                with contextlib.suppress(psutil.Error):
                    info["create_time"] = psutil.Process(child.process.pid).create_time()
            children[child.name] = info
        embedded = self.database.embedded.status().as_dict() if self.database.embedded else None
        state = {
            "pid": os.getpid(),
            "create_time": psutil.Process().create_time(),
            "started_at": self.started,
            "home": str(self.home.path),
            "phase": self.phase,
            "gateway_url": self.children[0].health_url.rsplit("/", 1)[0] if self.children else None,
            "children": children,
            "database": {"embedded": embedded is not None, **(embedded or {})},
            "store": "redis" if self.settings.redis_url else "postgres",
        }
        tmp = self.home.supervisor_state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.home.supervisor_state)

    # -- stop ------------------------------------------------------------------

    def shutdown(self) -> None:
        self._stopping.set()
        if not self._owns_state:
            return
        for child in reversed(self.children):
            child.stop()
        with contextlib.suppress(Exception):
            anyio.run(self.database.close)
        self.home.supervisor_state.unlink(missing_ok=True)
        self._owns_state = False
        logger.info("stopped")


def _check_redis(url: str) -> None:
    import redis

    from bastion.settings import redact_url

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise ConfigError(
            f"cannot reach Redis at REDIS_URL={redact_url(url)} ({exc}). "
            "Start Redis, fix REDIS_URL, or unset it to keep stores in PostgreSQL."
        ) from None
    finally:
        client.close()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"
