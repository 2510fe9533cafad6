"""`tools/list` filtered by policy differs by role."""

from __future__ import annotations

from gateway.audit import MemoryAuditWriter
from gateway.auth.principal import Principal as Caller
from gateway.calls import CallContext, Gateway
from gateway.catalog import Entry, View, ViewConfig
from gateway.policy import (
    CachedPolicyEngine,
    Context,
    EmbeddedRegoEngine,
    Principal,
    Resource,
    filter_allowed,
    filter_tools,
)
from gateway.ratelimit import RateLimiter
from gateway.upstreams.manager import UpstreamManager

CATALOG = [
    ("system", "version", {}),
    ("analytics", "list_datasets", {}),
    ("analytics", "query", {}),
    ("analytics", "register_source", {}),
    ("retrieval", "search", {}),
    ("everything", "echo", {"readOnlyHint": True}),
]


def _describe(entry: tuple[str, str, dict[str, bool]]) -> Resource:
    upstream, tool, annotations = entry
    return Resource(upstream=upstream, tool=tool, name=f"{upstream}_{tool}", annotations=annotations)


async def _visible(role: str) -> list[str]:
    engine = CachedPolicyEngine(EmbeddedRegoEngine(reload_interval=None))
    principal = Principal("alice", "acme", (role,))
    tools = await filter_tools(engine, principal, Context.now("127.0.0.1"), CATALOG, _describe)
    return [f"{upstream}_{tool}" for upstream, tool, _ in tools]


async def test_tools_list_differs_by_role() -> None:
    assert await _visible("admin") == [f"{u}_{t}" for u, t, _ in CATALOG]
    assert await _visible("analyst") == [
        "system_version",
        "analytics_list_datasets",
        "analytics_query",
        "retrieval_search",
    ]
    assert await _visible("viewer") == ["system_version", "analytics_list_datasets", "retrieval_search"]
    assert await _visible("service") == []


async def test_an_empty_listing_asks_nothing() -> None:
    engine = EmbeddedRegoEngine(reload_interval=None)
    principal = Principal("alice", "acme", ("admin",))
    assert await filter_allowed(engine, principal, Context.now(), "resources/read", [], _describe) == []


async def test_the_gateway_lists_what_policy_lets_a_caller_list_not_only_what_it_may_call() -> None:
    """A token scoped `mcp:read` may list tools but call none (data: grants.scopes): listing
    asks policy about `tools/list`, so such a caller still sees the tools."""
    view = View(ViewConfig(name=""))
    for upstream, tool, hints in CATALOG:
        exposed = f"{upstream}_{tool}"
        view.tools[exposed] = Entry(
            exposed, upstream, tool, {"name": exposed, "annotations": hints, "inputSchema": {}}
        )
    audit = MemoryAuditWriter()
    gateway = Gateway(
        upstreams=UpstreamManager({}),
        policy=CachedPolicyEngine(EmbeddedRegoEngine(reload_interval=None)),
        limiter=RateLimiter(),
        audit=audit,
        instance_key=b"k" * 32,
    )

    def caller(*scopes: str) -> CallContext:
        return CallContext(Caller("alice", "acme", ("viewer",), scopes, "oauth"), view, "127.0.0.1")

    read_only = ["system_version", "analytics_list_datasets", "retrieval_search"]
    assert [t["name"] for t in await gateway.visible_tools(caller("mcp:read"))] == read_only
    assert [t["name"] for t in await gateway.visible_tools(caller())] == read_only
    assert await gateway.visible_tools(caller("api")) == []  # a REST-only token lists no tools
    call = await gateway.decide(caller("mcp:read"), "tools/call", Resource(upstream="system", tool="version"))
    assert not call.allow and "rule oauth_scopes" in call.reasons[0]
    assert [e.reasons for e in audit.events] == [("3 of 6 tools",), ("3 of 6 tools",), ("0 of 6 tools",)]

    # Prompts are listed by `prompts/get` decisions; each listing is one audit event too.
    view.prompts["system_brief"] = Entry("system_brief", "system", "brief", {"name": "system_brief"})
    assert [p["name"] for p in await gateway.visible_prompts(caller("mcp:read"))] == ["system_brief"]
    assert await gateway.visible_prompts(caller("api")) == []
    assert [(e.action, e.reasons) for e in audit.events[3:]] == [
        ("prompts/list", ("1 of 1 prompts",)),
        ("prompts/list", ("0 of 1 prompts",)),
    ]
