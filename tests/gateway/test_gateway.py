"""The gateway end to end: a real process, real upstreams, clients of both protocol eras."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx
import httpx2
import psycopg
import pytest
from mcp import types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from tests.gateway.conftest import GatewayProcess, listen_request

MODERN = "2026-07-28"
HANDSHAKE = "2025-11-25"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
# A 2025-11-25 client's opening request.
HANDSHAKE_INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
)


def _modern(
    url: str,
    method: str,
    params: dict[str, Any],
    key: str | None,
    name: str | None = None,
    meta: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A 2026-07-28 request; `headers`: more of them (`x-request-id`, `x-forwarded-for`)."""
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": method,
        **(headers or {}),
    }
    if name:
        headers["mcp-name"] = name
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": method,
        "params": {**params, "_meta": {**ENVELOPE, **(meta or {})}},
    }
    return httpx.post(url, headers=headers, content=json.dumps(body), timeout=30)


def _result(response: httpx.Response) -> dict[str, Any]:
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        text = next(line[5:] for line in text.splitlines() if line.startswith("data:") and '"id"' in line)
    return json.loads(text)


@asynccontextmanager
async def _client(url: str, key: str | None, mode: str, **callbacks: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **callbacks) as client,
    ):
        yield client


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_tools_list_differs_by_role(gateway: GatewayProcess, mode: str) -> None:
    async with _client(gateway.url + "/mcp", gateway.key("admin"), mode) as admin:
        admin_tools = {t.name for t in (await admin.list_tools()).tools}
    async with _client(gateway.url + "/mcp", gateway.key("viewer"), mode) as viewer:
        viewer_tools = {t.name for t in (await viewer.list_tools()).tools}
    assert {"counter_echo", "counter_slow", "system_version", "system_health"} <= admin_tools
    assert {"system_version", "system_health"} <= viewer_tools
    assert "counter_echo" not in viewer_tools


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_a_denied_call_never_reaches_the_upstream(gateway: GatewayProcess, mode: str) -> None:
    before = gateway.counted()
    async with _client(gateway.url + "/mcp", gateway.key("viewer"), mode) as viewer:
        with pytest.raises(MCPError) as denied:
            await viewer.call_tool("counter_echo", {"text": "forbidden"})
    assert denied.value.error.code == -32003
    assert "counter_echo" in denied.value.error.message and "viewer" in denied.value.error.message
    assert "ask an administrator" in denied.value.error.message
    assert gateway.counted() == before


def test_both_eras_without_a_key_get_401_with_a_challenge(gateway: GatewayProcess) -> None:
    modern = _modern(gateway.url + "/mcp", "tools/list", {}, None)
    assert modern.status_code == 401
    assert modern.headers["www-authenticate"].startswith('Bearer realm="bastion"')
    handshake = httpx.post(
        gateway.url + "/mcp",
        headers={"content-type": "application/json", "accept": "application/json, text/event-stream"},
        content=HANDSHAKE_INITIALIZE,
    )
    assert handshake.status_code == 401
    bad = _modern(gateway.url + "/mcp", "tools/list", {}, "bst_nope_nope")
    assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]


def test_a_modern_client_calls_a_tool_statelessly(gateway: GatewayProcess) -> None:
    response = _modern(
        gateway.url + "/mcp",
        "tools/call",
        {"name": "counter_echo", "arguments": {"text": "hi"}},
        gateway.key("admin"),
        name="counter_echo",
    )
    assert response.status_code == 200
    result = _result(response)["result"]
    assert result["content"][0]["text"] == "hi" and result["resultType"] == "complete"
    assert "mcp-session-id" not in response.headers


async def test_each_era_reaches_a_dual_era_upstream_over_a_connection_of_its_own(
    gateway: GatewayProcess,
) -> None:
    key = gateway.key("admin")
    pids: dict[str, str] = {}
    for mode in ("legacy", MODERN):
        async with _client(gateway.url + "/mcp", key, mode) as client:
            result = await client.call_tool("counter_pid", {})
            pids[mode] = str(result.structured_content)
    assert pids["legacy"] != pids[MODERN], "both eras reached the same upstream process"
    async with httpx.AsyncClient(timeout=10) as http:
        status = (await http.get(gateway.url + "/readyz")).json()["upstreams"]
    assert status["counter"]["modern"]["state"] == "ready"
    assert "modern" not in status["system"], "built-in servers keep one connection"


