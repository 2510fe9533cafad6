"""`AuditEvent`: one decision or call, as the audit log keeps it.

Arguments are never stored, only their digest: SHA-256 over their canonical JSON
(object keys sorted, no whitespace, UTF-8, as `orjson` writes it), so an auditor who
holds the arguments can prove which call an event describes without the log
becoming a copy of every query and document that passed through.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from gateway.auth.principal import Principal

__all__ = ["OUTCOMES", "AuditEvent", "Decision", "digest_arguments"]

Decision = Literal["allow", "deny", "error"]
DECISIONS: frozenset[str] = frozenset({"allow", "deny", "error"})

# The outcomes the gateway records; `outcome` is free text so a new path needs no migration.
OUTCOMES = (
    "ok",  # the call ran and succeeded
    "tool_error",  # the call ran and the tool reported an error (`isError`)
    "input_required",  # a 2026-07-28 tool asked the client for more input
    "denied",  # policy refused it; nothing ran upstream
    "held",  # policy requires an approval the call does not carry; nothing ran upstream
    "rate_limited",  # a rate limit refused it
    "invalid_request",  # an unknown tool, or arguments that fail the tool's input schema
    "upstream_error",  # the upstream failed, crashed or timed out
    "cancelled",  # the client cancelled it
    "unauthenticated",  # its credentials were refused (the request went no further)
)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """What happened, to whom, with which outcome. `principal` is None before authentication."""

    action: str
    decision: Decision
    outcome: str
    latency_ms: float
    principal: Principal | None
    time: datetime = field(default_factory=_now)
    upstream: str | None = None
    tool: str | None = None
    argument_digest: str | None = None
    reasons: tuple[str, ...] = ()
    request_id: str | None = None
    client_address: str | None = None

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be allow, deny or error, got {self.decision!r}")
        if self.time.tzinfo is None:
            raise ValueError("time must be timezone-aware (use datetime.now(UTC))")
        if not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError(f"latency_ms must be a finite number >= 0, got {self.latency_ms!r}")
        if not self.action or not self.outcome:
            raise ValueError("action and outcome must be non-empty")


def digest_arguments(arguments: Any) -> str:
    """SHA-256 hex of the canonical JSON of `arguments` (any JSON value; None is `null`)."""
    try:
        canonical = orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"arguments are not JSON-serialisable: {exc}") from exc
    return hashlib.sha256(canonical).hexdigest()
