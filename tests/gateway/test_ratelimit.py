"""Token buckets per principal and per tool, in process and shared through Redis."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
import redis.asyncio as aioredis

from bastion.db.embedded import EmbeddedPostgres
from bastion.errors import StoreError
from bastion.home import Home
from bastion.metrics import REGISTRY
from bastion.stores import MemoryStore, RedisStore
from bastion.stores.base import BucketResult
from gateway.auth import Principal
from gateway.ratelimit import (
    RATE_LIMITED_CODE,
    STORE_COOLDOWN,
    STORE_TIMEOUT,
    RateLimit,
    RateLimiter,
    RateObligation,
    RateVerdict,
    rate_limit_error,
    too_many_requests_response,
)
from tests.gateway.conftest import GatewayProcess, counter_gateway
from tests.gateway.test_gateway import _modern, _result, _sample, _scrape

# Refill so slow that no token comes back during a test: outcomes do not depend on timing.
SLOW = 0.001

ALICE = Principal("alice", "acme", ("analyst",), (), "api_key", "0123456789ab")
BOB = Principal("bob", "acme", ("analyst",), (), "api_key", "ba9876543210")


async def admitted(
    limiter: RateLimiter, principal: Principal, tool: str | None, n: int, rate: RateObligation | None = None
) -> int:
    verdicts = [await limiter.check(principal, tool, rate=rate) for _ in range(n)]
    return sum(v.allowed for v in verdicts)


async def test_a_principal_gets_its_burst_then_a_refusal_with_retry_after() -> None:
    limiter = RateLimiter(per_principal=RateLimit(2.0, 3), per_tool=None)
    assert await admitted(limiter, ALICE, "echo", 3) == 3
    verdict = await limiter.check(ALICE, "echo")
    assert not verdict.allowed and verdict.scope == "principal"
    assert 0 < verdict.retry_after <= 0.5 + 1e-6
    assert verdict.retry_after_seconds == 1
    assert "alice" in verdict.limit and "2/s, burst 3" in verdict.limit


async def test_principals_have_separate_buckets() -> None:
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 2), per_tool=None)
    assert await admitted(limiter, ALICE, None, 5) == 2
    assert await admitted(limiter, BOB, None, 5) == 2


async def test_a_tool_limit_refuses_that_tool_while_others_still_run() -> None:
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 100), per_tool=RateLimit(SLOW, 2))
    assert await admitted(limiter, ALICE, "a_search", 4) == 2
    refused = await limiter.check(ALICE, "a_search")
    assert refused.scope == "tool" and "a_search" in refused.limit
    assert await admitted(limiter, ALICE, "b_query", 2) == 2


async def test_a_call_refused_by_its_tool_does_not_spend_the_principal_budget() -> None:
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 3), per_tool=RateLimit(SLOW, 1))
    assert await admitted(limiter, ALICE, "a", 10) == 1
    assert await admitted(limiter, ALICE, "b", 1) == 1
    assert await admitted(limiter, ALICE, "c", 1) == 1
    verdict = await limiter.check(ALICE, "d")
    assert verdict.scope == "principal"


async def test_named_tools_get_their_configured_limit() -> None:
    limiter = RateLimiter(
        per_principal=None, per_tool=RateLimit(SLOW, 10), tools={"forecast_run": RateLimit(SLOW, 1)}
    )
    assert await admitted(limiter, ALICE, "forecast_run", 3) == 1
    assert await admitted(limiter, ALICE, "echo", 3) == 3


async def test_a_policy_obligation_overrides_the_tool_limit() -> None:
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 100), per_tool=RateLimit(SLOW, 50))
    obligation = RateObligation(per_minute=6, burst=2)
    assert await admitted(limiter, ALICE, "sql_query", 5, rate=obligation) == 2
    verdict = await limiter.check(ALICE, "sql_query", rate=obligation)
    assert verdict.scope == "policy" and "6/min, burst 2" in verdict.limit
    assert 9 < verdict.retry_after <= 10 + 1e-6  # one token per 10 s
    assert verdict.retry_after_seconds == 10


async def test_no_limits_means_every_call_runs() -> None:
    limiter = RateLimiter(per_principal=None, per_tool=None)
    assert await admitted(limiter, ALICE, "echo", 500) == 500


async def test_local_buckets_stay_bounded() -> None:
    limiter = RateLimiter(per_principal=RateLimit(1000.0, 1), per_tool=None, max_local_buckets=10)
    for i in range(100):
        await limiter.check(Principal(f"user{i}", "t", ("viewer",), (), "api_key"), None)
    assert len(limiter.local) <= 10


def test_a_zero_rate_setting_switches_a_limit_off() -> None:
    assert RateLimit.or_none(0, 100) is None
    assert RateLimit.or_none(5, 10) == RateLimit(5, 10)


def test_bad_limits_are_refused_with_the_values() -> None:
    with pytest.raises(ValueError, match="per_second > 0"):
        RateLimit(0, 1)
    with pytest.raises(ValueError, match="burst >= 1"):
        RateObligation(per_minute=10, burst=0)


def test_a_refusal_becomes_http_429_with_whole_seconds_and_a_json_rpc_body() -> None:
    verdict = RateVerdict(False, 2.2, "limit for alice: 50/s, burst 100", "principal")
    response = too_many_requests_response(verdict, jsonrpc_id=7)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    body = orjson.loads(response.body)
    assert body["jsonrpc"] == "2.0" and body["id"] == 7
    assert body["error"]["code"] == RATE_LIMITED_CODE
    assert "limit for alice" in body["error"]["message"] and "retry in 3 s" in body["error"]["message"]


def test_the_mcp_error_names_the_limit_and_the_wait() -> None:
    error = rate_limit_error(RateVerdict(False, 0.01, "limit for tool x: 1/s, burst 1", "tool"))
    assert error["code"] == RATE_LIMITED_CODE
    assert error["message"] == "rate limit exceeded (limit for tool x: 1/s, burst 1); retry in 1 s"
    assert error["data"] == {"retry_after": 0.01, "limit": "limit for tool x: 1/s, burst 1", "scope": "tool"}


@pytest.fixture
async def redis_pair(redis_url: str) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    prefix = f"bastion-test:{uuid.uuid4().hex[:12]}:"
    first = await RedisStore.open(redis_url, prefix=prefix)
    second = await RedisStore.open(redis_url, prefix=prefix)
    yield first, second
    await first.close()
    await second.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_limits_in_redis_hold_across_two_gateway_replicas(
    redis_pair: tuple[RedisStore, RedisStore],
) -> None:
    one = RateLimiter(per_principal=RateLimit(SLOW, 3), per_tool=RateLimit(SLOW, 2), store=redis_pair[0])
    two = RateLimiter(per_principal=RateLimit(SLOW, 3), per_tool=RateLimit(SLOW, 2), store=redis_pair[1])
    assert await admitted(one, ALICE, "echo", 1) == 1
    assert await admitted(two, ALICE, "echo", 1) == 1
    refused = await one.check(ALICE, "echo")
    assert refused.scope == "tool" and refused.retry_after > 0
    assert await admitted(two, ALICE, "other", 1) == 1
    last = await two.check(ALICE, "third")
    assert last.scope == "principal"
    assert len(one.local) == 0 and len(two.local) == 0


@pytest.mark.redis
async def test_a_failing_store_falls_back_to_local_buckets(redis_url: str) -> None:
    store = await RedisStore.open(redis_url, prefix=f"bastion-test:{uuid.uuid4().hex[:12]}:")
    await store.close()
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 2), per_tool=None, store=store)
    assert await admitted(limiter, ALICE, None, 4) == 2
    assert len(limiter.local) == 1


@pytest.mark.redis
async def test_a_stalled_store_falls_back_to_local_buckets_within_its_timeout(
    redis_pair: tuple[RedisStore, RedisStore], redis_url: str
) -> None:
    """Redis stops answering (CLIENT PAUSE: a failover, a half-open connection): the check
    waits at most STORE_TIMEOUT, then this process's own buckets decide."""
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 2), per_tool=None, store=redis_pair[0])
    assert await admitted(limiter, ALICE, None, 1) == 1  # the connection is open and in use
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        started = time.monotonic()
        verdict = await limiter.check(ALICE, None)
        waited = time.monotonic() - started
    finally:
        await admin.aclose()
    assert verdict.allowed and len(limiter.local) == 1  # decided locally
    assert STORE_TIMEOUT <= waited < 1.4  # well before Redis answers again


