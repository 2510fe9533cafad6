"""Fixtures for the interop tests: the conformance fixture over HTTP and a real gateway.

`gateway_instance` runs `bastion up` as a user would, in a fresh home, with the conformance
fixture as a stdio upstream and as an HTTP upstream (a process of its own), and
`@modelcontextprotocol/server-everything` over stdio; the virtual servers `conformance` and
`conformance-http` (one per fixture upstream) admit the unauthenticated loopback test
principal (the suite cannot send credentials). Everything is stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from tests.gateway.interop.node import EVERYTHING, NodeToolchain, node24, require_npm_registry, unavailable

HERE = Path(__file__).resolve().parent
FIXTURE_SERVER = HERE / "conformance_server.py"
START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0
WARM_TIMEOUT = 240.0  # a cold npm cache downloads server-everything first


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process we started, then SIGKILL it if it outstays `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture(scope="session")
def toolchain() -> NodeToolchain:
    toolchain = node24()
    require_npm_registry()
    return toolchain


@contextmanager
def fixture_over_http() -> Iterator[str]:
    """A conformance fixture process serving Streamable HTTP on a free port; its URL."""
    port = free_port()
    argv = [sys.executable, str(FIXTURE_SERVER), "--transport", "http", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            wait_for(lambda: _accepts(port) or process.poll() is not None, 30, "the conformance fixture")
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"the conformance fixture exited: {log.read().decode(errors='replace')[-2000:]}")
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            stop_process(process, 10)


@pytest.fixture(scope="session")
def fixture_server_url() -> Iterator[str]:
    """The conformance fixture alone over Streamable HTTP: the direct baseline."""
    with fixture_over_http() as url:
        yield url


@dataclass
class GatewayInstance:
    home: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def mcp_url(self, virtual_server: str | None = None) -> str:
        return f"{self.url}/mcp" + (f"/{virtual_server}" if virtual_server else "")

    def bastion(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bastion.cli", *args]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def create_key(self, name: str, role: str = "admin") -> str:
        done = self.bastion("keys", "create", "--name", name, "--role", role, "--json")
        assert done.returncode == 0, (
            f"`bastion keys create` failed ({done.returncode}): {done.stderr.strip()}"
        )
        return str(json.loads(done.stdout)["key"])


def _config(everything_command: str, fixture_url: str) -> str:
    # Every suite run goes through one principal (the loopback test principal), and on a
    # fast host the suite sends over 150 requests a second: the default principal limit
    # (50/s, burst 100) would refuse some of them, and rate limits are not what the suite
    # checks (tests/gateway/test_ratelimit.py does).
    return f"""builtin_servers = ["system"]
rate_limit_per_second = 0

[upstreams.conformance]
transport = "stdio"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(FIXTURE_SERVER))}, "--transport", "stdio"]

[upstreams.conformance_http]
transport = "http"
url = {json.dumps(fixture_url)}

[upstreams.everything]
transport = "stdio"
command = {json.dumps(everything_command)}
args = ["-y", "{EVERYTHING}"]

[virtual_servers.conformance]
upstreams = ["conformance"]
allow_loopback_test_principal = true

[virtual_servers.conformance-http]
upstreams = ["conformance_http"]
allow_loopback_test_principal = true
"""


def _warm_everything(npx: str) -> None:
    """Download server-everything before the gateway starts it, so its start is not a download."""
    argv = [npx, "-y", EVERYTHING, "stdio"]
    try:  # the stdio server exits at end of input
        subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=WARM_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        unavailable(
            f"`npx -y {EVERYTHING}` did not finish within {WARM_TIMEOUT:.0f} s (npm registry too slow?)"
        )


def _running(home: Path) -> bool:
    try:
        return json.loads((home / "run" / "supervisor.json").read_text()).get("phase") == "running"
    except (FileNotFoundError, ValueError):
        return False


def _upstreams_ready(port: int) -> bool:
    """Every upstream connected: /readyz lists their states to loopback clients.

    A dual-era upstream's 2026-07-28 connection must be up too, or known to be unsupported.
    """
    try:
        upstreams = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).json().get("upstreams") or {}
    except (httpx.HTTPError, ValueError):
        return False
    modern_settled = all(
        u.get("modern", {}).get("state", "ready") in {"ready", "unsupported"} for u in upstreams.values()
    )
    return bool(upstreams) and all(u["state"] == "ready" for u in upstreams.values()) and modern_settled


def _require_mcp_endpoint(instance: GatewayInstance) -> None:
    """Fail, naming what is missing, when the gateway has no MCP endpoint yet (never skip)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28"}
    response = httpx.post(instance.mcp_url("conformance"), json=body, headers=headers, timeout=30.0)
    if response.status_code == 404:
        pytest.fail(
            f"the gateway answers 404 at {instance.mcp_url('conformance')}: its MCP endpoint (/mcp and "
            "virtual servers /mcp/<name>, issue 3) is not in place yet; these tests run once it lands.",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def gateway_instance(toolchain: NodeToolchain) -> Iterator[GatewayInstance]:
    npx = shutil.which("npx")
    if npx is None:
        unavailable("`npx` is not on PATH; the gateway starts server-everything with it")
    _warm_everything(npx)
    home = Path(tempfile.mkdtemp(prefix="bgi-", dir="/tmp"))  # short: the embedded server's socket path
    config = home / "bastion.toml"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        BASTION_HOME=str(home), BASTION_PORT=str(port), BASTION_CONFIG=str(config), BASTION_LOG_FORMAT="json"
    )
    argv = [sys.executable, "-m", "bastion.cli", "up"]
    # The same fixture as an HTTP upstream too: its own process, so the direct runs and the
    # runs through the gateway share no state.
    with fixture_over_http() as fixture_url:
        config.write_text(_config("npx", fixture_url))
        log = (home / "up.log").open("wb")
        process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            wait_for(
                lambda: _running(home) or process.poll() is not None, START_TIMEOUT, "`bastion up` to run"
            )
            if process.poll() is not None:
                pytest.fail(
                    f"`bastion up` exited {process.returncode}: {(home / 'up.log').read_text()[-3000:]}"
                )
            wait_for(lambda: _upstreams_ready(port), START_TIMEOUT, "every upstream to connect")
            instance = GatewayInstance(home=home, port=port, env=env, process=process)
            _require_mcp_endpoint(instance)
            yield instance
        finally:
            stop_process(process)
            log.close()
            if (home / "pgdata" / "PG_VERSION").exists():
                EmbeddedPostgres(Home(home)).stop()
            shutil.rmtree(home, ignore_errors=True)
