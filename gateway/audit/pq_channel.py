"""`PqChannel`: statements on a connection it owns, straight through libpq.

The audit writer sends one statement per batch and nothing else on its connection.
Through psycopg's async `execute`, that round trip cost 115-140 µs of the gateway's CPU
here (query conversion, a dumper per parameter, prepared-statement bookkeeping, and an
`add_reader`/`remove_reader` pair per wait, each an `epoll_ctl`); the same statement
through libpq (psycopg's `pq` module) with text parameters, a server-side prepared
statement and the socket watched once for the channel's life took 65-75 µs. Nothing
else may use the connection while a channel is open on it: `close` the channel first.

`send_prepared` starts a statement already prepared on the channel without waiting:
its answer reaches a callback from the socket's own reader, so a caller that needs no
coroutine of its own (the audit writer, when idle) saves the event-loop steps a task
would take to send and to be woken.

A failed statement raises `psycopg.DatabaseError` with the server's message; a broken
connection raises `psycopg.OperationalError`, and the channel is then unusable.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, pq

__all__ = ["PqChannel"]

# Prepared statements kept per channel (one per batch size seen); larger sets run unprepared.
MAX_PREPARED = 64
_NAMES = itertools.count()  # statement names never repeat in this process


class PqChannel:
    """One statement at a time on `conn`'s libpq connection; create it inside the running loop."""

    def __init__(self, conn: AsyncConnection[Any]) -> None:
        self._conn = conn
        self._pg = conn.pgconn
        self._loop = asyncio.get_running_loop()
        self._fd = self._pg.socket
        self._encoding = conn.info.encoding
        self._results: list[pq.abc.PGresult] = []
        self._answered: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._on_answer: Callable[[BaseException | None], None] | None = None  # see send_prepared
        self._prepared: dict[bytes, bytes] = {}  # statement -> its server-side name
        self._broken: BaseException | None = None
        self._closed = False
        self._loop.add_reader(self._fd, self._on_readable)

    async def aclose(self) -> None:
        """Drop this channel's prepared statements (when it still can), then `close`."""
        if not self._closed and self._broken is None and not self.busy and self._prepared:
            drop = b"; ".join(b"DEALLOCATE " + name for name in self._prepared.values())
            self._prepared.clear()
            # Failing here is harmless: the connection's owner resets or closes it anyway.
            with contextlib.suppress(psycopg.Error):
                await self._round_trip(lambda: self._pg.send_query(drop))
        self.close()

    def close(self) -> None:
        """Stop watching the socket; the connection is psycopg's again."""
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)

    async def execute(self, statement: bytes, params: Sequence[bytes | None]) -> None:
        """Run `statement` with text parameters; return once the server has answered."""
        if self._closed:
            raise psycopg.InterfaceError("the channel is closed")
        if self._broken is not None:
            raise self._broken
        if self.busy:
            raise psycopg.InterfaceError("a statement is already running on this channel")
        name = self._prepared.get(statement)
        if name is None and len(self._prepared) < MAX_PREPARED:
            name = f"bastion_pq_{next(_NAMES)}".encode()
            await self._round_trip(lambda: self._pg.send_prepare(name, statement))
            self._prepared[statement] = name
        if name is None:
            await self._round_trip(lambda: self._pg.send_query_params(statement, params))
        else:
            await self._round_trip(lambda: self._pg.send_query_prepared(name, params))

    def send_prepared(
        self,
        statement: bytes,
        params: Sequence[bytes | None],
        on_answer: Callable[[BaseException | None], None],
    ) -> bool:
        """Start `statement`, which `execute` has prepared on this channel before, and return.

        `on_answer(error)` is called from the socket's reader once the server has answered
        (`error` None), or with the error (`psycopg.DatabaseError` for a failed statement,
        `psycopg.OperationalError` once the channel broke). False, and nothing sent: the
        statement is not prepared here, or the channel is busy, broken or closed.
        """
        name = self._prepared.get(statement)
        if name is None or not self.ready(statement):
            return False
        self._on_answer, self._results = on_answer, []
        try:
            self._pg.send_query_prepared(name, params)
            if self._pg.flush():  # 1: part of the request is still to be sent
                self._loop.add_writer(self._fd, self._on_writable)
        except psycopg.Error as exc:
            self._break(exc)  # tells on_answer
        return True

    def ready(self, statement: bytes) -> bool:
        """`send_prepared(statement, ...)` would send now: prepared here, and the channel idle."""
        return statement in self._prepared and not self._closed and self._broken is None and not self.busy

    def abandon(self, reason: str) -> None:
        """Give up on the statement running (no answer came): the channel is broken."""
        self._break(psycopg.OperationalError(reason))

    @property
    def busy(self) -> bool:
        """A statement is running on this channel."""
        return self._answered is not None or self._on_answer is not None

    async def _round_trip(self, send: Any) -> None:
        answered = self._loop.create_future()
        self._answered, self._results = answered, []
        try:
            send()
            while self._pg.flush():  # 1: part of the request is still to be sent
                self._writable = self._loop.create_future()
                self._loop.add_writer(self._fd, self._on_writable)
                await self._writable
            await answered
        except BaseException as exc:
            # Cancelled or broken halfway: the answer that may still come has no reader.
            self._break(exc)
            raise
        finally:
            self._answered = self._writable = None
        error = self._error()
        if error is not None:
            raise error

    def _error(self) -> psycopg.DatabaseError | None:
        failed = [r for r in self._results if r.status not in _OK]
        if not failed:
            return None
        message = failed[0].error_message.decode(self._encoding, "replace").strip()
        return psycopg.DatabaseError(message or "the statement failed")

    def _on_writable(self) -> None:
        if self._on_answer is not None:  # send_prepared's request: send the rest from here
            try:
                if self._pg.flush():
                    return  # still more: called again when the socket takes it
            except psycopg.Error as exc:
                self._break(exc)
                return
        self._loop.remove_writer(self._fd)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _on_readable(self) -> None:
        pg = self._pg
        try:
            pg.consume_input()
            while not pg.is_busy():
                result = pg.get_result()
                if result is None:
                    if self._answered is not None and not self._answered.done():
                        self._answered.set_result(None)
                    elif (on_answer := self._on_answer) is not None:
                        self._on_answer = None
                        on_answer(self._error())
                    return
                self._results.append(result)
        except psycopg.Error as exc:
            self._break(exc)

    def _break(self, exc: BaseException) -> None:
        """The connection can no longer be trusted: stop watching it, fail whoever waits."""
        if self._broken is None:
            self._broken = (
                exc if isinstance(exc, psycopg.Error) else psycopg.OperationalError("statement interrupted")
            )
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        for waiter in (self._answered, self._writable):
            if waiter is not None and not waiter.done():
                waiter.set_exception(self._broken)
        on_answer, self._on_answer = self._on_answer, None
        if on_answer is not None:
            on_answer(self._broken)

    @property
    def broken(self) -> bool:
        """The connection broke or was left mid-statement: close it, never reuse it."""
        return self._broken is not None


_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
