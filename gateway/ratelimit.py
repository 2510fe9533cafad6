"""Rate limits: token buckets per principal and per principal and tool.

Each call takes one token from two buckets: the tool's (the limit a policy `rate`
obligation sets, else the tool's configured limit, else the default per-tool limit)
and then the principal's (all its calls together). The tool bucket is checked first,
so a call refused by it does not spend the principal's budget. A principal is its
tenant and subject: every key of one subject shares its buckets.

Buckets live in this process by default (a dict, a few microseconds per check), or
in the shared store when one is given (Redis: limits then hold across gateway
replicas, at one round trip per bucket). If the store fails or stalls, checks use the
local buckets for `STORE_COOLDOWN` seconds without asking the store, and that is logged
once: limits keep holding per replica instead of either refusing every call or
admitting every call, and an outage costs one `STORE_TIMEOUT` per cooldown, not per call.

A refused call gets HTTP 429 with `Retry-After` (`too_many_requests_response`) or, inside
a stream or batch, the JSON-RPC error `RATE_LIMITED_CODE` (`rate_limit_error`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from prometheus_client import Counter
from starlette.responses import Response

from bastion.errors import StoreError
from bastion.metrics import REGISTRY
from bastion.stores import Store
from gateway.auth.principal import Principal

__all__ = [
    "RATE_LIMITED",
    "RATE_LIMITED_CODE",
    "RateLimit",
    "RateLimiter",
    "RateObligation",
    "RateVerdict",
    "rate_limit_error",
    "too_many_requests_response",
]

logger = logging.getLogger(__name__)

# JSON-RPC reserves -32000..-32099 for implementation-defined server errors; 29 as in 429.
RATE_LIMITED_CODE = -32029

RATE_LIMITED = Counter(
    "bastion_rate_limited",
    "Calls refused by a rate limit, by the bucket that refused them",
    ["scope"],
    registry=REGISTRY,
)
RATE_LIMIT_STORE_ERRORS = Counter(
    "bastion_rate_limit_store_errors",
    "Bucket checks decided by local buckets because the shared store failed (or is cooling down)",
    registry=REGISTRY,
)

Scope = Literal["principal", "tool", "policy"]
# Longer keys are hashed; the store refuses keys over 1024 bytes (UTF-8), prefix not counted.
_MAX_KEY_BYTES = 512
# Seconds a shared store may take to answer before this process's own buckets decide.
STORE_TIMEOUT = 0.5
# Seconds after a store failure during which checks do not ask the store at all.
STORE_COOLDOWN = 10.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A configured limit: `per_second` sustained, `burst` at once."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.per_second) or self.per_second <= 0 or self.burst < 1:
            raise ValueError(f"a rate limit needs per_second > 0 and burst >= 1, got {self!r}")

    @classmethod
    def or_none(cls, per_second: float, burst: int) -> RateLimit | None:
        """The limit a setting asks for; a rate of 0 switches the limit off."""
        return None if per_second == 0 else cls(per_second, burst)

    def describe(self) -> str:
        return f"{self.per_second:g}/s, burst {self.burst}"


@dataclass(frozen=True, slots=True)
class RateObligation:
    """A policy `rate` obligation: `per_minute` sustained, `burst` at once."""

    per_minute: float
    burst: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.per_minute) or self.per_minute <= 0 or self.burst < 1:
            raise ValueError(f"a rate obligation needs per_minute > 0 and burst >= 1, got {self!r}")

    def describe(self) -> str:
        return f"{self.per_minute:g}/min, burst {self.burst}"


@dataclass(frozen=True, slots=True)
class RateVerdict:
    """Whether a call may run; if not, `limit` names the limit and `retry_after` the wait (s)."""

    allowed: bool
    retry_after: float
    limit: str
    scope: Scope | None = None

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for `Retry-After`: rounded up, at least 1."""
        return max(1, math.ceil(self.retry_after))


ALLOWED = RateVerdict(True, 0.0, "")


