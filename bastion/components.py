"""What an instance is made of: the kernel's migrations and the built-in servers.

Built-in servers are named here by import path, so the kernel never imports a
server package until one is asked for by name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bastion.db.migrations import MigrationSet
from bastion.errors import ConfigError

if TYPE_CHECKING:
    from bastion.mcp import ServerSpec

__all__ = ["BUILTIN_SERVERS", "all_migration_sets", "kernel_migrations", "load_server"]

# name -> "module:attribute" of the server's ServerSpec.
BUILTIN_SERVERS: dict[str, str] = {
    "system": "servers.system.server:spec",
    "retrieval": "servers.retrieval.server:spec",
    "analytics": "servers.analytics.server:spec",
    "forecast": "servers.forecast.server:spec",
    "anomaly": "servers.anomaly.server:spec",
}


def kernel_migrations() -> MigrationSet:
    from bastion.stores.postgres import MIGRATIONS as STORE_MIGRATIONS

    return MigrationSet("kernel", "bastion", STORE_MIGRATIONS)


def load_server(name: str) -> ServerSpec:
    """The declaration of a built-in server, by name."""
    target = BUILTIN_SERVERS.get(name)
    if target is None:
        known = ", ".join(sorted(BUILTIN_SERVERS))
        raise ConfigError(f"no built-in server named {name!r}. Known servers: {known}.")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def all_migration_sets() -> list[MigrationSet]:
    """Kernel, gateway, then every built-in server that owns a schema, in a stable order."""
    from gateway.migrations import MIGRATIONS as GATEWAY_MIGRATIONS

    sets = [kernel_migrations(), GATEWAY_MIGRATIONS]
    for name in sorted(BUILTIN_SERVERS):
        spec = load_server(name)
        if spec.migrations is not None:
            sets.append(spec.migrations)
    return sets
