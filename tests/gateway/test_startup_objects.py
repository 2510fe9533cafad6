"""A gateway process freezes what its start created, so full collections stop walking it.

`bastion gateway` builds the application with `freeze_startup_objects=True`: once the
lifespan has opened everything, `bastion.startup_objects.freeze` runs
(tests/bastion/test_startup_objects.py says what it does). The application built without
the flag (in a process that also runs other things) leaves the collector alone.
"""

from __future__ import annotations

import asyncio
import gc

import pytest
from starlette.types import Message, Scope

from bastion.settings import Settings
from gateway import create_app


async def _frozen_once_started(settings: Settings, freeze: bool) -> int:
    """Objects frozen once the application has started, as an ASGI server starts it (the
    lifespan protocol), in this test's own event loop."""
    app = create_app(settings.model_copy(update={"builtin_servers": []}), freeze_startup_objects=freeze)
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    running = asyncio.ensure_future(app(scope, to_app.get, from_app.put))
    await to_app.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(from_app.get(), 60))["type"] == "lifespan.startup.complete"
    frozen = gc.get_freeze_count()
    await to_app.put({"type": "lifespan.shutdown"})
    assert (await asyncio.wait_for(from_app.get(), 60))["type"] == "lifespan.shutdown.complete"
    await running
    return frozen


@pytest.mark.parametrize("freeze", [True, False])
async def test_the_gateway_freezes_its_start_only_when_told(
    settings: Settings, unfrozen: None, freeze: bool
) -> None:
    assert (await _frozen_once_started(settings, freeze) > 0) == freeze
