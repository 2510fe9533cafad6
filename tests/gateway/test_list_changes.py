"""A list change that lands while a caller's list is being taken is still announced.

Taking a list awaits policy decisions; a catalog change or a policy reload can land in
between. These tests hold the listing open at that point (the one stand-in here is the
gateway's policy filter, so the moment can be chosen) and check that the watcher is
told once its request is done, for a 2026-07-28 listen stream just opening and for a
2025-11-25 session's `tools/list`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.auth import Principal
from gateway.calls import CallContext
from gateway.catalog import Entry, View, ViewConfig
from gateway.list_changes import Kind, ListChanges, listing_of

ADMIN = Principal(subject="ada", tenant="default", roles=("admin",), scopes=(), auth_method="api_key")


def _view(*tools: str) -> View:
    entries = {
        name: Entry(name, "up", name, {"name": name, "inputSchema": {"type": "object"}}) for name in tools
    }
    return View(ViewConfig(""), tools=entries)


class HeldPolicy:
    """The gateway's `allowed_tools`, which can be held mid-listing until released."""

    def __init__(self) -> None:
        self.hold = False
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def allowed_tools(self, call: CallContext) -> list[dict[str, Any]]:
        tools = [entry.definition for entry in call.view.tools.values()]  # the view as the call began
        if self.hold:
            self.hold = False
            self.reached.set()
            await self.release.wait()
        return tools


class Endpoint:
    """What `ListChanges` sees of an endpoint: its views in force, swapped by a rebuild."""

    def __init__(self, view: View) -> None:
        self.view = view

    def views(self) -> tuple[View | None, View | None]:
        return self.view, self.view


async def _settle(changes: ListChanges) -> None:
    for _ in range(20):  # rechecks run as tasks of their own
        await asyncio.sleep(0)
    pending = list(changes._rechecks)  # pyright: ignore[reportPrivateUsage]
    if pending:
        await asyncio.wait_for(asyncio.gather(*pending), 5)


def _changes(policy: HeldPolicy, endpoint: Endpoint) -> ListChanges:
    return ListChanges(policy, endpoint.views)  # type: ignore[arg-type]  # the policy filter alone


async def test_a_change_while_a_listen_stream_opens_is_told_on_its_stream() -> None:
    policy, endpoint = HeldPolicy(), Endpoint(_view("up_a"))
    changes = _changes(policy, endpoint)
    subscribed = False
    told: list[Kind] = []

    async def tell(kind: Kind) -> None:
        if subscribed:  # before the stream subscribes, an event reaches nobody
            told.append(kind)

    async def open_stream() -> None:  # as the gateway's listen handler does
        nonlocal subscribed
        await changes.take("stream", ["tools"])
        subscribed = True  # the SDK's handler subscribes before it first waits

    call = CallContext(principal=ADMIN, view=endpoint.view, modern=True)
    changes.watch("stream", call, tell)
    policy.hold = True
    opening = asyncio.create_task(open_stream())
    await asyncio.wait_for(policy.reached.wait(), 5)
    endpoint.view = _view("up_a", "up_b")  # a tool appears while the stream's list is taken
    await changes.changed(endpoint.view, endpoint.view)
    policy.release.set()
    await asyncio.wait_for(opening, 5)
    await _settle(changes)
    assert told == ["tools"]
    # Told once: the list it now holds is the one in force, so nothing more follows.
    await changes.changed(endpoint.view, endpoint.view)
    await _settle(changes)
    assert told == ["tools"]


def _session() -> tuple[HeldPolicy, Endpoint, ListChanges, list[Kind], CallContext]:
    """A 2025-11-25 session watching its lists; `told` collects what it is told of."""
    policy, endpoint = HeldPolicy(), Endpoint(_view("up_a"))
    changes = _changes(policy, endpoint)
    told: list[Kind] = []

    async def tell(kind: Kind) -> None:
        told.append(kind)

    call = CallContext(principal=ADMIN, view=endpoint.view)
    changes.watch("session", call, tell)
    return policy, endpoint, changes, told, call


async def test_a_change_while_a_session_lists_its_tools_is_told_to_the_session() -> None:
    policy, endpoint, changes, told, call = _session()
    since = changes.generation
    policy.hold = True
    listing = asyncio.create_task(policy.allowed_tools(call))
    await asyncio.wait_for(policy.reached.wait(), 5)
    endpoint.view = _view("up_b")  # the session's tool went away while its list was taken
    await changes.changed(endpoint.view, endpoint.view)
    assert told == []  # it had not been shown a list yet
    policy.release.set()
    changes.shown("session", "tools", listing_of(await listing), call, since)
    await _settle(changes)
    assert told == ["tools"]


async def test_a_list_taken_with_no_change_meanwhile_is_not_taken_again() -> None:
    policy, _, changes, told, call = _session()
    since = changes.generation
    changes.shown("session", "tools", listing_of(await policy.allowed_tools(call)), call, since)
    await changes.take("session", ["tools"])
    assert not changes._rechecks  # pyright: ignore[reportPrivateUsage]
    await _settle(changes)
    assert told == []
