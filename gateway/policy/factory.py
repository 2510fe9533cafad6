"""Building the engine a gateway uses from its settings.

`OPA_URL` set: decisions come from OPA. Unset: the embedded engine evaluates the policy
folder. Either way a short-lived cache sits in front.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.policy.cache import CachedPolicyEngine
from gateway.policy.embedded import EmbeddedRegoEngine
from gateway.policy.engine import DECISION_PATH, PolicyEngine
from gateway.policy.opa import OpaRestEngine

__all__ = ["PolicyConfig", "create_policy_engine"]


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """The settings the policy layer reads (each a `Settings` field of the same name)."""

    opa_url: str | None = None
    opa_decision_path: str = DECISION_PATH
    opa_timeout: float = 1.0
    opa_poll_interval: float = 5.0
    policy_dir: Path | None = None
    policy_reload_interval: float = 1.0
    policy_cache_ttl: float = 5.0
    policy_cache_size: int = 10_000

    @classmethod
    def from_settings(cls, settings: Any) -> PolicyConfig:
        """Read the fields `settings` has; the rest keep their defaults."""
        defaults = cls()
        values = {name: getattr(settings, name, getattr(defaults, name)) for name in cls.__slots__}
        return cls(**values)


async def create_policy_engine(settings: Any) -> PolicyEngine:
    """A started engine for `settings` (a `Settings` or a `PolicyConfig`); close it when done."""
    config = settings if isinstance(settings, PolicyConfig) else PolicyConfig.from_settings(settings)
    inner: PolicyEngine
    if config.opa_url:
        inner = OpaRestEngine(
            config.opa_url,
            decision_path=config.opa_decision_path,
            timeout=config.opa_timeout,
            poll_interval=config.opa_poll_interval or None,
        )
    else:
        inner = EmbeddedRegoEngine(
            config.policy_dir,
            decision_path=config.opa_decision_path,
            reload_interval=config.policy_reload_interval or None,
        )
    engine = CachedPolicyEngine(inner, ttl=config.policy_cache_ttl, max_entries=config.policy_cache_size)
    await engine.start()
    return engine