@pytest.mark.parametrize("path", ["fast", "sdk"])
def test_a_2026_client_completes_an_input_required_round_trip(gateway: GatewayProcess, path: str) -> None:
    """The upstream's InputRequiredResult reaches the client; its retry reaches the upstream intact."""
    key, url = gateway.key("admin"), gateway.url + "/mcp"
    # A progress token sends the call through the SDK's server; without one it takes the fast path.
    meta = {"progressToken": "round-trip"} if path == "sdk" else None
    call = {"name": "counter_confirm", "arguments": {"action": f"archive via {path}"}}
    first = _result(_modern(url, "tools/call", call, key, name="counter_confirm", meta=meta))["result"]
    assert first["resultType"] == "input_required", first
    assert first["inputRequests"]["confirm"]["method"] == "elicitation/create"
    retry = {
        **call,
        "inputResponses": {"confirm": {"action": "accept", "content": {"ok": True}}},
        "requestState": first["requestState"],
    }
    second = _result(_modern(url, "tools/call", retry, key, name="counter_confirm", meta=meta))["result"]
    assert second["resultType"] == "complete"
    assert second["content"][0]["text"] == f"archive via {path}: accept"
    tampered = {**retry, "requestState": first["requestState"][:-4] + "AAAA"}
    refused = _result(_modern(url, "tools/call", tampered, key, name="counter_confirm", meta=meta))
    assert (
        "requestState" in refused["error"]["message"] and "upstream 'counter'" in refused["error"]["message"]
    )


def test_a_handshake_client_calls_a_tool_in_its_session(gateway: GatewayProcess) -> None:
    key = gateway.key("admin")
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {key}",
    }
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        init = http.post("/mcp", content=HANDSHAKE_INITIALIZE)
        assert init.status_code == 200
        session = init.headers["mcp-session-id"]
        assert _result(init)["result"]["protocolVersion"] == HANDSHAKE
        session_headers = {"mcp-session-id": session, "mcp-protocol-version": HANDSHAKE}
        http.post(
            "/mcp",
            headers=session_headers,
            content=json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        call = http.post(
            "/mcp",
            headers=session_headers,
            content=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "counter_echo", "arguments": {"text": "yo"}},
                }
            ),
        )
        assert _result(call)["result"]["content"][0]["text"] == "yo"
        unknown = http.post(
            "/mcp",
            headers={**session_headers, "mcp-session-id": "not-a-session"},
            content=json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 3,
                    "method": "tools/call",
                    "params": {"name": "counter_echo", "arguments": {"text": "x"}},
                }
            ),
        )
        assert unknown.status_code in (400, 404)
        assert http.delete("/mcp", headers=session_headers).status_code in (200, 204)


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_progress_notifications_pass_through(gateway: GatewayProcess, mode: str) -> None:
    seen: list[float] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append(value)

    async with _client(gateway.url + "/mcp", gateway.key("admin"), mode) as client:
        result = await client.call_tool(
            "counter_slow", {"steps": 3, "delay": 0.01}, progress_callback=progress
        )
    assert not result.is_error
    assert seen == [1, 2, 3]


async def test_a_cancelled_call_is_cancelled_upstream(gateway: GatewayProcess) -> None:
    started = anyio.Event()

    async def progress(value: float, total: float | None, message: str | None) -> None:
        started.set()

    async with _client(gateway.url + "/mcp", gateway.key("admin"), "legacy") as client:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await client.call_tool(
                    "counter_slow", {"steps": 1000, "delay": 0.05}, progress_callback=progress
                )

            tg.start_soon(call)
            with anyio.fail_after(30):
                await started.wait()
            tg.cancel_scope.cancel()
        # The session stays open until the upstream saw the cancellation, as a client's would.
        with anyio.fail_after(30):
            while "slow-cancelled" not in gateway.counted():
                await anyio.sleep(0.05)


