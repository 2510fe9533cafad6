"""PostgreSQL LISTEN/NOTIFY fan-out: one dedicated connection per store.

A single reader task owns the connection. psycopg holds the connection's lock for as
long as `notifies()` runs, so the reader leaves it after every batch (`stop_after=1`
returns once a whole batch is yielded) to apply pending LISTEN/UNLISTEN changes. A
subscriber that needs a new LISTEN records it, wakes the reader with a NOTIFY on the
store's private control channel, and waits until the reader confirms: from then on
the server delivers the channel's notifications to us, which is what "ready" means.
Notifications that arrive while LISTEN runs are kept by psycopg and read next.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from bastion.errors import StoreError
from bastion.stores.base import Subscription

__all__ = ["Listener"]

logger = logging.getLogger(__name__)

_READY_TIMEOUT = 10.0

FetchSpilled = Callable[[int], Awaitable[bytes | None]]
Notify = Callable[[str, str], Awaitable[None]]


class Listener:
    """LISTEN connection, reader task and local subscribers of one `PostgresStore`."""

    def __init__(self, dsn: str, *, notify: Notify, fetch_spilled: FetchSpilled) -> None:
        self._dsn = dsn
        self._notify = notify
        self._fetch_spilled = fetch_spilled
        self._control = f"bastion_ctl_{uuid.uuid4().hex}"
        self._conn: AsyncConnection[Any] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        self._local: dict[str, set[Subscription]] = {}
        self._listening: set[str] = set()
        self._dirty: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    @staticmethod
    def channel_name(channel: str) -> str:
        """A fixed-length identifier: NOTIFY names are truncated at 63 bytes."""
        return "bastion_" + hashlib.sha256(channel.encode()).hexdigest()[:40]

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncGenerator[Subscription]:
        name = self.channel_name(channel)
        subscription = Subscription(channel)
        self._local.setdefault(name, set()).add(subscription)
        try:
            await self._start()
            await self._sync(name, wait=True)
            yield subscription
        finally:
            subscription.end()
            subscribers = self._local.get(name)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._local[name]
                    with contextlib.suppress(StoreError):
                        await self._sync(name, wait=False)

    async def _start(self) -> None:
        async with self._start_lock:
            if self._reader is not None and not self._reader.done():
                return
            if self._conn is not None:
                await self._conn.close()
            try:
                conn = await AsyncConnection.connect(self._dsn, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"cannot open the PostgreSQL LISTEN connection: {exc}") from exc
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._control)))
            self._conn, self._listening = conn, set()
            self._dirty.update(self._local)
            self._reader = asyncio.create_task(self._run(conn), name="bastion-store-listener")

    async def _sync(self, name: str, *, wait: bool) -> None:
        """Ask the reader to LISTEN or UNLISTEN `name` to match the local subscribers."""
        future: asyncio.Future[None] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
            self._waiters.setdefault(name, []).append(future)
        self._dirty.add(name)
        # The wake-up goes through the store's pool: the reader holds its connection.
        await self._notify(self._control, "")
        if future is not None:
            try:
                await asyncio.wait_for(future, _READY_TIMEOUT)
            except TimeoutError:
                raise StoreError(f"PostgreSQL did not confirm LISTEN within {_READY_TIMEOUT:.0f} s") from None

    async def _run(self, conn: AsyncConnection[Any]) -> None:
        try:
            while True:
                await self._apply(conn)
                async with contextlib.aclosing(conn.notifies(stop_after=1)) as batch:
                    async for notify in batch:
                        if notify.channel != self._control:
                            await self._dispatch(notify.channel, notify.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("PostgreSQL LISTEN connection lost: %s", exc)
            self._fail(StoreError(f"PostgreSQL LISTEN connection lost: {exc}"))

    async def _apply(self, conn: AsyncConnection[Any]) -> None:
        while self._dirty:
            name = self._dirty.pop()
            wanted = bool(self._local.get(name))
            if wanted and name not in self._listening:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                self._listening.add(name)
            elif not wanted and name in self._listening:
                await conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(name)))
                self._listening.discard(name)
            for future in self._waiters.pop(name, []):
                if not future.done():
                    future.set_result(None)

    async def _dispatch(self, name: str, payload: str) -> None:
        subscribers = self._local.get(name)
        if not subscribers:
            return
        if payload.startswith("r"):
            message = await self._fetch_spilled(int(payload[1:]))
            if message is None:
                logger.warning("spilled message %s was swept before it was read; dropped", payload[1:])
                return
        else:
            message = base64.b64decode(payload[1:])
        for subscription in tuple(subscribers):
            subscription.deliver(message)

    def _fail(self, error: StoreError) -> None:
        for subscribers in self._local.values():
            for subscription in subscribers:
                subscription.end(error)
        for futures in self._waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(error)
        self._waiters.clear()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        for subscribers in self._local.values():
            for subscription in subscribers:
                subscription.end()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
