"""Requests the policy tests decide."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from gateway.policy import Context, PolicyInput, Principal, Resource

MINUTE = "2026-05-01T10:00:00Z"


def call(role: str, upstream: str, tool: str, minute: str = MINUTE, **arguments: Any) -> PolicyInput:
    return PolicyInput(
        Principal("alice", "acme", (role,)),
        "tools/call",
        Resource(upstream=upstream, tool=tool, arguments=arguments),
        Context(minute, "127.0.0.1"),
    )


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait, bounded, for a background task (a watcher, a server) to make `predicate` true."""
    with anyio.fail_after(10):
        while True:
            if predicate():
                return
            await anyio.sleep(0.02)
