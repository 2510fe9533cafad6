"""Which upstreams the gateway runs: the built-in servers and the configured ones."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bastion.caller import META_KEY, CallerContext, sign_caller
from bastion.components import BUILTIN_SERVERS
from bastion.errors import ConfigError
from bastion.net import is_loopback
from bastion.settings import LOCAL_MAX_CONCURRENCY, CallLimitConfig, ServerConfig, Settings
from gateway.upstreams.connection import UpstreamSpec, default_stdio_env

__all__ = ["GATEWAY_SUBJECT", "upstream_specs"]

GATEWAY_SUBJECT = "bastion-gateway"


def _gateway_lister(instance_key: bytes) -> Any:
    def meta() -> Mapping[str, Any]:
        context = CallerContext.expiring(subject=GATEWAY_SUBJECT, tenant="system", roles=("admin",), ttl=60)
        return {META_KEY: sign_caller(context, instance_key)}

    return meta


def upstream_specs(settings: Settings, instance_key: bytes) -> dict[str, UpstreamSpec]:
    """Built-in servers first (stdio children unless configured over HTTP), then external ones."""
    builtin = settings.builtin_servers if settings.builtin_servers is not None else sorted(BUILTIN_SERVERS)
    unknown = [name for name in builtin if name not in BUILTIN_SERVERS]
    if unknown:
        raise ConfigError(
            f"builtin_servers names {unknown}, which are not built-in servers; "
            f"known: {sorted(BUILTIN_SERVERS)}"
        )
    lister = _gateway_lister(instance_key)
    specs: dict[str, UpstreamSpec] = {}
    for name in builtin:
        server = settings.servers.get(name) or ServerConfig()  # no table: the defaults
        if server.transport == "http":
            if not server.port:
                raise ConfigError(
                    f"servers.{name}: an HTTP server behind the gateway needs its port; set "
                    f"servers.{name}.port, or start everything with `bastion up`, which picks a free "
                    "port for `port = 0` and tells the gateway"
                )
            url = f"http://{server.host}:{server.port}/mcp"
            specs[name] = UpstreamSpec(
                name,
                "http",
                url=url,
                builtin=True,
                list_meta=lister,
                **_call_limits(server, local=is_loopback(server.host)),
            )
            continue
        env = default_stdio_env()
        env.update({"BASTION_REQUIRE_CALLER_CONTEXT": "true", "BASTION_LOG_FORMAT": "json"})
        specs[name] = UpstreamSpec(
            name,
            "stdio",
            command=sys.executable,
            args=("-m", "bastion.cli", "serve", name, "--transport", "stdio"),
            env=env,
            builtin=True,
            list_meta=lister,
            **_call_limits(server, local=True),
        )
    for name, config in settings.upstreams.items():
        if name in specs:
            raise ConfigError(f"upstreams.{name}: the name is taken by a built-in server; choose another")
        specs[name] = UpstreamSpec(
            name,
            config.transport,
            command=config.command,
            args=tuple(config.args),
            env=config.env,
            cwd=config.cwd,
            url=config.url,
            headers={k: v.get_secret_value() for k, v in config.headers.items()},
            dual_era=config.dual_era,
            **_call_limits(config, local=config.transport == "stdio" or _loopback_url(config.url)),
        )
    return specs


def _call_limits(config: CallLimitConfig, *, local: bool) -> dict[str, Any]:
    """`max_concurrency`, `slow_call` and `timeout` for a spec: settings first, then the
    concurrency default by place.

    A server on this machine shares its cores with the gateway: a few calls at a time keep
    them busy (docs/benchmarks/gateway.md). A remote one's capacity is not the gateway's to guess.
    """
    limit = config.max_concurrency
    if limit is None:
        limit = LOCAL_MAX_CONCURRENCY if local else 0
    return {
        "max_concurrency": limit or None,
        "slow_call": None if config.strict_concurrency else config.slow_call_ms / 1000,
        "timeout": config.call_timeout,
    }


def _loopback_url(url: str | None) -> bool:
    return url is not None and is_loopback(urlsplit(url).hostname)
