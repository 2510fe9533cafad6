"""Policy for the gateway: who may do what, decided by Rego.

`PolicyEngine` is the contract; `EmbeddedRegoEngine` (regorus, in-process, the default) and
`OpaRestEngine` (an OPA server over REST) implement it; `CachedPolicyEngine` wraps either.
`create_policy_engine(settings)` builds the one a gateway uses. See docs/policy.md.
"""

from gateway.policy.cache import CachedPolicyEngine
from gateway.policy.embedded import EmbeddedRegoEngine
from gateway.policy.engine import DECISION_PATH, UNDEFINED, PolicyEngine, RegoEvaluator
from gateway.policy.errors import PolicyError, PolicyEvaluationError, PolicyLoadError
from gateway.policy.factory import PolicyConfig, create_policy_engine
from gateway.policy.filtering import filter_allowed, filter_tools
from gateway.policy.model import (
    Context,
    Decision,
    Obligations,
    PolicyInput,
    PolicyStatus,
    Principal,
    RateObligation,
    Resource,
    current_minute,
)
from gateway.policy.opa import OpaRestEngine

__all__ = [
    "DECISION_PATH",
    "UNDEFINED",
    "CachedPolicyEngine",
    "Context",
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
    "create_policy_engine",
    "current_minute",
    "filter_allowed",
    "filter_tools",
]
