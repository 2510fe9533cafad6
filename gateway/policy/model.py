"""The documents policy reads and writes: `PolicyInput` in, `Decision` out.

Both are frozen dataclasses so a decision can be cached and shared. `PolicyInput.to_json`
is the canonical form (sorted keys, compact) that engines evaluate and the cache keys on;
the clock in `Context.time` is rounded to the minute so that identical requests within a
minute are identical inputs.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

__all__ = [
    "Action",
    "Context",
    "Decision",
    "Obligations",
    "PolicyInput",
    "PolicyStatus",
    "Principal",
    "RateObligation",
    "Resource",
    "current_minute",
]

# The MCP actions policy decides; REST routes are "rest:METHOD /path" (any string).
Action = Literal["tools/list", "tools/call", "resources/read", "prompts/get"] | str

_minute_cache: tuple[int, str] = (-1, "")


def current_minute(now: float | None = None) -> str:
    """The UTC clock rounded down to the minute, ISO 8601 (`2026-05-01T10:00:00Z`).

    Computed once per minute: the gateway calls this on every request.
    """
    global _minute_cache
    epoch = _time.time() if now is None else now
    minute = int(epoch // 60)
    cached_minute, text = _minute_cache
    if minute == cached_minute:
        return text
    text = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if now is None:
        _minute_cache = (minute, text)
    return text


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, as authentication established it."""

    subject: str
    tenant: str
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    auth_method: str = "api_key"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "tenant": self.tenant,
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "auth_method": self.auth_method,
        }


@dataclass(frozen=True, slots=True)
class Resource:
    """What the action acts on. Unset fields are left out of the input document."""

    upstream: str | None = None
    tool: str | None = None
    uri: str | None = None
    prompt: str | None = None
    # The name the gateway exposes (e.g. `analytics_query`), used in reasons when given.
    name: str | None = None
    arguments: Mapping[str, Any] | None = None
    annotations: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key in ("upstream", "tool", "uri", "prompt", "name", "arguments", "annotations"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass(frozen=True, slots=True)
class Context:
    """Circumstances of the request. `time` is ISO 8601 rounded to the minute."""

    time: str
    client_address: str | None = None
    approval: str = "none"

    @classmethod
    def now(cls, client_address: str | None = None, approval: str = "none") -> Context:
        return cls(current_minute(), client_address, approval)

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "client_address": self.client_address, "approval": self.approval}


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """The input document of one decision."""

    principal: Principal
    action: Action
    resource: Resource = field(default_factory=Resource)
    context: Context = field(default_factory=Context.now)
    _json: list[bytes] = field(default_factory=list, init=False, repr=False, compare=False, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal.to_dict(),
            "action": self.action,
            "resource": self.resource.to_dict(),
            "context": self.context.to_dict(),
        }

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys), computed once; raises TypeError if not JSON-able."""
        if not self._json:
            self._json.append(orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS))
        return self._json[0]


@dataclass(frozen=True, slots=True)
class RateObligation:
    """A token bucket policy asks for: `per_minute` refill and `burst` capacity."""

    per_minute: float
    burst: int

    def to_dict(self) -> dict[str, Any]:
        return {"per_minute": self.per_minute, "burst": self.burst}


@dataclass(frozen=True, slots=True)
class Obligations:
    """What the gateway and the upstream must enforce on an allowed request. None: no limit."""

    require_approval: bool = False
    redact: tuple[str, ...] = ()
    row_limit: int | None = None
    rate: RateObligation | None = None
    allowed_collections: tuple[str, ...] | None = None
    allowed_datasets: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "require_approval": self.require_approval,
            "redact": list(self.redact),
            "row_limit": self.row_limit,
            "rate": self.rate.to_dict() if self.rate else None,
            "allowed_collections": _list_or_none(self.allowed_collections),
            "allowed_datasets": _list_or_none(self.allowed_datasets),
        }

    def for_caller(self) -> dict[str, Any]:
        """The part an upstream server applies (`bastion.caller.Obligations` fields)."""
        return {
            "allowed_collections": self.allowed_collections,
            "allowed_datasets": self.allowed_datasets,
            "row_limit": self.row_limit,
            "redact": self.redact,
        }


# Denials carry no obligations worth enforcing: nothing runs.
NO_ACCESS = Obligations(row_limit=0, allowed_collections=(), allowed_datasets=())


@dataclass(frozen=True, slots=True)
class Decision:
    """Policy's answer: allowed or not, why, and what must be enforced."""

    allow: bool
    reasons: tuple[str, ...]
    obligations: Obligations = NO_ACCESS

    @classmethod
    def error(cls, message: str) -> Decision:
        """A denial for a decision that could not be made (fail closed)."""
        return cls(False, (f"policy engine error: {message}",), NO_ACCESS)

    @property
    def is_error(self) -> bool:
        return (
            not self.allow and len(self.reasons) == 1 and self.reasons[0].startswith("policy engine error:")
        )

    @property
    def reason(self) -> str:
        """The first reason: what an MCP error message shows."""
        return self.reasons[0] if self.reasons else ("allowed" if self.allow else "denied by policy")

    def to_dict(self) -> dict[str, Any]:
        return {"allow": self.allow, "reasons": list(self.reasons), "obligations": self.obligations.to_dict()}


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    """Health of an engine, for `/readyz` and metrics."""

    ok: bool
    engine: str
    error: str | None = None
    loaded_at: datetime | None = None
    sources: tuple[str, ...] = ()
    revision: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "engine": self.engine,
            "error": self.error,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "sources": list(self.sources),
            "revision": self.revision,
        }


def _list_or_none(values: tuple[str, ...] | None) -> list[str] | None:
    return None if values is None else list(values)
