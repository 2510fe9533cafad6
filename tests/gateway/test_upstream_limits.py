"""`max_concurrency`: calls beyond an upstream's limit wait their turn in the gateway.

A call that runs longer than `slow_call_ms` stops counting (so fast calls never wait long
behind slow ones), unless the limit is strict.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.gateway.conftest import GatewayProcess, counter_upstream, running_gateway
from tests.gateway.test_gateway import MODERN, _client


@pytest.fixture(scope="module")
def limited(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("limited")
    counter_log = work / "counter.log"
    config = "builtin_servers = []\n" + counter_upstream(
        counter_log, max_concurrency=1, strict_concurrency=True
    )
    with running_gateway(shared_home, work, config, counter_log) as process:
        yield process


@pytest.fixture(scope="module")
def soft_limited(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("soft-limited")
    counter_log = work / "counter.log"
    config = "builtin_servers = []\n" + counter_upstream(counter_log, max_concurrency=1, slow_call_ms=200)
    with running_gateway(shared_home, work, config, counter_log) as process:
        yield process


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_calls_over_the_limit_run_one_after_another_across_both_eras(
    limited: GatewayProcess, mode: str
) -> None:
    before = len(limited.counted())
    other = "legacy" if mode == MODERN else MODERN
    async with (
        _client(limited.url + "/mcp", limited.key("admin"), mode) as client,
        _client(limited.url + "/mcp", limited.key("admin"), other) as second,
        anyio.create_task_group() as tg,
    ):
        for caller in (client, second, client):
            tg.start_soon(caller.call_tool, "counter_hold", {"seconds": 0.3})
    held = [line for line in limited.counted()[before:] if line.startswith("hold-")]
    assert held == ["hold-start", "hold-end"] * 3, "the upstream ran more than one call at a time"
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(limited.url + "/metrics")).text
    assert 'bastion_gateway_upstream_waiting{upstream="counter"} 0.0' in metrics


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_an_unlimited_upstream_runs_calls_side_by_side(gateway: GatewayProcess, mode: str) -> None:
    """Concurrent calls share each era's upstream connection (multiplexed, not serialized)."""
    before = len(gateway.counted())
    async with (
        _client(gateway.url + "/mcp", gateway.key("admin"), mode) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(3):
            tg.start_soon(client.call_tool, "counter_hold", {"seconds": 0.3})
    held = [line for line in gateway.counted()[before:] if line.startswith("hold-")]
    assert held[:3] == ["hold-start"] * 3


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_a_fast_call_waits_only_until_the_slow_one_ahead_of_it_turns_slow(
    soft_limited: GatewayProcess, mode: str
) -> None:
    before = len(soft_limited.counted())
    async with (
        _client(soft_limited.url + "/mcp", soft_limited.key("admin"), mode) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(client.call_tool, "counter_hold", {"seconds": 3.0})
        with anyio.fail_after(10):
            while "hold-start" not in soft_limited.counted()[before:]:
                await anyio.sleep(0.02)
        # The only slot is taken; the echo starts once the hold has run 200 ms, long
        # before the hold ends.
        result = await client.call_tool("counter_echo", {"text": "through"})
        assert not result.is_error
        assert soft_limited.counted()[before:] == ["hold-start", "echo"]
    assert soft_limited.counted()[before:] == ["hold-start", "echo", "hold-end"]
    async with httpx.AsyncClient(timeout=10) as http:
        metrics = (await http.get(soft_limited.url + "/metrics")).text
    slow = [line for line in metrics.splitlines() if line.startswith("bastion_upstream_slow_calls_total")]
    assert slow and float(slow[0].rsplit(" ", 1)[1]) >= 1, slow