async def test_a_policy_obligation_has_a_bucket_of_its_own() -> None:
    """Calls of a tool without the obligation (other arguments, other rules) must not spend
    or refill the bucket the obligation sets."""
    limiter = RateLimiter(per_principal=None, per_tool=RateLimit(SLOW, 50))
    obligation = RateObligation(per_minute=6, burst=2)
    assert await admitted(limiter, ALICE, "sql_query", 3, rate=obligation) == 2
    assert await admitted(limiter, ALICE, "sql_query", 5) == 5  # the tool's own limit
    assert await admitted(limiter, ALICE, "sql_query", 1, rate=obligation) == 0


async def test_a_long_non_ascii_tool_name_gets_its_own_bucket_in_the_store() -> None:
    """The store caps keys in bytes: 400 CJK characters are 1,200 bytes, so the key is hashed."""
    store = MemoryStore()
    limiter = RateLimiter(per_principal=None, per_tool=RateLimit(SLOW, 2), store=store)
    report, other = "files/file:///文档/" + "报告" * 200, "files/file:///文档/" + "报告" * 199 + "文档"
    assert await admitted(limiter, ALICE, report, 3) == 2
    assert await admitted(limiter, ALICE, other, 3) == 2
    assert len(limiter.local) == 0  # decided by the store, not by a fallback
    await store.close()


