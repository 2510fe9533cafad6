"""`tools/list` filtered by policy differs by role."""

from __future__ import annotations

from gateway.policy import (
    CachedPolicyEngine,
    Context,
    EmbeddedRegoEngine,
    Principal,
    Resource,
    filter_allowed,
    filter_tools,
)

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
