"""`create_policy_engine` picks OPA when OPA_URL is set, else the embedded engine."""

from __future__ import annotations

from pathlib import Path

from bastion.settings import Settings
from gateway.policy import (
    CachedPolicyEngine,
    EmbeddedRegoEngine,
    OpaRestEngine,
    PolicyConfig,
    create_policy_engine,
)
from tests.gateway.policy.helpers import call
from tests.gateway.policy.opa_server import OpaTestServer


async def test_without_opa_url_the_embedded_engine_decides_behind_a_cache(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=None, redis_url=None, opa_url=None)
    engine = await create_policy_engine(settings)
    try:
        assert isinstance(engine, CachedPolicyEngine)
        assert isinstance(engine.inner, EmbeddedRegoEngine)
        assert (await engine.decide(call("admin", "system", "version"))).allow
        assert engine.status().ok
    finally:
        await engine.close()


async def test_with_opa_url_decisions_come_from_opa(opa_server: OpaTestServer) -> None:
    engine = await create_policy_engine(PolicyConfig(opa_url=opa_server.url, policy_cache_ttl=0))
    try:
        assert isinstance(engine, CachedPolicyEngine)
        assert isinstance(engine.inner, OpaRestEngine)
        assert (await engine.decide(call("admin", "system", "version"))).allow
        assert opa_server.requests == 1
    finally:
        await engine.close()


def test_config_reads_the_settings_it_finds(tmp_path: Path) -> None:
    class Partial:
        opa_url = None
        policy_dir = tmp_path
        policy_cache_ttl = 1.5

    config = PolicyConfig.from_settings(Partial())
    assert config.policy_dir == tmp_path
    assert config.policy_cache_ttl == 1.5
    assert config.policy_cache_size == 10_000


async def test_a_cache_size_of_zero_starts_an_engine_without_a_cache(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=None, redis_url=None, opa_url=None, policy_cache_size=0)
    engine = await create_policy_engine(settings)
    try:
        assert (await engine.decide(call("admin", "system", "version"))).allow
        assert (await engine.decide(call("admin", "system", "version"))).allow
        assert isinstance(engine, CachedPolicyEngine) and len(engine) == 0
    finally:
        await engine.close()
