"""The decision cache: keyed on the whole input, clock minute included."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.policy import CachedPolicyEngine, Decision, PolicyEngine, PolicyInput, PolicyStatus
from gateway.policy.cache import cache_key
from gateway.policy.model import NO_ACCESS
from tests.gateway.policy.helpers import call


class CountingEngine(PolicyEngine):
    """Allows everything except when told to fail; counts what it evaluates."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False
        self.revision_value = 1

    async def decide(self, input: PolicyInput) -> Decision:
        self.calls += 1
        if self.failing:
            return Decision.error("down")
        return Decision(True, (f"allow #{self.calls}",), NO_ACCESS)

    async def decide_many(self, inputs: Sequence[PolicyInput]) -> list[Decision]:
        return [await self.decide(item) for item in inputs]

    @property
    def revision(self) -> int:
        return self.revision_value

    def status(self) -> PolicyStatus:
        return PolicyStatus(ok=True, engine="counting")

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_same_request_is_decided_once_within_the_ttl() -> None:
    inner, clock = CountingEngine(), Clock()
    cache = CachedPolicyEngine(inner, ttl=5, clock=clock)
    first = await cache.decide(call("analyst", "analytics", "query", sql="select 1"))
    again = await cache.decide(call("analyst", "analytics", "query", sql="select 1"))
    assert first is again
    assert inner.calls == 1
    clock.now += 5.01
    await cache.decide(call("analyst", "analytics", "query", sql="select 1"))
    assert inner.calls == 2


async def test_a_different_argument_is_a_different_decision() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=5)
    one = await cache.decide(call("analyst", "analytics", "query", source="sales"))
    two = await cache.decide(call("analyst", "analytics", "query", source="hr"))
    assert one.reasons != two.reasons
    assert inner.calls == 2


async def test_the_minute_is_part_of_the_key() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=60)
    await cache.decide(call("analyst", "system", "version", minute="2026-05-01T10:00:00Z"))
    await cache.decide(call("analyst", "system", "version", minute="2026-05-01T10:01:00Z"))
    await cache.decide(call("analyst", "system", "version", minute="2026-05-01T10:01:00Z"))
    assert inner.calls == 2


async def test_failures_are_never_cached() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=5)
    inner.failing = True
    assert (await cache.decide(call("admin", "system", "version"))).is_error
    inner.failing = False
    assert (await cache.decide(call("admin", "system", "version"))).allow
    assert inner.calls == 2


async def test_a_new_policy_revision_empties_the_cache() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=5)
    await cache.decide(call("admin", "system", "version"))
    inner.revision_value = 2
    await cache.decide(call("admin", "system", "version"))
    assert inner.calls == 2
    assert cache.revision == 2


async def test_the_cache_stays_within_its_size() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=5, max_entries=3)
    for n in range(10):
        await cache.decide(call("admin", "system", "version", n=n))
    assert len(cache) == 3
    await cache.decide(call("admin", "system", "version", n=9))
    assert inner.calls == 10


async def test_large_arguments_are_keyed_by_digest() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=5)
    rows = [{"x": n} for n in range(2000)]
    await cache.decide(call("analyst", "anomaly", "score_table", rows=rows))
    await cache.decide(call("analyst", "anomaly", "score_table", rows=rows))
    assert inner.calls == 1
    assert len(cache_key(call("analyst", "anomaly", "score_table", rows=rows))) == 16
    assert len(cache) == 1


async def test_decide_many_evaluates_only_what_the_cache_misses() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=5)
    await cache.decide(call("viewer", "system", "version"))
    decisions = await cache.decide_many(
        [call("viewer", "system", "version"), call("viewer", "system", "health"), call("viewer", "x", "y")]
    )
    assert [d.reasons for d in decisions] == [("allow #1",), ("allow #2",), ("allow #3",)]
    assert inner.calls == 3


async def test_a_zero_ttl_caches_nothing() -> None:
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=0)
    await cache.decide(call("admin", "system", "version"))
    await cache.decide(call("admin", "system", "version"))
    assert inner.calls == 2


async def test_a_zero_size_caches_nothing() -> None:
    """`policy_cache_size = 0` switches caching off, as 0 does for the other settings."""
    inner = CountingEngine()
    cache = CachedPolicyEngine(inner, ttl=5, max_entries=0)
    await cache.decide(call("admin", "system", "version"))
    await cache.decide_many([call("admin", "system", "version")])
    assert inner.calls == 2 and len(cache) == 0
