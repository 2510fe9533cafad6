"""`bastion serve` freezes what a server's start created, so full collections stop walking it.

The CLI serves with `freeze_startup_objects=True`: once the runtime is open,
`bastion.startup_objects.freeze` runs (tests/bastion/test_startup_objects.py says what it
does). `serve` without the flag leaves the collector alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

import httpx
import pytest

from bastion.mcp import serve
from bastion.mcp.serve import HEALTH_PATH, bind_socket
from bastion.settings import Settings
from servers.system.server import spec


async def _frozen_while_serving(settings: Settings, freeze: bool) -> int:
    """Objects frozen while the system server serves HTTP."""
    with bind_socket("127.0.0.1", 0) as probe:
        port = probe.getsockname()[1]
    running = asyncio.ensure_future(
        serve(spec, settings, "http", "127.0.0.1", port, freeze_startup_objects=freeze)
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):  # bounded: 30 s for the runtime to open
                assert not running.done(), running.exception()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://127.0.0.1:{port}{HEALTH_PATH}")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the server did not answer /healthz within 30 s")
        return gc.get_freeze_count()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


@pytest.mark.parametrize("freeze", [True, False])
async def test_serve_freezes_its_start_only_when_told(
    settings: Settings, unfrozen: None, freeze: bool
) -> None:
    assert (await _frozen_while_serving(settings, freeze) > 0) == freeze
