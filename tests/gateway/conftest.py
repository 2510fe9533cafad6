"""A real gateway process for the gateway's integration tests.

`gateway` runs `bastion gateway` (the process the supervisor runs) on the session's
embedded database, with the built-in `system` server, the counting test upstream and
two virtual servers, and creates API keys for each role with `bastion keys create`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from tests.gateway.interop.conftest import fixture_over_http

HERE = Path(__file__).resolve().parent
COUNTER = HERE / "fixtures" / "counting_server.py"
START_TIMEOUT = 120.0


@dataclass
class GatewayProcess:
    url: str
    home: Path
    log: Path
    counter_log: Path
    env: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict[str, str])

    def counted(self) -> list[str]:
        return self.counter_log.read_text().splitlines() if self.counter_log.exists() else []

    def key(self, role: str) -> str:
        """A key of `role` made once for this gateway and reused."""
        if role not in self.keys:
            self.keys[role] = self.new_key(role, f"test-{role}-{len(self.keys)}")
        return self.keys[role]

    def new_key(self, role: str, name: str) -> str:
        return str(self.new_key_record(role, name)["key"])

    def new_key_record(self, role: str, name: str) -> dict[str, Any]:
        """`bastion keys create --json` for this gateway: the key's id, key, role, ..."""
        done = subprocess.run(
            [sys.executable, "-m", "bastion.cli", "keys", "create", "--name", name, "--role", role, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return cast(dict[str, Any], json.loads(done.stdout))

    def revoke_key(self, key_id: str) -> None:
        """`bastion keys revoke ID` for this gateway's database."""
        subprocess.run(
            [sys.executable, "-m", "bastion.cli", "keys", "revoke", key_id],
            env=self.env,
            capture_output=True,
            timeout=60,
            check=True,
        )


def listen_request(
    key: str, uris: list[str], request_id: str = "", *, tools_changed: bool = False
) -> tuple[dict[str, str], str]:
    """Headers and body of a 2026-07-28 `subscriptions/listen` for resource updates of `uris`
    (and, with `tools_changed`, tool list changes)."""
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "subscriptions/listen",
        "authorization": f"Bearer {key}",
        **({"x-request-id": request_id} if request_id else {}),
    }
    envelope = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    wanted: dict[str, object] = {"resourceSubscriptions": uris}
    if tools_changed:
        wanted["toolsListChanged"] = True
    params = {"notifications": wanted, "_meta": envelope}
    body = {"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": params}
    return headers, json.dumps(body)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        body = httpx.get(url + "/readyz", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return False
    upstreams = body.get("upstreams") or {}
    return bool(upstreams) and all(u["state"] == "ready" for u in upstreams.values())


def counter_upstream(counter_log: Path, **settings: object) -> str:
    """The counting test upstream as an `[upstreams.counter]` table, with extra settings."""
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    return f"""
[upstreams.counter]
transport = "stdio"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(COUNTER))}]
env = {{ COUNTING_SERVER_LOG = {json.dumps(str(counter_log))} }}
{extra}"""


@contextmanager
def counter_gateway(
    home: Path, tmp_path_factory: pytest.TempPathFactory, name: str, settings: str
) -> Iterator[GatewayProcess]:
    """A gateway on `home` serving only the counting upstream, with `settings` (TOML lines)
    in its bastion.toml, until the block ends."""
    work = tmp_path_factory.mktemp(name)
    counter_log = work / "counter.log"
    config = f"builtin_servers = []\n{settings}\n{counter_upstream(counter_log)}"
    with running_gateway(home, work, config, counter_log) as process:
        yield process


@contextmanager
def running_gateway(
    home: Path,
    work: Path,
    config_text: str,
    counter_log: Path,
    ready: Callable[[str], bool] | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[GatewayProcess]:
    """`bastion gateway` on `home` with `config_text` as its bastion.toml, until the block ends.

    `ready(url)`: when to hand the gateway over (default: every upstream ready).
    `extra_env`: more environment (`DATABASE_URL`, `REDIS_URL`), also for its CLI commands.
    """
    ready = ready or _ready
    config = work / "bastion.toml"
    config.write_text(config_text)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"BASTION_HOME": str(home), "BASTION_CONFIG": str(config), "BASTION_LOG_FORMAT": "json"})
    env.update(extra_env or {})
    log = work / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli", "gateway", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gateway did not become ready: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield GatewayProcess(url=url, home=home, log=log, counter_log=counter_log, env=env)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture(scope="module")
def gateway(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("gateway")
    counter_log = work / "counter.log"
    config = f"""
builtin_servers = ["system"]
{counter_upstream(counter_log)}
[virtual_servers.solo]
upstreams = ["counter"]
[virtual_servers.open]
upstreams = ["counter"]
allow_loopback_test_principal = true
"""
    with running_gateway(shared_home, work, config, counter_log) as process:
        yield process


@pytest.fixture
def http_fixture_url() -> Iterator[str]:
    """The conformance fixture over Streamable HTTP, as an HTTP upstream."""
    with fixture_over_http() as url:
        yield url


@pytest.fixture
def stalled_redis_url() -> Iterator[str]:
    """A socket that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
