"""Prometheus metrics of the policy layer, in Bastion's registry.

bastion_policy_decisions_total{outcome,cache}   decisions served: allow, deny or error; hit or miss
bastion_policy_decision_seconds{outcome}        time to decide, cache included
bastion_policy_evaluations_total{engine,outcome} evaluations an engine actually ran
bastion_policy_evaluation_seconds{engine}       time an engine took (embedded or opa)
bastion_policy_reloads_total                    policies put in force by (re)loading
bastion_policy_reload_errors_total              loads that failed, leaving the last good policy
bastion_policy_ok                               1 while the policy in force loaded cleanly
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from bastion.metrics import REGISTRY
from gateway.policy.model import Decision

__all__ = [
    "POLICY_DECISIONS",
    "POLICY_DECISION_SECONDS",
    "POLICY_EVALUATIONS",
    "POLICY_EVALUATION_SECONDS",
    "POLICY_OK",
    "POLICY_RELOADS",
    "POLICY_RELOAD_ERRORS",
    "observe_decision",
    "observe_evaluation",
    "outcome",
]

# Decisions take microseconds when cached and up to a network round trip through OPA.
_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0)

POLICY_DECISIONS = Counter(
    "bastion_policy_decisions",
    "Policy decisions served, by outcome (allow, deny, error) and cache (hit, miss)",
    ["outcome", "cache"],
    registry=REGISTRY,
)
POLICY_DECISION_SECONDS = Histogram(
    "bastion_policy_decision_seconds",
    "Time to decide a request, cache included, by outcome",
    ["outcome"],
    registry=REGISTRY,
    buckets=_BUCKETS,
)
POLICY_EVALUATIONS = Counter(
    "bastion_policy_evaluations",
    "Policy evaluations an engine ran, by engine and outcome",
    ["engine", "outcome"],
    registry=REGISTRY,
)
POLICY_EVALUATION_SECONDS = Histogram(
    "bastion_policy_evaluation_seconds",
    "Time an engine took to evaluate one decision",
    ["engine"],
    registry=REGISTRY,
    buckets=_BUCKETS,
)
POLICY_RELOADS = Counter(
    "bastion_policy_reloads", "Policies put in force by loading or reloading files", registry=REGISTRY
)
POLICY_RELOAD_ERRORS = Counter(
    "bastion_policy_reload_errors",
    "Policy loads that failed; the last good policy stayed in force",
    registry=REGISTRY,
)
POLICY_OK = Gauge(
    "bastion_policy_ok", "1 while the policy in force loaded cleanly, else 0", registry=REGISTRY
)

_OUTCOMES = ("allow", "deny", "error")
# Label children resolved once: `.labels()` is the costly part of a metric update.
_DECISIONS = {(o, c): POLICY_DECISIONS.labels(o, c) for o in _OUTCOMES for c in ("hit", "miss")}
_DECISION_SECONDS = {o: POLICY_DECISION_SECONDS.labels(o) for o in _OUTCOMES}


def outcome(decision: Decision) -> str:
    if decision.allow:
        return "allow"
    return "error" if decision.is_error else "deny"


def observe_decision(decision: Decision, seconds: float, *, hit: bool) -> None:
    result = outcome(decision)
    _DECISIONS[result, "hit" if hit else "miss"].inc()
    _DECISION_SECONDS[result].observe(seconds)


def observe_evaluation(engine: str, decision: Decision, seconds: float) -> None:
    POLICY_EVALUATIONS.labels(engine, outcome(decision)).inc()
    POLICY_EVALUATION_SECONDS.labels(engine).observe(seconds)