class _LocalBuckets:
    """Token buckets in a dict; bounded by dropping buckets that are full again."""

    def __init__(self, max_buckets: int) -> None:
        self.max_buckets = max_buckets
        # key -> [tokens, updated (monotonic), rate, capacity]
        self._buckets: dict[str, list[float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, rate: float, capacity: float) -> float:
        """Take one token; return 0 if taken, else the seconds until one is available."""
        now = time.monotonic()
        state = self._buckets.get(key)
        if state is None:
            if len(self._buckets) >= self.max_buckets:
                self._sweep(now)
            state = self._buckets[key] = [capacity, now, rate, capacity]
            tokens = capacity
        else:
            tokens = min(capacity, state[0] + (now - state[1]) * rate)
            state[2], state[3] = rate, capacity
        state[1] = now
        if tokens >= 1.0:
            state[0] = tokens - 1.0
            return 0.0
        state[0] = tokens
        return (1.0 - tokens) / rate

    def _sweep(self, now: float) -> None:
        # A full bucket behaves exactly like one never seen: dropping it changes nothing.
        for key in [k for k, (t, at, r, c) in self._buckets.items() if t + (now - at) * r >= c]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_buckets:
            logger.warning("over %d rate-limit buckets are active; resetting the oldest", self.max_buckets)
        while len(self._buckets) >= self.max_buckets:
            del self._buckets[next(iter(self._buckets))]


def _key(kind: str, principal: Principal, tool: str | None) -> str:
    # Length prefixes keep ("a:b", "c") and ("a", "b:c") apart.
    key = f"rl:{kind}:{len(principal.tenant)}:{principal.tenant}{len(principal.subject)}:{principal.subject}"
    if tool is not None:
        key += f":{tool}"
    encoded = key.encode()
    if len(encoded) > _MAX_KEY_BYTES:
        key = f"rl:{kind}:h:" + hashlib.sha256(encoded).hexdigest()
    return key


class RateLimiter:
    """Checks calls against per-principal and per-tool token buckets.

    `per_principal` and `per_tool` are the defaults (None switches that bucket off);
    `tools` sets limits for named tools; a policy `rate` obligation overrides the tool
    limit for the call it comes with. `store` shares the buckets (pass the Redis store
    when there is one); without it they live in this process. After a store failure the
    local buckets decide for `store_cooldown` seconds.
    """

    def __init__(
        self,
        *,
        per_principal: RateLimit | None = RateLimit(50.0, 100),
        per_tool: RateLimit | None = RateLimit(20.0, 40),
        tools: Mapping[str, RateLimit] | None = None,
        store: Store | None = None,
        max_local_buckets: int = 100_000,
        store_cooldown: float = STORE_COOLDOWN,
    ) -> None:
        self.per_principal = per_principal
        self.per_tool = per_tool
        self.tools: dict[str, RateLimit] = dict(tools or {})
        self.store = store
        self.local = _LocalBuckets(max_local_buckets)
        self.store_cooldown = store_cooldown
        self._store_down_until: float | None = None  # monotonic; None: the store answered last

    async def check(
        self, principal: Principal, tool: str | None, *, rate: RateObligation | None = None
    ) -> RateVerdict:
        """Take a token for this call from its buckets; the verdict says if it may run."""
        if rate is not None:
            # A bucket of its own: calls of the tool without the obligation must not refill it.
            wait = await self._take(_key("o", principal, tool or "*"), rate.per_minute / 60.0, rate.burst)
            if wait:
                limit_text = f"policy limit for {tool or 'these calls'}: {rate.describe()}"
                return self._refused("policy", limit_text, wait)
        elif tool is not None:
            limit = self.tools.get(tool, self.per_tool)
            if limit is not None:
                wait = await self._take(_key("t", principal, tool), limit.per_second, limit.burst)
                if wait:
                    return self._refused("tool", f"limit for tool {tool}: {limit.describe()}", wait)
        if self.per_principal is not None:
            limit = self.per_principal
            wait = await self._take(_key("p", principal, None), limit.per_second, limit.burst)
            if wait:
                return self._refused("principal", f"limit for {principal.subject}: {limit.describe()}", wait)
        return ALLOWED

    async def _take(self, key: str, rate: float, capacity: float) -> float:
        if self.store is None:
            return self.local.take(key, rate, capacity)
        down_until = self._store_down_until
        if down_until is not None and time.monotonic() < down_until:
            RATE_LIMIT_STORE_ERRORS.inc()
            return self.local.take(key, rate, capacity)
        try:
            # A stalled store (a half-open connection, a failover) must not hold every call.
            async with asyncio.timeout(STORE_TIMEOUT):
                result = await self.store.take(key, rate=rate, capacity=capacity)
        except (StoreError, TimeoutError) as exc:
            RATE_LIMIT_STORE_ERRORS.inc()
            now = time.monotonic()
            # Calls in flight together all fail: the first to land logs.
            if self._store_down_until is None or now >= self._store_down_until:
                reason = str(exc) or f"no answer within {STORE_TIMEOUT} s"
                logger.warning(
                    "rate-limit store failed (%s); using this process's buckets for %g s",
                    reason,
                    self.store_cooldown,
                )
            self._store_down_until = now + self.store_cooldown
            return self.local.take(key, rate, capacity)
        if self._store_down_until is not None:
            self._store_down_until = None
            logger.info("rate-limit store answers again; buckets are shared again")
        # A refusal always carries a positive wait, even if rounding made it 0.
        return 0.0 if result.allowed else max(result.retry_after, 1e-3)

    @staticmethod
    def _refused(scope: Scope, limit: str, wait: float) -> RateVerdict:
        RATE_LIMITED.labels(scope).inc()
        return RateVerdict(False, wait, limit, scope)


def rate_limit_error(verdict: RateVerdict) -> dict[str, Any]:
    """The JSON-RPC error object for a refused call (inside a batch or an SSE stream)."""
    seconds = verdict.retry_after_seconds
    return {
        "code": RATE_LIMITED_CODE,
        "message": f"rate limit exceeded ({verdict.limit}); retry in {seconds} s",
        "data": {
            "retry_after": round(verdict.retry_after, 3),
            "limit": verdict.limit,
            "scope": verdict.scope,
        },
    }


def too_many_requests_response(verdict: RateVerdict, *, jsonrpc_id: str | int | None = None) -> Response:
    """HTTP 429 with `Retry-After` and a JSON-RPC error body answering `jsonrpc_id`."""
    body = {"jsonrpc": "2.0", "id": jsonrpc_id, "error": rate_limit_error(verdict)}
    return Response(
        orjson.dumps(body),
        status_code=429,
        media_type="application/json",
        headers={"Retry-After": str(verdict.retry_after_seconds)},
    )
