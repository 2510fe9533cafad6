"""A `ServerRuntime` that does no I/O: for tests that build a server and list or call tools
whose work never opens the database pool."""

from __future__ import annotations

import secrets
from pathlib import Path

from bastion.db.database import Database
from bastion.mcp import ServerRuntime, ServerSpec
from bastion.mcp.runtime import Transport
from bastion.settings import Settings
from bastion.stores.memory import MemoryStore


def offline_runtime(
    spec: ServerSpec, home: Path, transport: Transport = "stdio", key: bytes | None = None
) -> ServerRuntime:
    settings = Settings(home=home, database_url=None, redis_url=None, opa_url=None)
    return ServerRuntime(
        spec=spec,
        settings=settings,
        database=Database(settings),  # never opened
        store=MemoryStore(),
        instance_key=key if key is not None else secrets.token_bytes(32),
        transport=transport,
    )
