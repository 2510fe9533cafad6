"""Assemble and run everything the gateway needs, for the length of its lifespan.

Opening order: database (migrations applied), store, instance key, API keys and the
authenticator, policy, rate limiter, audit writer, upstreams, then the views and
their SDK session managers. Closing runs in reverse. A view is rebuilt whenever an
upstream's catalog changes, and its connected clients are told.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from bastion.components import all_migration_sets
from bastion.db.database import Database
from bastion.errors import ConfigError
from bastion.home import Home
from bastion.settings import Settings
from bastion.stores import Store, open_store
from gateway.audit import AuditWriter, PostgresAuditWriter
from gateway.auth import ApiKeyAuthenticator, ApiKeyStore
from gateway.calls import Gateway
from gateway.catalog import View, ViewConfig, build_view
from gateway.endpoint import MCPEndpoint, ViewRuntime
from gateway.event_store import MemoryEventStore, SessionManager
from gateway.mcp_server import GatewayMCPServer
from gateway.naming import NameTable
from gateway.policy import PolicyEngine, create_policy_engine
from gateway.ratelimit import RateLimit, RateLimiter
from gateway.session_records import SessionRecords
from gateway.upstreams.manager import RESOURCE_UPDATED, UpstreamManager
from gateway.upstreams.specs import upstream_specs

__all__ = ["GatewayRuntime", "open_gateway"]

logger = logging.getLogger(__name__)


@dataclass
class GatewayRuntime:
    settings: Settings
    database: Database
    store: Store
    policy: PolicyEngine
    audit: AuditWriter
    gateway: Gateway
    upstreams: UpstreamManager
    endpoint: MCPEndpoint
    views: dict[str, ViewRuntime] = field(default_factory=dict[str, ViewRuntime])
    started: float = 0.0


def view_configs(settings: Settings, upstream_names: set[str]) -> dict[str, ViewConfig]:
    configs = {"": ViewConfig(name="")}
    for name, virtual in settings.virtual_servers.items():
        missing = sorted(set(virtual.upstreams) - upstream_names)
        if missing:
            raise ConfigError(
                f"virtual_servers.{name}: unknown upstreams {missing}; known: {sorted(upstream_names)}"
            )
        if virtual.allow_loopback_test_principal and settings.host not in {"127.0.0.1", "localhost", "::1"}:
            raise ConfigError(
                f"virtual_servers.{name}.allow_loopback_test_principal is only allowed while the gateway "
                f"listens on loopback (BASTION_HOST is {settings.host!r})"
            )
        configs[name] = ViewConfig(
            name=name,
            upstreams=frozenset(virtual.upstreams) if virtual.upstreams else None,
            tool_globs=tuple(virtual.tools),
            allow_loopback_test_principal=virtual.allow_loopback_test_principal,
        )
    return configs


def _listed(view: View, kind: str) -> object:
    """What a client listing `kind` on `view` is shown (before policy filters it)."""
    if kind == "tools":
        return {name: entry.definition for name, entry in view.tools.items()}
    if kind == "prompts":
        return {name: entry.definition for name, entry in view.prompts.items()}
    return (view.resource_list, view.template_definitions())


@asynccontextmanager
async def open_gateway(settings: Settings) -> AsyncGenerator[GatewayRuntime]:
    async with AsyncExitStack() as stack:
        database = Database(settings)
        await database.open(migrations=all_migration_sets())
        stack.push_async_callback(database.close)
        store = await open_store(settings, database)
        stack.push_async_callback(store.close)
        instance_key = Home(settings.home).instance_key(create=True)

        keys = ApiKeyStore(database.pool, instance_key, publisher=store)
        authenticator = ApiKeyAuthenticator(keys, store=store, cache_ttl=settings.api_key_cache_ttl)
        await authenticator.start()
        stack.push_async_callback(authenticator.aclose)

        policy = await create_policy_engine(settings)
        stack.push_async_callback(policy.close)
        # Buckets are in-process unless Redis shares them across replicas.
        limiter = RateLimiter(
            per_principal=RateLimit.or_none(settings.rate_limit_per_second, settings.rate_limit_burst),
            per_tool=RateLimit.or_none(settings.rate_limit_tool_per_second, settings.rate_limit_tool_burst),
            store=store if settings.redis_url else None,
        )
        audit = PostgresAuditWriter(database.pool, durability=settings.audit_durability)
        stack.push_async_callback(audit.close)

        specs = upstream_specs(settings, instance_key)
        upstreams = UpstreamManager(specs, backoff_max=settings.restart_backoff_max)
        gateway = Gateway(
            upstreams=upstreams,
            policy=policy,
            limiter=limiter,
            audit=audit,
            instance_key=instance_key,
            refusal_window=settings.audit_refusal_window,
        )
        # (Callbacks run last first: what the refusals counted is written before the writer closes.)
        stack.push_async_callback(gateway.refusals.close)

        configs = view_configs(settings, set(specs))
        tables = {
            name: NameTable(prefix=config.prefixed, upstreams=specs) for name, config in configs.items()
        }
        views: dict[str, ViewRuntime] = {}
        for name, config in configs.items():
            view = build_view(config, {}, tables[name])
            server = GatewayMCPServer(gateway, name, lambda v=view: v.instructions)
            manager = SessionManager(
                server.server,
                events=MemoryEventStore(missed=server.missed),  # what a resumed stream is told first
                retry_interval=1000,
                session_idle_timeout=settings.session_idle_timeout,
            )
            await stack.enter_async_context(manager.run())
            server.notify_session = manager.notify
            views[name] = ViewRuntime(view, server, manager, modern_view=view)

        async def rebuild(upstream: str, what: str) -> None:
            if what.startswith(RESOURCE_UPDATED):
                for runtime in views.values():
                    await runtime.server.notify_resource_updated(what[len(RESOURCE_UPDATED) :])
                return
            # One view per era: a dual-era upstream may offer 2026-07-28 clients other things.
            # The name table is shared, so a tool keeps its exposed name in both.
            catalogs = upstreams.catalogs()
            modern_catalogs = upstreams.catalogs(modern=True)
            for name, runtime in views.items():
                before = (runtime.view, runtime.modern_view)
                runtime.view = build_view(runtime.view.config, catalogs, tables[name])
                runtime.modern_view = build_view(runtime.view.config, modern_catalogs, tables[name])
                runtime.server.view = runtime.view
                runtime.server.modern_view = runtime.modern_view
                runtime.server.server.instructions = runtime.view.instructions
                # Clients hear of a list only when what this endpoint lists changed: not of
                # another endpoint's upstream, nor of a restart that brought the same catalog.
                changed = [
                    kind
                    for kind in ("tools", "prompts", "resources")
                    if any(
                        _listed(old, kind) != _listed(new, kind)
                        for old, new in zip(before, (runtime.view, runtime.modern_view), strict=True)
                    )
                ]
                if changed:
                    await runtime.server.lists_changed()

        upstreams.add_listener(rebuild)
        # Handshake-era sessions in the store: any replica (or a restarted gateway) continues them.
        records = SessionRecords(store, settings.session_idle_timeout)
        for runtime in views.values():
            runtime.server.share = records.change  # what a session sets up reaches every replica
        endpoint = MCPEndpoint(
            gateway,
            views,
            authenticator,
            allowed_origins=tuple(settings.allowed_origins),
            allowed_hosts=tuple(settings.allowed_hosts),
            listen_host=settings.host,
            session_idle=settings.session_idle_timeout,
            records=records,
        )
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        # Upstreams connect in the background: /healthz answers at once, /readyz shows
        # each upstream's state, and clients hear `list_changed` as catalogs arrive.
        await upstreams.start(tg, wait=0)
        await rebuild("", "catalog")
        tg.start_soon(_follow_policy, policy, views)
        tg.start_soon(records.keep_alive, endpoint.sessions.used_since)
        tg.start_soon(records.follow_ends, endpoint.session_ended)
        tg.start_soon(records.follow_changes, endpoint.session_changed)
        yield GatewayRuntime(
            settings=settings,
            database=database,
            store=store,
            policy=policy,
            audit=audit,
            gateway=gateway,
            upstreams=upstreams,
            endpoint=endpoint,
            views=views,
        )


POLICY_FOLLOW_INTERVAL = 0.5  # seconds between looks at the policy's revision


async def _follow_policy(policy: PolicyEngine, views: Mapping[str, ViewRuntime]) -> None:
    """A reloaded policy may show callers other tools and prompts: tell those it does."""
    seen = policy.revision
    while True:
        await anyio.sleep(POLICY_FOLLOW_INTERVAL)
        if policy.revision == seen:
            continue
        seen = policy.revision
        for runtime in views.values():
            try:
                await runtime.server.lists_changed()
            except Exception:
                logger.exception("could not tell clients of the policy's new lists")


def readiness(runtime: GatewayRuntime) -> dict[str, Any]:
    """Upstream and policy state for /readyz and `bastion status`."""
    status = runtime.policy.status()
    return {
        "upstreams": runtime.upstreams.describe(),
        "policy": {"ok": status.ok, "error": status.error},
    }