class FlakyStore(MemoryStore):
    """A store that fails its bucket calls while `down`; counts every call that reaches it."""

    def __init__(self) -> None:
        super().__init__()
        self.down = True
        self.takes = 0

    async def _take(self, key: str, rate: float, capacity: float, cost: float) -> BucketResult:
        self.takes += 1
        if self.down:
            raise StoreError("Redis at redis://cache:6379/0 is unreachable")
        return await super()._take(key, rate, capacity, cost)


def _store_errors() -> float:
    return REGISTRY.get_sample_value("bastion_rate_limit_store_errors_total") or 0.0


async def test_after_a_store_failure_local_buckets_decide_for_the_cooldown_without_asking_the_store(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FlakyStore()
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 3), per_tool=RateLimit(SLOW, 2), store=store)
    before = _store_errors()
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        assert await admitted(limiter, ALICE, "echo", 5) == 2  # the local tool bucket holds
    assert store.takes == 1
    assert [r.getMessage() for r in caplog.records] == [
        "rate-limit store failed (Redis at redis://cache:6379/0 is unreachable); "
        f"using this process's buckets for {STORE_COOLDOWN:g} s"
    ]
    assert _store_errors() - before == 7  # every bucket check decided locally: 5 tool, 2 principal
    await store.close()


async def test_once_the_cooldown_ends_the_store_is_asked_again(caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore()
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 5), per_tool=None, store=store, store_cooldown=0)
    caplog.set_level(logging.INFO, logger="gateway.ratelimit")
    assert await admitted(limiter, ALICE, None, 2) == 2
    assert store.takes == 2 and len(caplog.records) == 2  # no cooldown: each failure is news
    store.down = False
    assert await admitted(limiter, ALICE, None, 2) == 2
    assert store.takes == 4
    assert caplog.records[-1].getMessage() == "rate-limit store answers again; buckets are shared again"
    await store.close()