async def test_an_upstream_that_gives_up_on_its_question_withdraws_it_from_the_client(
    gateway: GatewayProcess,
) -> None:
    """The upstream's elicitation is relayed to the calling client; when the upstream stops
    waiting and cancels it, the gateway passes the cancellation on, so the client stops
    asking its user a question nobody waits for."""
    asked: list[str] = []
    withdrawn: list[str] = []

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        try:
            await anyio.sleep(60)
        except anyio.get_cancelled_exc_class():
            withdrawn.append(params.message)
            raise
        return types.ElicitResult(action="decline")

    async with _client(
        gateway.url + "/mcp", gateway.key("admin"), "legacy", elicitation_callback=elicit
    ) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("counter_ask", {"question": "go on?", "patience": 0.5})
            assert not result.is_error and result.content[0].text == "gave up waiting"  # type: ignore[union-attr]
            while not withdrawn:
                await anyio.sleep(0.05)
    assert asked == withdrawn == ["go on?"]
    assert gateway.counted()[-2:] == ["ask", "ask-gave-up"]


def test_builtin_servers_receive_the_callers_signed_context(gateway: GatewayProcess) -> None:
    response = _modern(
        gateway.url + "/mcp",
        "tools/call",
        {"name": "system_health", "arguments": {}},
        gateway.key("analyst"),
        name="system_health",
    )
    result = _result(response)["result"]
    assert not result.get("isError"), result
    caller = result["structuredContent"]["caller"]
    assert caller["subject"].startswith("test-analyst") and caller["roles"] == ["analyst"]
    # The analyst role's obligations (policies/data.json) reach the server signed with the call.
    assert caller["obligations"] == {
        "allowed_collections": [],
        "allowed_datasets": [],
        "row_limit": 10000,
        "redact": [],
    }


def test_every_call_is_audited_before_the_answer(gateway: GatewayProcess) -> None:
    key = gateway.key("admin")
    response = httpx.post(
        gateway.url + "/mcp",
        headers={
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": MODERN,
            "mcp-method": "tools/call",
            "mcp-name": "counter_echo",
            "authorization": f"Bearer {key}",
            "x-request-id": "audit-check-1",
        },
        content=json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "tools/call",
                "params": {"name": "counter_echo", "arguments": {"text": "audited"}, "_meta": ENVELOPE},
            }
        ),
    )
    assert response.status_code == 200
    dsn = EmbeddedPostgres(Home(gateway.home)).dsn()
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT action, upstream, tool, decision, outcome FROM gateway.audit_events "
            "WHERE request_id = %s",
            ("audit-check-1",),
        ).fetchone()
    assert row == ("tools/call", "counter", "echo", "allow", "ok")


async def test_a_virtual_server_exposes_its_upstream_under_original_names(gateway: GatewayProcess) -> None:
    async with _client(gateway.url + "/mcp/solo", gateway.key("admin"), MODERN) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {
            "echo",
            "calls",
            "slow",
            "hold",
            "crash",
            "pid",
            "confirm",
            "ask",
            "toggle_extra",
            "touch",
            "chatty",
            "refuse",
        }
        result = await client.call_tool("echo", {"text": "solo"})
    assert result.content[0].text == "solo"  # type: ignore[union-attr]


def test_the_loopback_test_principal_is_admitted_only_where_configured(gateway: GatewayProcess) -> None:
    assert _modern(gateway.url + "/mcp/open", "tools/list", {}, None).status_code == 200
    assert _modern(gateway.url + "/mcp/solo", "tools/list", {}, None).status_code == 401
    # The virtual servers' names are for authenticated callers only.
    anonymous = _modern(gateway.url + "/mcp/nope", "tools/list", {}, None)
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    assert "/mcp/solo" not in anonymous.text
    missing = _modern(gateway.url + "/mcp/nope", "tools/list", {}, gateway.key("admin"))
    assert missing.status_code == 404 and "/mcp/solo" in missing.text


def test_foreign_origins_and_oversized_bodies_are_refused(gateway: GatewayProcess) -> None:
    key = gateway.key("admin")
    evil = httpx.post(
        gateway.url + "/mcp",
        headers={
            "origin": "http://evil.example",
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
        },
        content=b"{}",
    )
    assert evil.status_code == 403 and "Origin" in evil.text
    huge = httpx.post(
        gateway.url + "/mcp",
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
        content=b" " * (4 * 1024 * 1024 + 1),
    )
    assert huge.status_code == 413


