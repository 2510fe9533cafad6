"""The input and output documents, and the package's public surface."""

from __future__ import annotations

import orjson

import gateway.policy
from gateway.policy import Context, Decision, PolicyInput, Principal, Resource, current_minute
from gateway.policy.model import Obligations, RateObligation


def test_the_public_surface_is_pinned() -> None:
    assert sorted(gateway.policy.__all__) == [
        "CachedPolicyEngine",
        "Context",
        "DECISION_PATH",
        "Decision",
        "EmbeddedRegoEngine",
        "Obligations",
        "OpaRestEngine",
        "PolicyConfig",
        "PolicyEngine",
        "PolicyError",
        "PolicyEvaluationError",
        "PolicyInput",
        "PolicyLoadError",
        "PolicyStatus",
        "Principal",
        "RateObligation",
        "RegoEvaluator",
        "Resource",
        "UNDEFINED",
        "create_policy_engine",
        "current_minute",
        "filter_allowed",
        "filter_tools",
    ]
    for name in gateway.policy.__all__:
        assert getattr(gateway.policy, name) is not None


def test_the_clock_is_rounded_down_to_the_minute() -> None:
    assert current_minute(1_767_225_599.9) == "2025-12-31T23:59:00Z"
    assert current_minute(1_767_225_600.0) == "2026-01-01T00:00:00Z"
    assert current_minute().endswith(":00Z")
    assert Context.now("127.0.0.1").time == current_minute()


def test_the_input_document_has_the_documented_shape() -> None:
    item = PolicyInput(
        Principal("alice", "acme", ("analyst",), ("mcp",), "oauth"),
        "tools/call",
        Resource(upstream="analytics", tool="query", arguments={"sql": "select 1"}),
        Context("2026-05-01T10:00:00Z", "10.0.0.1", "none"),
    )
    assert item.to_dict() == {
        "principal": {
            "subject": "alice",
            "tenant": "acme",
            "roles": ["analyst"],
            "scopes": ["mcp"],
            "auth_method": "oauth",
        },
        "action": "tools/call",
        "resource": {"upstream": "analytics", "tool": "query", "arguments": {"sql": "select 1"}},
        "context": {"time": "2026-05-01T10:00:00Z", "client_address": "10.0.0.1", "approval": "none"},
    }


def test_the_canonical_json_sorts_keys_whatever_the_argument_order() -> None:
    principal = Principal("alice", "acme", ("analyst",))
    context = Context("2026-05-01T10:00:00Z")
    one = PolicyInput(principal, "tools/call", Resource("a", "t", arguments={"b": 1, "a": 2}), context)
    two = PolicyInput(principal, "tools/call", Resource("a", "t", arguments={"a": 2, "b": 1}), context)
    assert one.to_json() == two.to_json()
    assert orjson.loads(one.to_json()) == one.to_dict()
    assert one == two


def test_an_engine_error_is_a_denial_that_says_so() -> None:
    decision = Decision.error("OPA is down")
    assert not decision.allow
    assert decision.is_error
    assert decision.reason == "policy engine error: OPA is down"
    assert decision.obligations.allowed_datasets == ()
    assert decision.obligations.row_limit == 0


def test_obligations_serialise_and_give_the_callers_part() -> None:
    obligations = Obligations(
        require_approval=True,
        redact=("email",),
        row_limit=10,
        rate=RateObligation(60.0, 5),
        allowed_collections=None,
        allowed_datasets=("sales",),
    )
    assert obligations.to_dict() == {
        "require_approval": True,
        "redact": ["email"],
        "row_limit": 10,
        "rate": {"per_minute": 60.0, "burst": 5},
        "allowed_collections": None,
        "allowed_datasets": ["sales"],
    }
    from bastion.caller import Obligations as CallerObligations

    assert CallerObligations(**obligations.for_caller()).allowed_datasets == ("sales",)
