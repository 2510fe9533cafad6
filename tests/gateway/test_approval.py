"""A call policy holds for approval is refused before it reaches its upstream, and audited as held."""

from __future__ import annotations

import pytest

from gateway.audit import MemoryAuditWriter
from gateway.auth.principal import Principal
from gateway.calls import DENIED, CallContext, CallError, Gateway
from gateway.catalog import Entry, View, ViewConfig
from gateway.policy import CachedPolicyEngine, EmbeddedRegoEngine
from gateway.ratelimit import RateLimiter
from gateway.upstreams.manager import UpstreamManager

DROP = Entry(
    "analytics_drop_dataset",
    "analytics",
    "drop_dataset",
    {"name": "analytics_drop_dataset", "inputSchema": {"type": "object"}},
)


def _gateway() -> tuple[Gateway, MemoryAuditWriter]:
    # Alice, an analyst, holds the dataset `sales`; dropping a dataset is `dangerous` in the
    # shipped policy, so it waits for a reviewer unless the caller's role is exempt.
    grants = {"bastion": {"grants": {"subjects": {"alice": {"datasets": ["sales"]}}}}}
    audit = MemoryAuditWriter()
    gateway = Gateway(
        # No upstream at all: a held call must never need one.
        upstreams=UpstreamManager({}),
        policy=CachedPolicyEngine(EmbeddedRegoEngine(reload_interval=None, extra_data=grants)),
        limiter=RateLimiter(),
        audit=audit,
        instance_key=b"k" * 32,
    )
    return gateway, audit


def _ctx(approval: str) -> CallContext:
    view = View(ViewConfig(name=""))
    view.tools[DROP.exposed] = DROP
    principal = Principal("alice", "acme", ("analyst",), (), "api_key")
    return CallContext(principal, view, "127.0.0.1", request_id=f"drop-{approval}", approval=approval)


async def test_a_dangerous_call_without_approval_is_held_and_audited() -> None:
    gateway, audit = _gateway()
    with pytest.raises(CallError) as held:
        await gateway.call_tool(_ctx("none"), "analytics_drop_dataset", {"name": "sales"})
    assert held.value.code == DENIED
    assert held.value.message == "tools/call 'analytics_drop_dataset' needs approval before it runs"
    assert held.value.data == {"reasons": ["approval required: a reviewer must approve this call first"]}
    [event] = audit.events
    assert (event.action, event.upstream, event.tool, event.decision, event.outcome) == (
        "tools/call",
        "analytics",
        "drop_dataset",
        "deny",
        "held",
    )
    assert event.request_id == "drop-none" and event.argument_digest is not None


async def test_a_rejected_approval_is_a_denial_naming_its_rule() -> None:
    gateway, audit = _gateway()
    with pytest.raises(CallError) as refused:
        await gateway.call_tool(_ctx("rejected"), "analytics_drop_dataset", {"name": "sales"})
    assert refused.value.code == DENIED
    assert "(rule approval)" in refused.value.message
    assert [e.outcome for e in audit.events] == ["denied"]
