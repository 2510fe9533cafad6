"""2025-11-25 sessions: tool calls the gateway answers itself keep a session alive as any
request does, and an idle session ends for both of the gateway's paths at once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import GatewayProcess, counter_upstream, running_gateway
from tests.gateway.test_gateway import HANDSHAKE, _result

IDLE = 2.0  # seconds; the gateway's session_idle_timeout in this module


@pytest.fixture
def session(short_idle: GatewayProcess) -> Iterator[Session]:
    opened = Session(short_idle)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def short_idle(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("sessions")
    counter_log = work / "counter.log"
    config = f"builtin_servers = []\nsession_idle_timeout = {IDLE}\n" + counter_upstream(counter_log)
    with running_gateway(shared_home, work, config, counter_log) as process:
        yield process


class Session:
    """A plain 2025-11-25 client over raw HTTP (no sampling, elicitation or roots)."""

    def __init__(self, gateway: GatewayProcess, key: str | None = None) -> None:
        self.http = httpx.Client(base_url=gateway.url, timeout=30)
        self.headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": HANDSHAKE,
            "authorization": f"Bearer {key or gateway.key('admin')}",
        }
        self.ids = iter(range(1, 10_000))
        client = {"name": "sessions-test", "version": "1"}
        hello = {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": client}
        answer = self.post("initialize", hello)
        assert answer.status_code == 200, answer.text
        self.headers["mcp-session-id"] = answer.headers["mcp-session-id"]
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert self.http.post("/mcp", headers=self.headers, content=json.dumps(note)).status_code == 202

    def close(self) -> None:
        self.http.close()

    def post(self, method: str, params: dict[str, Any], *, as_key: str | None = None) -> httpx.Response:
        """Send a request on this session (`as_key`: presenting another key than its opener's)."""
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        return self.http.post("/mcp", headers=self._as(as_key), content=json.dumps(body))

    def _as(self, key: str | None) -> dict[str, str]:
        return {**self.headers, "authorization": f"Bearer {key}"} if key else self.headers

    def echo(self, text: str) -> httpx.Response:
        return self.post("tools/call", {"name": "counter_echo", "arguments": {"text": text}})


def test_fast_path_calls_keep_a_session_alive_for_the_sdk_path_too(session: Session) -> None:
    deadline = time.monotonic() + 2.5 * IDLE
    while time.monotonic() < deadline:  # tool calls only, for longer than the idle timeout
        answer = session.echo("busy")
        assert answer.status_code == 200 and _result(answer)["result"]["content"][0]["text"] == "busy"
        time.sleep(IDLE / 5)
    listed = session.post("tools/list", {})  # the SDK's own path: the session is still there
    assert listed.status_code == 200, listed.text
    assert "counter_echo" in {t["name"] for t in _result(listed)["result"]["tools"]}


def test_an_idle_session_ends_on_every_path(session: Session) -> None:
    assert session.echo("first").status_code == 200
    time.sleep(IDLE + 1.5)
    ended = session.echo("too late")  # a call the fast path would have answered
    assert ended.status_code == 404, ended.text
    assert session.post("tools/list", {}).status_code == 404


def test_a_request_id_still_in_use_on_the_session_is_refused(
    short_idle: GatewayProcess, session: Session
) -> None:
    # A call reporting progress goes through the SDK, which keys each answer by request id.
    slow = {"name": "counter_slow", "arguments": {"steps": 8, "delay": 0.25}, "_meta": {"progressToken": "p"}}
    first = {"jsonrpc": "2.0", "id": "same", "method": "tools/call", "params": slow}
    before = short_idle.counted().count("slow")
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(session.http.post, "/mcp", headers=session.headers, content=json.dumps(first))
        deadline = time.monotonic() + 10
        while short_idle.counted().count("slow") == before and time.monotonic() < deadline:
            time.sleep(0.02)  # until the upstream runs it
        again = {"jsonrpc": "2.0", "id": "same", "method": "tools/list", "params": {}}
        with httpx.Client(base_url=short_idle.url, timeout=30) as other:
            refused = other.post("/mcp", headers=session.headers, content=json.dumps(again))
        answered = running.result(timeout=30)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert refused.json()["id"] == "same"
    assert error["code"] == -32600
    assert "already in use" in error["message"] and "an id of its own" in error["message"]
    assert answered.status_code == 200
    assert '"text":"done"' in answered.text.replace(" ", ""), answered.text  # the first is unharmed
    reused = session.http.post("/mcp", headers=session.headers, content=json.dumps(again))
    assert reused.status_code == 200, reused.text  # the id is free again once answered
