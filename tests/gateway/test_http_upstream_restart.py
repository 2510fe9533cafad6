"""An HTTP upstream that restarts forgets its sessions: the gateway notices on the next call,
says so, reconnects with a new session, and calls work again."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from tests.gateway.conftest import GatewayProcess, _free_port, running_gateway
from tests.gateway.test_gateway import _client, _sample, _scrape


class SystemServer:
    """`bastion serve system --transport http` on a fixed port, restartable. Stopped by PID."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {"BASTION_HOME": str(self.home), "BASTION_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"}
        argv = [sys.executable, "-m", "bastion.cli", "serve", "system", "--transport", "http"]
        self.process = subprocess.Popen(
            [*argv, "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None, "the system server exited at start"
                assert time.monotonic() < deadline, "the system server did not listen within 60 s"
                time.sleep(0.1)  # polling a port another process opens: no event to wait on

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture(scope="module")
def system_over_http(shared_home: Path) -> Iterator[SystemServer]:
    server = SystemServer(shared_home, _free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def behind_gateway(
    shared_home: Path, tmp_path_factory: pytest.TempPathFactory, system_over_http: SystemServer
) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("http-upstream")
    config = (
        'builtin_servers = ["system"]\n'
        f'[servers.system]\ntransport = "http"\nport = {system_over_http.port}\n'
    )
    with running_gateway(shared_home, work, config, work / "unused.log") as process:
        yield process


async def _progress(done: float, total: float | None, message: str | None) -> None:
    del done, total, message


async def test_a_restarted_http_upstream_gets_a_new_session(
    behind_gateway: GatewayProcess, system_over_http: SystemServer
) -> None:
    """Plain calls reach a 2026-07-28 upstream statelessly and never notice a restart; a
    call with progress goes over the gateway's session with the upstream, which the
    restart ended."""
    key = behind_gateway.key("admin")
    async with _client(behind_gateway.url + "/mcp", key, "legacy") as client:
        assert not (await client.call_tool("system_version", {}, progress_callback=_progress)).is_error
    restarts = _sample(_scrape(behind_gateway), "bastion_upstream_restarts_total", upstream="system")

    system_over_http.stop()
    system_over_http.start()  # same port, no sessions

    said: list[str] = []
    with anyio.fail_after(60):
        while True:
            async with _client(behind_gateway.url + "/mcp", key, "legacy") as client:
                try:
                    answer = await client.call_tool("system_version", {}, progress_callback=_progress)
                    if not answer.is_error:
                        break
                except MCPError as exc:
                    said.append(exc.error.message)
            await anyio.sleep(0.2)
    # Whatever the first call met, it said which upstream and what to do; never a hang.
    assert all("upstream 'system'" in message for message in said), said
    assert any("session ended" in message and "retry" in message for message in said), said
    after = _sample(_scrape(behind_gateway), "bastion_upstream_restarts_total", upstream="system")
    assert after - restarts >= 1
