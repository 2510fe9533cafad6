"""The OPA REST client, against a stand-in that answers OPA's data API."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import httpx
import pytest

from gateway.policy import EmbeddedRegoEngine, OpaRestEngine
from gateway.policy.cache import CachedPolicyEngine
from tests.gateway.policy.helpers import call, eventually
from tests.gateway.policy.opa_server import OpaTestServer

REQUESTS = [
    call("viewer", "analytics", "query", sql="select 1"),
    call("analyst", "analytics", "query", sql="select 1", source="hr"),
    call("analyst", "analytics", "drop_dataset", name="x"),
    call("admin", "analytics", "register_source", name="crm", dsn="postgresql://x"),
    call("service", "retrieval", "search", query="q"),
]


async def test_decisions_through_opa_match_the_embedded_engine(opa_server: OpaTestServer) -> None:
    embedded = EmbeddedRegoEngine(reload_interval=None)
    async with OpaRestEngine(opa_server.url) as opa:
        for request in REQUESTS:
            assert await opa.decide(request) == await embedded.decide(request)
        assert opa.status().ok
        assert opa.status().sources == (f"{opa_server.url}/v1/data/bastion/authz/decision",)


async def test_decide_many_sends_requests_side_by_side(opa_server: OpaTestServer) -> None:
    async with OpaRestEngine(opa_server.url) as opa:
        decisions = await opa.decide_many(REQUESTS)
    assert [d.allow for d in decisions] == [False, False, False, True, False]
    assert opa_server.requests == len(REQUESTS)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_opa_down_denies_and_tells_the_operator_where_and_why() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with OpaRestEngine(url) as opa:
        assert not opa.status().ok
        decision = await opa.decide(REQUESTS[3])
        error = opa.status().error
    assert decision.is_error
    assert decision.reason == "policy engine error: OPA is unreachable"
    assert error is not None and error.startswith(f"OPA at {url} is unreachable (")


async def test_a_slow_opa_denies_at_the_deadline(opa_server: OpaTestServer) -> None:
    opa_server.mode = "hang"
    async with OpaRestEngine(opa_server.url, timeout=0.2) as opa:
        decision = await opa.decide(REQUESTS[3])
        assert decision.reason == "policy engine error: OPA did not answer within 0.2s"
        assert opa.status().error == f"OPA at {opa_server.url} did not answer within 0.2s"


@pytest.mark.parametrize("mode", ["normal", "hang", "garbage", "error", "nonsense", "down", "undefined"])
async def test_credentials_in_the_opa_url_reach_no_reason_status_or_log(
    opa_server: OpaTestServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Clients read denial reasons: they get no URL at all; operators get it without credentials."""
    host = opa_server.url.removeprefix("http://")
    if mode == "down":
        host = f"127.0.0.1:{_closed_port()}"
    elif mode != "undefined":
        opa_server.mode = mode  # type: ignore[assignment]
    path = "bastion/nowhere/decision" if mode == "undefined" else "bastion/authz/decision"
    caplog.set_level("INFO", logger="gateway.policy.opa")
    async with OpaRestEngine(f"http://opa-user:s3cret@{host}", decision_path=path, timeout=0.2) as opa:
        decision = await opa.decide(REQUESTS[3])
        status = opa.status()
    assert status.sources == (f"http://{host}/v1/data/{path}",)
    shown = " ".join([*decision.reasons, str(status.error), caplog.text])
    assert "s3cret" not in shown and "opa-user" not in shown
    assert host not in " ".join(decision.reasons)
    if mode != "normal":
        assert decision.is_error and status.error is not None and f"OPA at http://{host}" in status.error


@pytest.mark.parametrize("url", ["http://127.0.0.1:abc", "http://127.0.0.1:99999", "http://[::1", "http://"])
async def test_a_bad_url_denies_at_start_and_on_every_decision_without_raising(url: str) -> None:
    async with OpaRestEngine(url) as opa:
        assert not opa.status().ok
        decision = await opa.decide(REQUESTS[3])
    assert decision.reason == "policy engine error: OPA is unreachable"


