"""A call's way to its upstream fails with the upstream named once, and is audited as failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.audit import MemoryAuditWriter
from gateway.auth.principal import Principal
from gateway.calls import UPSTREAM_UNAVAILABLE, CallContext, CallError, Gateway
from gateway.catalog import ViewConfig, build_view
from gateway.policy import CachedPolicyEngine, EmbeddedRegoEngine
from gateway.ratelimit import RateLimiter
from gateway.upstreams.connection import Catalog, UpstreamConnection, UpstreamSpec
from gateway.upstreams.manager import UpstreamManager
from tests.gateway.test_upstreams import _running

ALLOW_ALL = 'package bastion.authz\n\ndecision := {"allow": true, "reasons": [], "obligations": {}}\n'
ALICE = Principal("alice", "acme", ("admin",), (), "api_key")


def _gateway(manager: UpstreamManager, policies: Path) -> tuple[Gateway, MemoryAuditWriter]:
    (policies / "allow.rego").write_text(ALLOW_ALL)
    audit = MemoryAuditWriter()
    gateway = Gateway(
        upstreams=manager,
        policy=CachedPolicyEngine(EmbeddedRegoEngine(policies, reload_interval=None, strict=True)),
        limiter=RateLimiter(),
        audit=audit,
        instance_key=b"k" * 32,
    )
    return gateway, audit


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


async def test_a_request_that_cannot_be_sent_fails_named_and_is_audited_as_failed(
    http_fixture_url: str, tmp_path: Path
) -> None:
    """A `_meta` nested deeper than the upstream request's JSON encoder takes (the direct
    path of a 2026-07-28 call): the client hears why, and the audit says the call failed."""
    async with _running(UpstreamSpec("fixture", "http", url=http_fixture_url, dual_era=True)) as manager:
        gateway, audit = _gateway(manager, tmp_path)
        view = build_view(ViewConfig(name=""), manager.catalogs(modern=True))
        call = CallContext(ALICE, view, "127.0.0.1", modern=True)
        assert "fixture_test_simple_text" in view.tools
        with pytest.raises(CallError) as failed:
            await gateway.call_tool(call, "fixture_test_simple_text", {}, {"deep": _deep(300)})
        assert failed.value.code == -32603
        assert "could not send tools/call to upstream 'fixture'" in failed.value.message
        assert audit.events[-1].outcome == "upstream_error"
        # The gateway keeps serving the same upstream.
        result = await gateway.call_tool(call, "fixture_test_simple_text", {}, None)
        assert not result.get("isError")


async def test_a_call_on_a_connection_that_went_away_is_told_to_retry(tmp_path: Path) -> None:
    spec = UpstreamSpec("gone", "stdio", command="true")
    manager = UpstreamManager({"gone": spec})
    manager.states["gone"].connection = UpstreamConnection(spec)  # closed before the call got to it
    catalog = Catalog(tools=[{"name": "echo", "inputSchema": {"type": "object"}}])
    gateway, audit = _gateway(manager, tmp_path)
    call = CallContext(ALICE, build_view(ViewConfig(name=""), {"gone": catalog}), "127.0.0.1")
    with pytest.raises(CallError) as failed:
        await gateway.call_tool(call, "gone_echo", {}, None)
    assert failed.value.code == UPSTREAM_UNAVAILABLE
    assert failed.value.message == "upstream 'gone': not connected right now; retry shortly"
    assert audit.events[-1].outcome == "upstream_error"