def test_an_exceeded_rate_limit_answers_429_with_retry_after(gateway: GatewayProcess) -> None:
    # The default policy gives analysts 300 calls a minute with a burst of 60.
    key = gateway.new_key("analyst", "rate-limited")
    limited_total = "bastion_rate_limited_total"
    refused_before = _sample(_scrape(gateway), limited_total, scope="policy")
    statuses: list[httpx.Response] = []
    with httpx.Client(timeout=30) as http:
        for i in range(90):
            body = {
                "jsonrpc": "2.0",
                "id": i,
                "method": "tools/call",
                "params": {"name": "system_version", "arguments": {}, "_meta": ENVELOPE},
            }
            statuses.append(
                http.post(
                    gateway.url + "/mcp",
                    content=json.dumps(body),
                    headers={
                        "content-type": "application/json",
                        "accept": "application/json, text/event-stream",
                        "mcp-protocol-version": MODERN,
                        "mcp-method": "tools/call",
                        "mcp-name": "system_version",
                        "authorization": f"Bearer {key}",
                    },
                )
            )
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, "90 calls at once never hit the burst of 60"
    assert int(limited[0].headers["retry-after"]) >= 1
    error = _result(limited[0])["error"]
    assert error["code"] == -32029
    # which limit, for which tool (named as policy names it), and when to retry
    assert error["message"].startswith(
        "rate limit exceeded (policy limit for system/version: 300/min, burst 60)"
    )
    assert error["message"].endswith(f"retry in {limited[0].headers['retry-after']} s")
    assert error["data"]["scope"] == "policy" and 0 < error["data"]["retry_after"] <= 60
    refused = _sample(_scrape(gateway), limited_total, scope="policy")
    assert refused - refused_before == len(limited)


async def test_a_crashed_stdio_upstream_fails_calls_in_flight_and_comes_back(gateway: GatewayProcess) -> None:
    key = gateway.key("admin")
    restarts = "bastion_upstream_restarts_total"
    restarted_before = _sample(_scrape(gateway), restarts, upstream="counter")
    failures: list[str] = []
    async with _client(gateway.url + "/mcp", key, MODERN) as client:

        async def long_call() -> None:
            try:
                await client.call_tool("counter_slow", {"steps": 600, "delay": 0.05})
                failures.append("no error")
            except MCPError as exc:
                failures.append(exc.error.message)

        running = len([c for c in gateway.counted() if c == "slow"])
        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            with anyio.fail_after(20):
                while len([c for c in gateway.counted() if c == "slow"]) == running:
                    await anyio.sleep(0.05)
            with anyio.fail_after(20), pytest.raises(MCPError):
                await client.call_tool("counter_crash", {})
    # The call in flight failed at once, naming the upstream, instead of hanging.
    assert failures and "upstream 'counter'" in failures[0]
    with anyio.fail_after(60):
        while True:
            async with _client(gateway.url + "/mcp", key, MODERN) as client:
                try:
                    result = await client.call_tool("counter_echo", {"text": "back"})
                    if not result.is_error:
                        break
                except MCPError as exc:  # restarting: the gateway says so and the caller retries
                    assert "upstream 'counter'" in exc.error.message
            await anyio.sleep(0.2)
    restarted = _sample(_scrape(gateway), restarts, upstream="counter")
    assert restarted - restarted_before >= 1


async def test_a_handshake_client_cancels_a_call_that_reports_no_progress(gateway: GatewayProcess) -> None:
    # Without a progress token the call takes the fast path; the session's
    # notifications/cancelled must still reach it.
    started = gateway.counted().count("slow")
    cancelled = gateway.counted().count("slow-cancelled")
    async with _client(gateway.url + "/mcp", gateway.key("admin"), "legacy") as client:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await client.call_tool("counter_slow", {"steps": 1000, "delay": 0.05})

            tg.start_soon(call)
            with anyio.fail_after(30):
                while gateway.counted().count("slow") == started:
                    await anyio.sleep(0.02)
            tg.cancel_scope.cancel()
        # The session stays open, as a client's would: the gateway's answer to the
        # cancelled request (which the client no longer awaits) arrives on a live stream.
        with anyio.fail_after(30):
            while gateway.counted().count("slow-cancelled") == cancelled:
                await anyio.sleep(0.05)
        assert (await client.call_tool("counter_echo", {"text": "still here"})).content