async def test_a_proxy_error_page_stays_in_the_log_and_out_of_the_denial() -> None:
    page = "<html>502: opa.internal.corp:8181 refused</html>"
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text=page))
    async with OpaRestEngine("http://opa.internal.corp:8181", transport=transport) as opa:
        decision = await opa.decide(REQUESTS[3])
        error = opa.status().error
    assert decision.reason == "policy engine error: OPA answered HTTP 502 for bastion/authz/decision"
    assert (
        error == f"OPA at http://opa.internal.corp:8181 answered HTTP 502 for bastion/authz/decision ({page})"
    )


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("garbage", "answered with a body that is not JSON"),
        ("error", "answered HTTP 500 for bastion/authz/decision: eval_conflict_error"),
        ("nonsense", "`allow` must be true or false"),
    ],
)
async def test_a_malformed_opa_answer_denies(opa_server: OpaTestServer, mode: str, message: str) -> None:
    opa_server.mode = mode  # type: ignore[assignment]
    async with OpaRestEngine(opa_server.url) as opa:
        decision = await opa.decide(REQUESTS[3])
    assert decision.is_error
    assert message in decision.reason


async def test_an_undefined_decision_says_to_load_the_policy(opa_server: OpaTestServer) -> None:
    async with OpaRestEngine(opa_server.url, decision_path="bastion/nowhere/decision") as opa:
        decision = await opa.decide(REQUESTS[0])
    assert decision.is_error
    assert "has no document at bastion/nowhere/decision" in decision.reason


async def test_the_client_recovers_when_opa_answers_again(opa_server: OpaTestServer) -> None:
    async with OpaRestEngine(opa_server.url) as opa:
        opa_server.mode = "error"
        assert (await opa.decide(REQUESTS[3])).is_error
        assert not opa.status().ok
        opa_server.mode = "normal"
        assert (await opa.decide(REQUESTS[3])).allow
        assert opa.status().ok


def test_a_url_without_a_scheme_is_refused_without_showing_its_password() -> None:
    with pytest.raises(ValueError, match="expected http:// or https://") as caught:
        OpaRestEngine("opa-user:s3cret@127.0.0.1:8181")
    assert "s3cret" not in str(caught.value)


async def test_a_policy_changed_in_opa_empties_the_cache_and_moves_the_revision_on(policy_dir: Path) -> None:
    request = call("service", "retrieval", "search", query="q")
    async with OpaTestServer(policy_dir) as server:
        opa = OpaRestEngine(server.url, poll_interval=0.05)
        async with CachedPolicyEngine(opa, ttl=3600) as engine:
            assert not (await engine.decide(request)).allow  # cached for an hour from now
            await eventually(lambda: server.looks > 6)
            assert engine.revision == 0  # looked at several times: nothing changed
            data = json.loads((policy_dir / "data.json").read_text())
            data["bastion"]["grants"]["roles"]["service"]["tools"] = ["retrieval/*"]
            (policy_dir / "data.json").write_text(json.dumps(data))
            await server.reload()
            await eventually(lambda: engine.revision == 1)
            assert (await engine.decide(request)).allow  # decided again under the new policy
            assert opa.status().revision == 1
            rules = policy_dir / "rules.rego"
            rules.write_text(rules.read_text() + "\n# a module changed, the data did not\n")
            await server.reload()
            await eventually(lambda: engine.revision == 2)
            server.mode = "error"  # OPA failing says nothing of its policy
            await anyio.sleep(0.3)
            assert engine.revision == 2


async def test_without_a_poll_interval_opa_is_asked_only_for_decisions(policy_dir: Path) -> None:
    async with OpaTestServer(policy_dir) as server, OpaRestEngine(server.url) as opa:
        await opa.decide(REQUESTS[0])
        await anyio.sleep(0.2)
    assert (server.requests, server.looks) == (1, 0)
    assert opa.revision == 0
