"""A gateway process freezes what its start created, so full collections stop walking it.

`bastion gateway` builds the application with `freeze_startup_objects=True`: once the
lifespan has opened everything, the objects alive (modules, settings, policy, the SDK's
types) move to the collector's permanent generation. The application built without the
flag (in a process that also runs other things) leaves the collector alone.
"""

from __future__ import annotations

import asyncio
import gc

from starlette.types import Message, Scope

from bastion.settings import Settings
from gateway import create_app


async def _started(settings: Settings, freeze: bool) -> tuple[int, int]:
    """(objects the collector walks, objects frozen) once the application has started, as
    an ASGI server starts it (the lifespan protocol), in this test's own event loop."""
    app = create_app(settings.model_copy(update={"builtin_servers": []}), freeze_startup_objects=freeze)
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    running = asyncio.ensure_future(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(from_app.get(), 60))["type"] == "lifespan.startup.complete"
    counts = len(gc.get_objects()), gc.get_freeze_count()
    await to_app.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(from_app.get(), 60))["type"] == "lifespan.shutdown.complete"
    await running
    return counts


async def test_a_gateway_process_freezes_what_its_start_created(settings: Settings, unfrozen: None) -> None:
    walked, frozen = await _started(settings, freeze=True)
    assert frozen > 10_000  # the imports alone
    assert walked < frozen / 4


async def test_without_the_flag_the_collector_is_left_alone(settings: Settings, unfrozen: None) -> None:
    walked, frozen = await _started(settings, freeze=False)
    assert frozen == 0
    assert walked > 10_000
