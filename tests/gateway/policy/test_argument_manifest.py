"""Policy sees the arguments the policy in force declares, wherever its data declares them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from gateway.argument_manifest import ArgumentManifest
from gateway.audit import MemoryAuditWriter
from gateway.auth.principal import Principal
from gateway.calls import CALLS, CallContext, CallError, Gateway
from gateway.catalog import Entry, View, ViewConfig, build_view
from gateway.policy import CachedPolicyEngine, EmbeddedRegoEngine
from gateway.policy.model import Resource
from gateway.ratelimit import RateLimiter
from gateway.upstreams.connection import Catalog
from gateway.upstreams.manager import UpstreamManager

QUERY = Entry("analytics_query", "analytics", "query", {"name": "analytics_query", "inputSchema": {}})
SEARCH = Entry("retrieval_search", "retrieval", "search", {"name": "retrieval_search", "inputSchema": {}})


def _gateway(engine: EmbeddedRegoEngine) -> Gateway:
    return Gateway(
        upstreams=UpstreamManager({}),
        policy=CachedPolicyEngine(engine),
        limiter=RateLimiter(),
        audit=MemoryAuditWriter(),
        instance_key=b"k" * 32,
    )


def _alice() -> CallContext:
    view = View(ViewConfig(name=""))
    return CallContext(Principal("alice", "acme", ("analyst",), (), "api_key"), view, "127.0.0.1")


def test_declared_arguments_reach_policy_and_the_rest_stay_out() -> None:
    gateway = _gateway(EmbeddedRegoEngine(reload_interval=None))
    resource = gateway._tool_resource(QUERY, {"sql": "select 1", "source": "hr", "limit": 5})
    assert resource.arguments == {"source": "hr"}
    assert gateway._tool_resource(SEARCH, {"query": "leave", "collection": "handbook"}).arguments == {
        "collection": "handbook"
    }


async def test_arguments_declared_in_a_sub_folders_data_are_enforced(policy_dir: Path) -> None:
    """`bastion/tools/data.json` lands at `data.bastion.tools`: its argument rules count as if
    they were in the top-level data.json, so an ungranted dataset is refused."""
    data = json.loads((policy_dir / "data.json").read_text())
    arguments = data["bastion"]["tools"].pop("arguments")
    (policy_dir / "data.json").write_text(json.dumps(data))
    (policy_dir / "bastion" / "tools").mkdir(parents=True)
    (policy_dir / "bastion" / "tools" / "data.json").write_text(json.dumps({"arguments": arguments}))
    gateway = _gateway(EmbeddedRegoEngine(policy_dir, reload_interval=None, strict=True))

    resource = gateway._tool_resource(QUERY, {"sql": "select 1", "source": "hr"})
    assert resource.arguments == {"source": "hr"}
    decision = await gateway.decide(_alice(), "tools/call", resource)
    assert not decision.allow
    assert decision.reasons == (
        'deny: dataset "hr" is not granted to alice (argument source of analytics_query) '
        "(rule granted_datasets)",
    )


async def test_a_reloaded_policy_brings_its_own_argument_declarations(policy_dir: Path) -> None:
    engine = EmbeddedRegoEngine(policy_dir, reload_interval=None, strict=True)
    gateway = _gateway(engine)
    assert gateway._tool_resource(QUERY, {"sql": "select 1", "schema": "hr"}).arguments == {}

    data = json.loads((policy_dir / "data.json").read_text())
    data["bastion"]["tools"]["arguments"]["analytics/query"] = {"schema": "datasets"}
    (policy_dir / "data.json").write_text(json.dumps(data))
    assert await engine.reload()

    resource = gateway._tool_resource(QUERY, {"sql": "select 1", "schema": "hr"})
    assert resource.arguments == {"schema": "hr"}
    decision = await gateway.decide(_alice(), "tools/call", resource)
    assert not decision.allow and "(rule granted_datasets)" in decision.reasons[0]


def test_without_policy_data_in_this_process_policy_sees_every_argument() -> None:
    """With OPA the data lives in the OPA server: nothing may be held back from it."""
    everything = {"sql": "select 1", "source": "hr"}
    assert ArgumentManifest.from_data(None).reduce("analytics", "query", everything) == everything
    undeclared = ArgumentManifest.from_data({"bastion": {"tools": {}}})
    assert undeclared.reduce("analytics", "query", everything) == everything


async def test_a_templated_resource_is_one_metric_series_whatever_uri_a_client_tries(tmp_path: Path) -> None:
    """Subscriptions and completions name a resource by URI: metrics label it by template."""
    (tmp_path / "p.rego").write_text(
        "package bastion.authz\n\n"
        'decision := {"allow": false, "reasons": ["deny: nothing here"], "obligations": {}}\n'
    )
    gateway = _gateway(EmbeddedRegoEngine(tmp_path, reload_interval=None, strict=True))
    docs = Catalog()
    docs.templates = [{"uriTemplate": "docs://pages/{page}", "name": "page"}]
    ctx = dataclasses.replace(_alice(), view=build_view(ViewConfig(name=""), {"docs": docs}))
    for page in ("a", "b", "c"):
        uri = f"docs://pages/{page}"
        with pytest.raises(CallError):
            await gateway.forward_raw(
                ctx, "resources/subscribe", "resources/read", Resource(upstream="docs", uri=uri), {"uri": uri}
            )
    labels = {
        s.labels["tool"] for m in CALLS.collect() for s in m.samples if s.labels.get("upstream") == "docs"
    }
    assert labels == {"docs://pages/{page}"}
