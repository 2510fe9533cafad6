"""`bastion up` as a user runs it: a real supervisor, gateway and embedded database."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from bastion.components import BUILTIN_SERVERS
from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from tests.gateway.test_gateway import _modern, _result

START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(home: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"BASTION_HOME": str(home), "BASTION_PORT": str(port), "BASTION_LOG_FORMAT": "json", **extra})
    return env


def _bastion(*args: str) -> list[str]:
    return [sys.executable, "-m", "bastion.cli", *args]


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _running(home: Path) -> bool:
    """The supervisor finished starting (its own health checks passed)."""
    try:
        return json.loads((home / "run" / "supervisor.json").read_text()).get("phase") == "running"
    except (FileNotFoundError, ValueError):
        return False


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@dataclass
class Instance:
    home: Path
    port: int
    process: subprocess.Popen[bytes]

    def state(self) -> dict[str, object]:
        return json.loads((self.home / "run" / "supervisor.json").read_text())

    def gateway_pid(self) -> int:
        return int(self.state()["children"]["gateway"]["pid"])  # type: ignore[index]


def _start(home: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _bastion("up"),
        env=_env(home, port),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    process.communicate()


@pytest.fixture
def instance(home_path: Path) -> Iterator[Instance]:
    port = _free_port()
    process = _start(home_path, port)
    try:
        _wait_for(lambda: _running(home_path) or process.poll() is not None, START_TIMEOUT, "the supervisor")
        assert process.poll() is None, process.communicate()[1].decode()
        assert _healthy(port)
        yield Instance(home_path, port, process)
    finally:
        _stop(process)


def test_up_serves_health_readiness_and_metrics_and_prints_what_runs_where(instance: Instance) -> None:
    base = f"http://127.0.0.1:{instance.port}"
    assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["ready"] is True and ready["checks"]["database"]["ok"] and ready["checks"]["store"]["ok"]
    metrics = httpx.get(f"{base}/metrics").text
    assert "bastion_http_requests_total" in metrics and "process_resident_memory_bytes" in metrics
    assert (instance.home / "instance.key").stat().st_mode & 0o777 == 0o600

    status = subprocess.run(_bastion("status", "--json"), env=_env(instance.home, instance.port),
                            capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    report = json.loads(status.stdout)
    assert report["running"] is True
    assert report["gateway_url"] == f"http://127.0.0.1:{instance.port}"
    assert report["children"]["gateway"]["health"]["ok"] is True
    assert report["database"]["running"] is True

    # Every built-in server is an upstream of the gateway; the report says each one's state.
    def upstreams() -> dict[str, Any]:
        done = subprocess.run(_bastion("status", "--json"), env=_env(instance.home, instance.port),
                              capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
        return dict(json.loads(done.stdout)["upstreams"])

    assert set(upstreams()) == set(BUILTIN_SERVERS)
    _wait_for(lambda: all(u["state"] == "ready" for u in upstreams().values()), 120, "every upstream ready")
    for name, upstream in upstreams().items():
        assert upstream["transport"] == "stdio" and upstream["tools"] > 0, (name, upstream)
        assert upstream["restarts"] == 0 and upstream["last_error"] is None, (name, upstream)


def test_a_builtin_server_over_http_runs_beside_the_gateway_and_serves_through_it(
    home_path: Path, tmp_path: Path
) -> None:
    """`transport = "http"` with no port: the supervisor runs the server on a free port of its
    own choosing, and the gateway reaches it there with the caller's signed context."""
    config = tmp_path / "bastion.toml"
    config.write_text('builtin_servers = ["system"]\n[servers.system]\ntransport = "http"\n')
    port = _free_port()
    env = _env(home_path, port, BASTION_CONFIG=str(config))
    process = subprocess.Popen(_bastion("up"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_for(lambda: _running(home_path) or process.poll() is not None, START_TIMEOUT, "the supervisor")
        assert process.poll() is None, process.communicate()[1].decode()

        def report() -> dict[str, Any]:
            done = subprocess.run(_bastion("status", "--json"), env=env, capture_output=True, text=True,
                                  timeout=30, check=True)  # fmt: skip
            return dict(json.loads(done.stdout))

        def system_ready() -> bool:
            return report()["upstreams"].get("system", {}).get("state") == "ready"

        _wait_for(system_ready, 120, "the system server behind the gateway")
        status = report()
        assert status["upstreams"]["system"]["transport"] == "http"
        server = status["children"]["system"]
        assert server["alive"] and server["health"]["ok"] and server["url"].startswith("http://127.0.0.1:")
        new_key = _bastion("keys", "create", "--name", "http-check", "--role", "analyst", "--json")
        created = subprocess.run(new_key, env=env, capture_output=True, text=True, timeout=60, check=True)
        key = json.loads(created.stdout)["key"]
        call = {"name": "system_health", "arguments": {}}
        answer = _modern(f"http://127.0.0.1:{port}/mcp", "tools/call", call, key, name="system_health")
        result = _result(answer)["result"]
        assert not result.get("isError"), result
        assert result["structuredContent"]["server"]["transport"] == "http"
        assert result["structuredContent"]["caller"]["subject"] == "http-check"
    finally:
        _stop(process)


def test_a_second_up_for_the_same_home_is_refused_with_one_line(instance: Instance) -> None:
    second = subprocess.run(_bastion("up"), env=_env(instance.home, _free_port()), capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0
    assert "already runs" in second.stderr


def test_a_child_killed_with_sigkill_is_restarted(instance: Instance) -> None:
    old = instance.gateway_pid()
    os.kill(old, signal.SIGKILL)
    _wait_for(lambda: instance.gateway_pid() != old, 30, "a new gateway pid")
    _wait_for(lambda: _healthy(instance.port), 60, "the restarted gateway")
    assert instance.state()["children"]["gateway"]["restarts"] == 1  # type: ignore[index]


def test_sigterm_stops_every_child_and_the_database(home_path: Path) -> None:
    port = _free_port()
    process = _start(home_path, port)
    try:
        _wait_for(lambda: _running(home_path), START_TIMEOUT, "the supervisor")
        gateway = json.loads((home_path / "run" / "supervisor.json").read_text())["children"]["gateway"][
            "pid"
        ]
        postgres = EmbeddedPostgres(Home(home_path)).status().pid
        assert postgres is not None
        descendants = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        assert gateway in descendants
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
    finally:
        _stop(process)
    assert _gone(gateway)
    _wait_for(lambda: all(_gone(pid) for pid in descendants), 15, "every descendant to exit")
    _wait_for(lambda: _gone(postgres), 15, "postgres to stop")
    assert not (home_path / "run" / "supervisor.json").exists()
    leftovers = [
        p for p in psutil.process_iter(["cmdline"]) if str(home_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


def test_up_recovers_after_the_supervisor_is_killed_with_sigkill(home_path: Path) -> None:
    port = _free_port()
    first = _start(home_path, port)
    try:
        _wait_for(lambda: _running(home_path), START_TIMEOUT, "the supervisor")
        gateway = json.loads((home_path / "run" / "supervisor.json").read_text())["children"]["gateway"][
            "pid"
        ]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        _wait_for(lambda: _gone(gateway), 30, "the orphaned gateway to exit")
    finally:
        _stop(first)
    second = _start(home_path, port)
    try:
        _wait_for(lambda: _healthy(port) or second.poll() is not None, START_TIMEOUT, "the gateway again")
        assert second.poll() is None, second.communicate()[1].decode()
    finally:
        _stop(second)


def _one_line_failure(env: dict[str, str], cwd: Path | None = None) -> str:
    done = subprocess.run(_bastion("up"), env=env, capture_output=True, text=True, timeout=90,
                          stdin=subprocess.DEVNULL, cwd=cwd)  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("bastion: error: ")
    return lines[0]


def test_an_unwritable_home_fails_at_start_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _one_line_failure(_env(blocker / "home", _free_port()))
    assert "is not writable" in line and "BASTION_HOME" in line


def test_a_port_in_use_fails_at_start_with_one_line(home_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_failure(_env(home_path, port))
    assert f"127.0.0.1:{port}" in line and "BASTION_PORT" in line


def test_a_malformed_bastion_toml_fails_at_start_with_one_line(home_path: Path, tmp_path: Path) -> None:
    (tmp_path / "bastion.toml").write_text("[servers\n")
    line = _one_line_failure(_env(home_path, _free_port()), cwd=tmp_path)
    assert "bastion.toml: malformed TOML" in line


def test_an_unreachable_redis_fails_at_start_with_one_line(home_path: Path) -> None:
    line = _one_line_failure(_env(home_path, _free_port(), REDIS_URL="redis://:pw@127.0.0.1:1/0"))
    assert "cannot reach Redis" in line and "REDIS_URL" in line and "pw" not in line