async def test_a_modern_client_cancels_a_call_by_closing_its_request(gateway: GatewayProcess) -> None:
    cancelled = gateway.counted().count("slow-cancelled")
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": MODERN,
        "mcp-method": "tools/call",
        "mcp-name": "counter_slow",
        "authorization": f"Bearer {gateway.key('admin')}",
        "x-request-id": "cancel-check-1",
    }
    params = {"name": "counter_slow", "arguments": {"steps": 1000, "delay": 0.05}, "_meta": ENVELOPE}
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=1.0)) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(gateway.url + "/mcp", headers=headers, content=json.dumps(body))
    with anyio.fail_after(30):
        while gateway.counted().count("slow-cancelled") == cancelled:
            await anyio.sleep(0.05)
    dsn = EmbeddedPostgres(Home(gateway.home)).dsn()
    with anyio.fail_after(30):
        while True:
            with psycopg.connect(dsn) as conn:
                row = conn.execute(
                    "SELECT tool, outcome FROM gateway.audit_events WHERE request_id = %s",
                    ("cancel-check-1",),
                ).fetchone()
            if row is not None:
                break
            await anyio.sleep(0.05)
    assert row == ("slow", "cancelled")
    # The gateway keeps serving.
    echo = {"name": "counter_echo", "arguments": {"text": "after"}}
    response = _modern(gateway.url + "/mcp", "tools/call", echo, gateway.key("admin"), "counter_echo")
    assert _result(response)["result"]["content"][0]["text"] == "after"


def _handshake_post(gateway: GatewayProcess, body: dict[str, Any], session: str) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": HANDSHAKE,
        "mcp-session-id": session,
        "authorization": f"Bearer {gateway.key('admin')}",
    }
    return httpx.post(gateway.url + "/mcp", headers=headers, content=json.dumps(body), timeout=30)


def _scrape(gateway: GatewayProcess) -> str:
    return httpx.get(gateway.url + "/metrics", timeout=30).text


