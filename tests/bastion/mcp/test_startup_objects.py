"""`bastion serve` freezes what a server's start created, so full collections stop walking it.

The CLI serves with `freeze_startup_objects=True`: once the runtime is open, the objects
alive (modules, settings, the SDK's types; about 100,000 for a built-in server) move to
the collector's permanent generation. `serve` without the flag leaves the collector alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc

import httpx

from bastion.mcp import serve
from bastion.mcp.serve import HEALTH_PATH, bind_socket
from bastion.settings import Settings
from servers.system.server import spec


async def _serving(settings: Settings, freeze: bool) -> tuple[int, int]:
    """(objects the collector walks, objects frozen) while the system server serves HTTP."""
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
        return len(gc.get_objects()), gc.get_freeze_count()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_a_served_server_freezes_what_its_start_created(settings: Settings, unfrozen: None) -> None:
    walked, frozen = await _serving(settings, freeze=True)
    assert frozen > 10_000  # the imports alone
    assert walked < frozen / 4


async def test_without_the_flag_the_collector_is_left_alone(settings: Settings, unfrozen: None) -> None:
    walked, frozen = await _serving(settings, freeze=False)
    assert frozen == 0
    assert walked > 10_000
