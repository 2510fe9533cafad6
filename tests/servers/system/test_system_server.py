"""The `system` server end to end: `bastion serve system` as a real process, over stdio and HTTP.

The subprocesses attach to the session's embedded PostgreSQL through BASTION_HOME.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import RequestParamsMeta

from bastion.caller import META_KEY, CallerContext, sign_caller
from bastion.db.database import Database
from bastion.home import Home
from bastion.mcp import ServerRuntime, build_server
from bastion.mcp.caller_middleware import CALLER_REFUSED
from bastion.settings import Settings
from servers.system.server import spec

REPO = Path(__file__).resolve().parents[3]
SERVE = [sys.executable, "-m", "bastion.cli", "serve", "system"]
START_TIMEOUT = 90
READ_TIMEOUT = 2  # seconds the HTTP server gives a request to arrive (the setting is 30 by default)


def _env(home: Path) -> dict[str, str]:
    # Nothing from the developer's environment may point the child elsewhere.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BASTION_") and k not in {"DATABASE_URL", "REDIS_URL", "OPA_URL"}
    }
    env["BASTION_HOME"] = str(home)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            pytest.fail(f"the server (pid {proc.pid}) ignored SIGTERM for 30 s")
    return proc.returncode


def _signed(home: Path, key: bytes | None = None) -> RequestParamsMeta:
    ctx = CallerContext.expiring(subject="alice", tenant="acme", roles=["analyst"], ttl=120)
    return {META_KEY: sign_caller(ctx, key or Home(home).instance_key())}


async def test_bastion_serve_system_over_stdio_answers_version(shared_home: Path) -> None:
    params = StdioServerParameters(
        command=SERVE[0], args=[*SERVE[1:], "--transport", "stdio"], env=_env(shared_home), cwd=str(REPO)
    )
    with anyio.fail_after(START_TIMEOUT):
        async with Client(params) as client:
            version = await client.call_tool("version", {})
            health = await client.call_tool("health", {})
    assert not version.is_error
    info = version.structured_content
    assert info is not None
    assert info["mcp_sdk"].startswith("2.")
    assert {"2025-11-25", "2026-07-28"} <= set(info["protocol_versions"])
    report = health.structured_content
    assert report is not None
    assert report["status"] == "ok"
    assert report["server"]["transport"] == "stdio"
    assert report["caller"]["tenant"] == "local"


@pytest.fixture(scope="module")
def http_server(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`bastion serve system --transport http` on a free port; its URL. Stopped by PID."""
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [*SERVE, "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
            env={**_env(shared_home), "BASTION_REQUEST_READ_TIMEOUT": str(READ_TIMEOUT)},
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the server did not listen within {START_TIMEOUT}s:\n{log.read_text()}")
                time.sleep(0.1)  # polling a port another process opens: no event to wait on
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        code = _stop(proc)
    assert code == 0, f"unclean shutdown ({code}):\n{log.read_text()}"


def test_over_http_healthz_answers_without_credentials_and_names_the_server(http_server: str) -> None:
    health = httpx.get(http_server.removesuffix("/mcp") + "/healthz", timeout=10)
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["server"] == "system" and body["uptime_s"] >= 0


def test_over_http_a_request_that_stalls_halfway_is_answered_408_and_its_connection_closed(
    http_server: str,
) -> None:
    """The server keeps the gateway's read deadline: a client that sends half a request
    and stops holds its connection for `request_read_timeout`, not for ever."""
    port = int(http_server.rsplit(":", 1)[1].split("/", 1)[0])
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT * 10) as conn:
        started = time.monotonic()
        conn.sendall(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n{")
        raw = b""
        while chunk := conn.recv(65536):  # the server closes it: recv returns b""
            raw += chunk
        waited = time.monotonic() - started
    assert raw.startswith(b"HTTP/1.1 408 "), raw[:200]
    assert b"did not arrive whole within 2 s" in raw
    assert READ_TIMEOUT * 0.9 <= waited < READ_TIMEOUT * 5


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_over_http_a_call_without_caller_context_is_refused(http_server: str, mode: str) -> None:
    with anyio.fail_after(30):
        async with Client(http_server, mode=mode) as client:
            with pytest.raises(MCPError) as info:
                await client.call_tool("version", {})
    assert info.value.code == CALLER_REFUSED
    assert "no caller context" in info.value.message


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_over_http_a_call_signed_with_the_instance_key_succeeds(
    http_server: str, shared_home: Path, mode: str
) -> None:
    with anyio.fail_after(30):
        async with Client(http_server, mode=mode) as client:
            await client.list_tools(meta=_signed(shared_home))
            version = await client.call_tool("version", {}, meta=_signed(shared_home))
            health = await client.call_tool("health", {}, meta=_signed(shared_home))
    assert version.structured_content is not None
    assert version.structured_content["server"] == "system"
    report = health.structured_content
    assert report is not None
    assert report["status"] == "ok"
    assert report["server"]["transport"] == "http"
    assert report["caller"] == {
        "subject": "alice",
        "tenant": "acme",
        "roles": ["analyst"],
        "obligations": {
            "allowed_collections": None,
            "allowed_datasets": None,
            "row_limit": None,
            "redact": [],
        },
    }


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_over_http_a_forged_caller_context_is_refused(
    http_server: str, shared_home: Path, mode: str
) -> None:
    forged = _signed(shared_home, key=secrets.token_bytes(32))
    with anyio.fail_after(30):
        async with Client(http_server, mode=mode) as client:
            with pytest.raises(MCPError) as info:
                await client.call_tool("version", {}, meta=forged)
    assert info.value.code == CALLER_REFUSED
    assert "not signed with this instance's key" in info.value.message


def test_serving_http_on_a_port_in_use_fails_with_one_line_naming_the_port(shared_home: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*SERVE, "--transport", "http", "--port", str(port)],
            env=_env(shared_home),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    last = done.stderr.decode().strip().splitlines()[-1]
    assert last.startswith(f"bastion: error: port {port} on 127.0.0.1 is already in use")
    assert "--port" in last


@pytest.fixture
async def system_runtime(settings: Settings, database: Database) -> AsyncIterator[ServerRuntime]:
    async with ServerRuntime.open(spec, settings, transport="stdio", database=database) as runtime:
        yield runtime


async def test_health_reports_database_store_and_server_in_process(system_runtime: ServerRuntime) -> None:
    async with Client(build_server(spec, system_runtime)) as client:
        result = await client.call_tool("health", {})
    report = result.structured_content
    assert report is not None
    assert report["status"] == "ok"
    database = report["database"]
    assert database["reachable"] is True
    assert database["server_version"].startswith("18")
    assert database["pgvector_version"]
    assert database["latency_ms"] >= 0
    assert report["store"]["backend"] == "postgres"
    assert report["store"]["latency_ms"] >= 0
    assert report["server"]["name"] == "system"
    assert report["server"]["uptime_s"] >= 0


async def test_health_is_degraded_not_failing_when_the_store_is_down(system_runtime: ServerRuntime) -> None:
    await system_runtime.store.close()
    async with Client(build_server(spec, system_runtime)) as client:
        result = await client.call_tool("health", {})
    report = result.structured_content
    assert report is not None
    assert report["status"] == "degraded"
    assert report["store"]["status"] == "down"
    assert report["database"]["status"] == "ok"