def _sample(metrics: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus text (0 when the series does not exist yet)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in metrics.splitlines():
        if line.startswith(series):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_calls_are_counted_and_timed_per_upstream_tool_and_outcome(gateway: GatewayProcess) -> None:
    ok = {"upstream": "counter", "tool": "echo", "outcome": "ok"}
    denied = {**ok, "outcome": "denied"}
    timed = {"upstream": "counter", "tool": "echo"}
    before = _scrape(gateway)
    for _ in range(3):
        response = _modern(
            gateway.url + "/mcp",
            "tools/call",
            {"name": "counter_echo", "arguments": {"text": "m"}},
            gateway.key("admin"),
            "counter_echo",
        )
        assert _result(response)["result"]["content"][0]["text"] == "m"
    async with _client(gateway.url + "/mcp", gateway.key("viewer"), MODERN) as viewer:
        with pytest.raises(MCPError):
            await viewer.call_tool("counter_echo", {"text": "forbidden"})
    after = _scrape(gateway)
    assert (
        _sample(after, "bastion_gateway_calls_total", **ok)
        - _sample(before, "bastion_gateway_calls_total", **ok)
        == 3
    )
    assert (
        _sample(after, "bastion_gateway_calls_total", **denied)
        - _sample(before, "bastion_gateway_calls_total", **denied)
        == 1
    )
    count = "bastion_gateway_call_seconds_count"
    assert _sample(after, count, **timed) - _sample(before, count, **timed) == 3  # denied calls are not timed
    assert _sample(after, "bastion_gateway_call_seconds_sum", **timed) > _sample(
        before, "bastion_gateway_call_seconds_sum", **timed
    )

    # Policy: each call was decided (from the cache or by the engine), by outcome, and timed.
    def decisions(text: str, outcome: str) -> float:
        name = "bastion_policy_decisions_total"
        return sum(_sample(text, name, outcome=outcome, cache=cache) for cache in ("hit", "miss"))

    assert decisions(after, "allow") - decisions(before, "allow") >= 3
    assert decisions(after, "deny") - decisions(before, "deny") >= 1
    for outcome in ("allow", "deny"):
        decided = "bastion_policy_decision_seconds_count"
        assert _sample(after, decided, outcome=outcome) > _sample(before, decided, outcome=outcome)


async def test_open_handshake_sessions_are_counted(gateway: GatewayProcess) -> None:
    def sessions() -> float:
        return _sample(_scrape(gateway), "bastion_gateway_sessions_open")

    async with _client(gateway.url + "/mcp", gateway.key("admin"), "legacy") as client:
        await client.list_tools()  # a request after `initialize` publishes the count
        inside = sessions()
        assert inside >= 1
    with anyio.fail_after(10):  # the client's DELETE ends its session
        while sessions() != inside - 1:
            await anyio.sleep(0.05)
    # A made-up session id is the SDK's to refuse (404), and counts as no session.
    after = sessions()
    for n in range(3):
        bogus = _handshake_post(gateway, {"jsonrpc": "2.0", "id": n, "method": "tools/list"}, f"made-up-{n}")
        assert bogus.status_code == 404, bogus.text
    assert sessions() == after


def test_a_2026_result_looks_the_same_on_both_of_the_gateways_paths(gateway: GatewayProcess) -> None:
    """The SDK stamps its serverInfo on every 2026-07-28 result; the fast path does the same."""
    for path, tool in (("/mcp", "counter_echo"), ("/mcp/solo", "echo")):  # a virtual server has its own
        stamps = []
        for meta in ({}, {"progressToken": 1}):  # the fast path, then the SDK's
            response = _modern(
                gateway.url + path,
                "tools/call",
                {"name": tool, "arguments": {"text": "same"}},
                gateway.key("admin"),
                tool,
                meta=meta,
            )
            result = _result(response)["result"]
            assert result["resultType"] == "complete" and result["content"][0]["text"] == "same"
            stamps.append(result["_meta"]["io.modelcontextprotocol/serverInfo"])
        assert stamps[0] == stamps[1] and stamps[0]["name"].startswith("bastion-gateway"), (path, stamps)


def test_a_2026_completion_reaches_the_upstream_with_the_clients_envelope(gateway: GatewayProcess) -> None:
    """The upstream asks a 2026-07-28 client only for what its envelope declares, so the
    envelope travels with every request, completions included (the counting upstream
    offers the client name it received)."""
    info = {"name": "completing-client", "version": "1"}
    params = {
        "ref": {"type": "ref/prompt", "name": "counter_greet"},
        "argument": {"name": "name", "value": "A"},
    }
    response = _modern(
        gateway.url + "/mcp",
        "completion/complete",
        params,
        gateway.key("admin"),
        meta={"io.modelcontextprotocol/clientInfo": info},
    )
    assert response.status_code == 200, response.text
    assert _result(response)["result"]["completion"]["values"] == ["completing-client"]


async def test_a_handshake_client_is_told_when_an_upstreams_tool_list_changes(
    gateway: GatewayProcess,
) -> None:
    """Its session hears `notifications/tools/list_changed` on its stream, and `initialize`
    said it would."""
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        heard.append(repr(message))

    async with _client(
        gateway.url + "/mcp", gateway.key("admin"), "legacy", message_handler=on_message
    ) as client:
        tools = client.server_capabilities.tools
        assert tools is not None and tools.list_changed
        before = {t.name for t in (await client.list_tools()).tools}
        for round_ in (1, 2):  # the second toggle puts the tool set back as it was
            await client.call_tool("counter_toggle_extra", {})
            with anyio.fail_after(20):
                while sum("tools/list_changed" in m for m in heard) < round_:
                    await anyio.sleep(0.05)
            after = {t.name for t in (await client.list_tools()).tools}
            assert (
                ("counter_extra" in after) != ("counter_extra" in before) if round_ == 1 else after == before
            )


async def test_only_callers_who_see_a_change_are_told_of_it(gateway: GatewayProcess) -> None:
    """Viewers do not see the counter's tools: a counter tool coming and going is news to an
    admin (a 2025-11-25 session, a 2026-07-28 listen stream), never to a viewer."""
    heard: dict[str, list[str]] = {"admin": [], "viewer": []}

    def recorder(role: str) -> Any:
        async def on_message(message: Any) -> None:
            heard[role].append(repr(message))

        return on_message

    def changes(role: str) -> int:
        return sum("tools/list_changed" in m for m in heard[role])

    async def next_event(lines: AsyncIterator[str], within: float) -> dict[str, Any] | None:
        with anyio.move_on_after(within):
            async for line in lines:
                if line.startswith("data:"):
                    return json.loads(line[5:])
        return None

    keys = {role: gateway.key(role) for role in ("admin", "viewer")}
    async with (
        _client(gateway.url + "/mcp", keys["admin"], "legacy", message_handler=recorder("admin")) as admin,
        _client(gateway.url + "/mcp", keys["viewer"], "legacy", message_handler=recorder("viewer")) as viewer,
        _client(gateway.url + "/mcp", keys["admin"], MODERN) as modern_admin,
        httpx.AsyncClient(timeout=httpx.Timeout(30.0)) as http,
    ):
        await admin.list_tools()  # what each session was shown: the starting point
        assert "counter_echo" not in {t.name for t in (await viewer.list_tools()).tools}
        streams: dict[str, AsyncIterator[str]] = {}
        async with AsyncExitStack() as stack:
            for role, key in keys.items():
                headers, body = listen_request(key, [], tools_changed=True)
                response = await stack.enter_async_context(
                    http.stream("POST", gateway.url + "/mcp", headers=headers, content=body)
                )
                streams[role] = response.aiter_lines()
                ack = await next_event(streams[role], 20)
                assert ack is not None and ack["params"]["notifications"]["toolsListChanged"] is True
            for round_ in (1, 2):  # the second toggle puts the tool set back as it was
                # Each era's clients are served by the upstream's connection of that era.
                await admin.call_tool("counter_toggle_extra", {})
                await modern_admin.call_tool("counter_toggle_extra", {})
                with anyio.fail_after(20):
                    while changes("admin") < round_:
                        await anyio.sleep(0.05)
                event = await next_event(streams["admin"], 20)
                assert event is not None and event["method"] == "notifications/tools/list_changed"
            assert await next_event(streams["viewer"], 1.0) is None
    assert changes("viewer") == 0


def _listen_ack(gateway: GatewayProcess, key: str, uris: list[str], request_id: str = "") -> dict[str, Any]:
    """The acknowledgement a 2026-07-28 listen stream opens with (the stream is then left)."""
    headers, body = listen_request(key, uris, request_id)
    with httpx.stream(
        "POST", gateway.url + "/mcp", headers=headers, content=body, timeout=httpx.Timeout(10.0)
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line.startswith("data:") and "acknowledged" in line:
                return json.loads(line[5:])["params"]["notifications"]
    raise AssertionError("no acknowledgement")


def test_a_listen_stream_honors_only_resources_the_caller_may_read(gateway: GatewayProcess) -> None:
    """Updates say what changed and when: a 2026-07-28 listener gets them only for resources
    of its endpoint that policy lets it read, as a 2025-11-25 subscriber does."""
    wanted = ["counter://status", "file:///etc/passwd"]
    assert _listen_ack(gateway, gateway.key("admin"), wanted, "listen-admin").get(
        "resourceSubscriptions"
    ) == ["counter://status"]
    assert not _listen_ack(gateway, gateway.key("service"), wanted, "listen-service").get(
        "resourceSubscriptions"
    )
    # Each decision is audited, as a 2025-11-25 `resources/subscribe` is.
    dsn = EmbeddedPostgres(Home(gateway.home)).dsn()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT request_id, action, upstream, tool, decision, outcome FROM gateway.audit_events "
            "WHERE request_id IN ('listen-admin', 'listen-service') ORDER BY request_id, tool"
        ).fetchall()
    assert rows == [
        ("listen-admin", "resources/read", "counter", "counter://status", "allow", "ok"),
        ("listen-admin", "resources/read", None, "file:///etc/passwd", "error", "invalid_request"),
        ("listen-service", "resources/read", "counter", "counter://status", "deny", "denied"),
        ("listen-service", "resources/read", None, "file:///etc/passwd", "error", "invalid_request"),
    ]
