"""A short-lived decision cache in front of any engine.

The key is the canonical input document, clock included: the clock in the input is rounded
to the minute, so a key lives at most until the minute turns, and rules that depend on time
never see a stale minute. Large inputs (big tool arguments) are keyed by a BLAKE2b digest so
the cache stays small. Failed decisions are never cached: an OPA outage ends when OPA is
back. A new policy revision empties the cache.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.policy import metrics
from gateway.policy.engine import PolicyEngine
from gateway.policy.model import Decision, PolicyInput, PolicyStatus

__all__ = ["CachedPolicyEngine"]

# Inputs longer than this are keyed by digest rather than by their bytes.
_DIGEST_OVER = 512


def cache_key(input: PolicyInput) -> bytes:
    data = input.to_json()
    return data if len(data) <= _DIGEST_OVER else hashlib.blake2b(data, digest_size=16).digest()


class CachedPolicyEngine(PolicyEngine):
    """Wraps an engine; `ttl=0` or `max_entries=0` keeps the wrapper (and its metrics) without caching."""

    def __init__(
        self,
        inner: PolicyEngine,
        *,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl >= 0 or max_entries < 0:
            raise ValueError(f"ttl must be >= 0 and max_entries >= 0, got {ttl!r} and {max_entries!r}")
        self.inner = inner
        self.name = inner.name
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[bytes, tuple[float, Decision]] = {}
        self._revision = inner.revision

    def __len__(self) -> int:
        return len(self._entries)

    def loaded_data(self) -> Mapping[str, Any] | None:
        return self.inner.loaded_data()

    def clear(self) -> None:
        self._entries.clear()

    def _lookup(self, input: PolicyInput, now: float) -> tuple[bytes | None, Decision | None]:
        revision = self.inner.revision
        if revision != self._revision:
            self._entries.clear()
            self._revision = revision
        try:
            key = cache_key(input)
        except (TypeError, ValueError):
            return None, None  # not JSON: the engine itself reports it (fail closed)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return key, entry[1]
        return key, None

    def _store(self, key: bytes | None, decision: Decision, now: float, revision: int) -> None:
        # Never keep a failure, nor a decision made while the policy changed under it.
        off = not self.ttl or not self.max_entries
        if off or key is None or decision.is_error or revision != self.inner.revision:
            return
        entries = self._entries
        if key not in entries and len(entries) >= self.max_entries:
            del entries[next(iter(entries))]  # oldest first: dicts keep insertion order
        entries[key] = (now + self.ttl, decision)

    async def decide(self, input: PolicyInput) -> Decision:
        started = time.perf_counter()
        now = self._clock()
        key, decision = self._lookup(input, now)
        if decision is not None:
            metrics.observe_decision(decision, time.perf_counter() - started, hit=True)
            return decision
        revision = self._revision
        decision = await self.inner.decide(input)
        self._store(key, decision, now, revision)
        metrics.observe_decision(decision, time.perf_counter() - started, hit=False)
        return decision

    async def decide_many(self, inputs: Sequence[PolicyInput]) -> list[Decision]:
        started = time.perf_counter()
        now = self._clock()
        found = [self._lookup(item, now) for item in inputs]
        missing = [index for index, (_, decision) in enumerate(found) if decision is None]
        revision = self._revision
        fresh = await self.inner.decide_many([inputs[index] for index in missing]) if missing else []
        results = [decision for _, decision in found]
        for index, decision in zip(missing, fresh, strict=True):
            self._store(found[index][0], decision, now, revision)
            results[index] = decision
        elapsed = (time.perf_counter() - started) / max(len(inputs), 1)
        missed = set(missing)
        decided: list[Decision] = []
        for index, decision in enumerate(results):
            assert decision is not None
            metrics.observe_decision(decision, elapsed, hit=index not in missed)
            decided.append(decision)
        return decided

    @property
    def revision(self) -> int:
        return self.inner.revision

    def status(self) -> PolicyStatus:
        return self.inner.status()

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        self._entries.clear()
        await self.inner.close()