async def test_a_stalled_store_costs_one_timeout_and_one_warning_per_cooldown(
    stalled_redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(stalled_redis_url)
    limiter = RateLimiter(per_principal=RateLimit(SLOW, 3), per_tool=RateLimit(SLOW, 10), store=store)
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
            assert await admitted(limiter, ALICE, "echo", 5) == 3
    finally:
        await store.close()
    assert len(caplog.records) == 1
    assert f"no answer within {STORE_TIMEOUT} s" in caplog.records[0].getMessage()


@pytest.fixture(scope="module")
def strict(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway whose principals get three requests at once, then one every two seconds."""
    settings = "rate_limit_per_second = 0.5\nrate_limit_burst = 3"
    with counter_gateway(shared_home, tmp_path_factory, "strict-limits", settings) as process:
        yield process


def _initialize(url: str, key: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": "init",
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"authorization": f"Bearer {key}", "accept": "application/json, text/event-stream"}
    return httpx.post(url, json=body, headers=headers, timeout=30)


def test_every_request_of_a_principal_takes_from_its_bucket(strict: GatewayProcess) -> None:
    """Not only calls: lists, `initialize` and the rest are limited too (a listing is
    decided and audited, an `initialize` writes a session record); each refusal is
    counted, and the principal's first in a window is audited (the rest are counted into
    one event when the window ends: tests/gateway/test_refusals_audited.py)."""
    key, url = strict.new_key("viewer", "lister"), strict.url + "/mcp"
    refused_before = _sample(_scrape(strict), "bastion_rate_limited_total", scope="principal")
    assert [_modern(url, "tools/list", {}, key).status_code for _ in range(3)] == [200, 200, 200]
    for refused, rid in ((_modern(url, "tools/list", {}, key), 1), (_initialize(url, key), "init")):
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        answer = refused.json()
        assert answer["id"] == rid and answer["error"]["code"] == RATE_LIMITED_CODE
        assert answer["error"]["message"].startswith("rate limit exceeded (limit for lister: ")
        assert answer["error"]["data"]["scope"] == "principal"
    # A call of a tool the caller does not have takes a token as a call does.
    unknown = _modern(url, "tools/call", {"name": "nope", "arguments": {}}, key, name="nope")
    assert unknown.status_code == 429 and unknown.json()["error"]["code"] == RATE_LIMITED_CODE
    assert _sample(_scrape(strict), "bastion_rate_limited_total", scope="principal") - refused_before == 3
    with psycopg.connect(EmbeddedPostgres(Home(strict.home)).dsn()) as conn:
        events = conn.execute(
            "SELECT action, outcome FROM gateway.audit_events WHERE subject = 'lister' ORDER BY id"
        ).fetchall()
    # The first refusal is written; the other two of its window (the unknown tool's call
    # among them: nothing was decided for it) are counted into one event when it ends.
    assert events == [("tools/list", "ok")] * 3 + [("tools/list", "rate_limited")]
    # Another principal has its own bucket, and this one refills.
    assert _modern(url, "tools/list", {}, strict.key("viewer")).status_code == 200
    time.sleep(2.2)
    assert _modern(url, "tools/list", {}, key).status_code == 200


def test_a_completion_the_gateway_answers_itself_still_takes_a_token(strict: GatewayProcess) -> None:
    """A completion for a prompt the caller's view does not have is answered with no values
    by the gateway, without asking an upstream; the request still takes from the bucket."""
    key, url = strict.new_key("viewer", "completer"), strict.url + "/mcp"
    params = {"ref": {"type": "ref/prompt", "name": "no_such_prompt"}, "argument": {"name": "a", "value": ""}}
    answers = [_result(_modern(url, "completion/complete", params, key)) for _ in range(4)]
    assert [answer["result"]["completion"]["values"] for answer in answers[:3]] == [[], [], []]
    error = answers[3]["error"]
    assert error["code"] == RATE_LIMITED_CODE
    assert error["message"].startswith("rate limit exceeded (limit for completer: ")
