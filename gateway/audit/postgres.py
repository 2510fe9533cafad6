"""`PostgresAuditWriter`: audit events in `gateway.audit_events`, group-committed.

Every commit waits for the WAL to reach disk, so one commit per event would cap the
gateway at the disk's flush rate. Instead, `write` queues its event and awaits a
future; everything queued (up to `max_batch` events) goes in one multi-row INSERT, one
transaction, and every future of the batch is resolved when it commits. While a commit
is in flight the next batch gathers, so batches grow with load and a lone caller pays
one commit and no wait. When nothing is in flight, `write` sends its batch itself and
the connection's reader resolves it (no task in between: each task hop was an
event-loop step on the path of every call); connecting, preparing a new batch size,
recovering from a failure and `linger` (which holds a batch open a little longer to
gather more) are a background task's work.

Durability (`durability`):

- `"flush"` (default): `synchronous_commit = on`; `write` returns once the batch's
  WAL is flushed to disk. Nothing acknowledged is lost, whatever crashes.
- `"commit"`: `synchronous_commit = off` for these transactions only; `write` returns
  once PostgreSQL has committed in memory. A gateway crash loses nothing; a
  PostgreSQL or OS crash may lose the last moments of events (up to three times
  `wal_writer_delay`, 600 ms by default).

If a batch fails, every waiter of that batch gets an `AuditWriteError` (the gateway
fails those calls closed) and the next batch tries again on a fresh connection. A
batch that the server has not committed within `WRITE_TIMEOUT` fails the same way (the
server aborts it, so it never commits later). Field contents never fail a batch: a NUL
is stored as U+2400 and a lone surrogate as U+FFFD.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Literal

import orjson
import psycopg
from prometheus_client import Counter, Histogram
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from bastion.metrics import REGISTRY
from gateway.audit.events import AuditEvent
from gateway.audit.pq_channel import PqChannel
from gateway.audit.writer import AuditWriteError, AuditWriter

__all__ = ["AUDIT_BATCH_SIZE", "AUDIT_WRITE_SECONDS", "AuditDurability", "PostgresAuditWriter"]

logger = logging.getLogger(__name__)

AuditDurability = Literal["flush", "commit"]

AUDIT_WRITE_SECONDS = Histogram(
    "bastion_audit_write_seconds",
    "Time from queueing an audit event to its commit",
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.012, 0.02, 0.05, 0.1, 0.25, 1),
)
AUDIT_BATCH_SIZE = Histogram(
    "bastion_audit_batch_size",
    "Audit events committed together in one transaction",
    registry=REGISTRY,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
AUDIT_WRITE_FAILURES = Counter(
    "bastion_audit_write_failures",
    "Audit events that could not be written (their calls failed closed)",
    registry=REGISTRY,
)

_COLUMNS = (
    "time, subject, tenant, roles, auth_method, key_id, action, upstream, tool, argument_digest, "
    "decision, reasons, latency_ms, outcome, request_id, client_address"
)
_FIELDS = 16
# Max parameters per statement is 65535; 16 per row.
MAX_BATCH_LIMIT = 4000
# Seconds a batch may take (the INSERT and its commit) before it fails closed. The server
# enforces it (`statement_timeout`), so a batch that failed never commits later; the
# gateway waits a little longer for a server that does not answer at all.
WRITE_TIMEOUT = 10.0
_UNANSWERED_GRACE = 2.0
NUL_SYMBOL = "\u2400"  # how a NUL in an audited field is stored
_SURROGATE = re.compile("[\ud800-\udfff]")


# Every column's type, so that the text parameters need no inference (multi-row VALUES).
_TYPES = (
    "timestamptz", "text", "text", "text[]", "text", "text", "text", "text", "text", "text", "text",
    "jsonb", "float8", "text", "text", "text",
)  # fmt: skip


def _row(index: int) -> str:
    """Row `index`'s placeholders, numbered as PostgreSQL's own ($1, $2, ...)."""
    first = index * _FIELDS + 1
    return "(" + ", ".join(f"${first + i}::{kind}" for i, kind in enumerate(_TYPES)) + ")"


_Pending = tuple[AuditEvent, "asyncio.Future[None]"]


def _storable(value: str) -> str:
    """`value` as PostgreSQL can store it: a NUL (which libpq would end a text parameter at,
    and jsonb refuses) becomes U+2400 SYMBOL FOR NULL, and a lone surrogate (not UTF-8)
    U+FFFD. A client chooses names and reasons quote its arguments: none of that may keep
    its own event, or the others committed with it, out of the table."""
    return _SURROGATE.sub("\ufffd", value.replace("\x00", NUL_SYMBOL))


def _text(value: str | None) -> bytes | None:
    if value is None:
        return None
    # (`in` on the str: `bytes in bytes` first tries the operand as an int and raises and
    # clears a TypeError inside CPython 3.11, which cost 2.7% of the gateway's instructions.)
    try:
        if "\x00" not in value:
            return value.encode()
    except UnicodeEncodeError:
        pass
    return _storable(value).encode()


def _reasons(reasons: tuple[str, ...]) -> bytes:
    try:
        if not any("\x00" in reason for reason in reasons):
            return orjson.dumps(reasons)
    except orjson.JSONEncodeError:  # a lone surrogate
        pass
    return orjson.dumps([_storable(reason) for reason in reasons])


def _array(items: tuple[str, ...]) -> bytes:
    """A `text[]` literal: every element quoted, backslashes and quotes escaped."""
    quoted = ('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items)
    return _text("{" + ",".join(quoted) + "}") or b"{}"


def _params(event: AuditEvent) -> tuple[bytes | None, ...]:
    """The event's columns as PostgreSQL text parameters, in `_COLUMNS` order."""
    p = event.principal
    return (
        orjson.dumps(event.time)[1:-1],  # RFC 3339 as `isoformat()` writes it, a quarter of the cost
        _text(p.subject) if p else None,
        _text(p.tenant) if p else None,
        _array(p.roles) if p else b"{}",
        _text(p.auth_method) if p else None,
        _text(p.key_id) if p else None,
        _text(event.action),
        _text(event.upstream),
        _text(event.tool),
        _text(event.argument_digest),
        _text(event.decision),
        _reasons(event.reasons),
        repr(float(event.latency_ms)).encode(),
        _text(event.outcome),
        _text(event.request_id),
        _text(event.client_address),
    )


class PostgresAuditWriter(AuditWriter):
    """Group-committing writer on the instance pool; close it before the pool."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        *,
        durability: AuditDurability = "flush",
        max_batch: int = 256,
        linger: float = 0.0,
    ) -> None:
        if durability not in ("flush", "commit"):
            raise ValueError(f"audit durability must be 'flush' or 'commit', got {durability!r}")
        if not 1 <= max_batch <= MAX_BATCH_LIMIT:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH_LIMIT}, got {max_batch!r}")
        if not 0 <= linger <= 0.01:
            raise ValueError(f"linger must be between 0 and 0.01 seconds, got {linger!r}")
        self.pool = pool
        self.durability: AuditDurability = durability
        self.max_batch = max_batch
        self.linger = linger
        self._sync = "on" if durability == "flush" else "off"
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self._statements: dict[int, bytes] = {}
        # One connection kept for the writer: a batch is then a single autocommitted INSERT,
        # one round trip, with the durability set once for the session.
        self._conn: AsyncConnection[Any] | None = None
        # Batches go through libpq with text parameters (pq_channel.py): 65-75 µs of CPU per
        # round trip here, against 115-140 µs through psycopg's `execute`.
        self._channel: PqChannel | None = None
        self._busy = False  # a batch is in flight (sent by `write` or by the task)
        self._fresh_connection = False  # a batch failed: the next goes through the task, reconnected
        self._expiry: asyncio.TimerHandle | None = None
        self._gathering = False  # a batch of several just committed: its writers write again soon

    async def write(self, event: AuditEvent) -> None:
        if self._closed:
            raise AuditWriteError("the audit writer is closed; no event can be recorded")
        started = time.perf_counter()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((event, done))
        if not self._busy and not self._gathering:
            self._dispatch()
        await done
        AUDIT_WRITE_SECONDS.observe(time.perf_counter() - started)

    def _dispatch(self) -> None:
        """Nothing in flight: send what is queued now, or leave it to the task."""
        channel = self._channel
        if (
            not self._busy
            and self._pending
            and not self.linger
            and not self._fresh_connection
            and channel is not None
            and not self._wakeup.is_set()  # the task is about to take what is queued
        ):
            batch = self._pending[: self.max_batch]
            statement = self._statement(len(batch))
            # A batch size not prepared on the connection yet is the task's (it prepares it).
            if channel.ready(statement):
                del self._pending[: len(batch)]
                self._busy = True
                try:
                    params = [value for event, _ in batch for value in _params(event)]
                except Exception as exc:  # a defect in encoding: that batch fails, the writer goes on
                    self._busy = False
                    self._failed(batch, exc)
                    self._dispatch()
                    return
                loop = asyncio.get_running_loop()
                self._expiry = loop.call_later(WRITE_TIMEOUT + _UNANSWERED_GRACE, self._expired, channel)
                # (`_sent` may run before this returns, when the connection breaks on sending.)
                channel.send_prepared(statement, params, lambda error: self._sent(batch, error))
                AUDIT_BATCH_SIZE.observe(len(batch))
                return
        if self._pending or self._closed:
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_forever(), name="audit-group-commit")
            self._wakeup.set()

    def _sent(self, batch: list[_Pending], error: BaseException | None) -> None:
        """The answer to a batch `_dispatch` sent (called from the connection's reader)."""
        self._busy = False
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if error is None:
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
        else:
            self._fresh_connection = True
            self._failed(batch, error)
        if len(batch) > 1 or self._pending or self._closed:
            # Under load the writers of this batch, and calls answered with it, write their
            # next events in the coming loop steps: the next batch waits for them rather
            # than leaving with the first alone (each commit saved is a disk flush saved).
            self._gathering = True
            asyncio.get_running_loop().call_soon(self._after_a_step)

    def _after_a_step(self) -> None:
        asyncio.get_running_loop().call_soon(self._gathered)

    def _gathered(self) -> None:
        self._gathering = False
        self._dispatch()

    @staticmethod
    def _expired(channel: PqChannel) -> None:
        # The server enforces WRITE_TIMEOUT itself; no answer even after the grace: it is gone.
        channel.abandon(f"the database did not answer within {WRITE_TIMEOUT + _UNANSWERED_GRACE:g} s")

    @staticmethod
    def _failed(batch: list[_Pending], exc: BaseException) -> None:
        logger.error("audit batch of %d event(s) failed: %s", len(batch), exc)
        _fail(batch, exc)

    async def close(self) -> None:
        """Commit what is queued, then stop; later writes raise AuditWriteError."""
        self._closed = True
        self._dispatch()  # the task sends what is queued and waits for a batch in flight
        if self._flusher is not None:
            await self._flusher
        await self._release()

    async def _writer_channel(self) -> PqChannel:
        if (
            self._fresh_connection
            or self._conn is None
            or self._conn.closed
            or self._channel is None
            or self._channel.broken
        ):
            self._fresh_connection = False
            await self._release()
            # After a database restart the pool's idle connections are dead, and only using
            # one tells: nothing is written yet, so the pool checks the others and the batch
            # takes a fresh one.
            for attempt in range(2):
                conn = await self.pool.getconn()
                try:
                    if not conn.autocommit:
                        await conn.set_autocommit(True)  # each batch is one atomic statement
                    # Events go out as UTF-8 text parameters, whatever the connection's encoding was.
                    await conn.execute(
                        "SELECT set_config('synchronous_commit', %s, false), "
                        "set_config('client_encoding', 'UTF8', false), "
                        "set_config('statement_timeout', %s, false)",
                        (self._sync, f"{round(WRITE_TIMEOUT * 1000)}ms"),
                    )
                except psycopg.OperationalError:
                    await conn.close()  # the pool discards a closed connection
                    await self.pool.putconn(conn)
                    if attempt:
                        raise
                    await self.pool.check()
                    continue
                except BaseException:
                    await self.pool.putconn(conn)
                    raise
                self._conn = conn
                self._channel = PqChannel(conn)
                break
        assert self._channel is not None
        return self._channel

    async def _release(self) -> None:
        conn, channel, self._conn, self._channel = self._conn, self._channel, None, None
        if channel is not None:
            await channel.aclose()
        if conn is None:
            return
        if not conn.closed:
            try:
                if channel is not None and channel.broken:
                    raise psycopg.OperationalError("the audit connection broke")
                await conn.execute(
                    "SET synchronous_commit TO DEFAULT; SET client_encoding TO DEFAULT; "
                    "SET statement_timeout TO DEFAULT"
                )
            except Exception:
                await conn.close()  # the pool discards a closed connection
        await self.pool.putconn(conn)

    async def _flush_forever(self) -> None:
        try:
            while True:
                if self._busy or not self._pending:
                    # Nothing queued, or a batch `write` sent is out (its answer sends what
                    # gathered meanwhile, or wakes this task).
                    if self._closed and not self._busy and not self._pending:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self.linger and len(self._pending) < self.max_batch and not self._closed:
                    await asyncio.sleep(self.linger)
                elif len(self._pending) < self.max_batch:
                    await asyncio.sleep(0)  # answers that arrived in this loop step join the batch
                if self._busy:
                    continue  # `write` sent a batch meanwhile
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._busy = True
                try:
                    await self._commit(batch)
                finally:
                    self._busy = False
        except BaseException as exc:
            # Cancelled or broken: nobody may wait forever on an event that will not be written.
            failed, self._pending = self._pending, []
            _fail(failed, exc)
            raise

    async def _commit(self, batch: list[_Pending]) -> None:
        AUDIT_BATCH_SIZE.observe(len(batch))
        try:
            params = [value for event, _ in batch for value in _params(event)]
            # A stalled database (a lock, a lost network, a synchronous standby down) fails
            # the batch closed after WRITE_TIMEOUT rather than holding every call forever.
            async with asyncio.timeout(WRITE_TIMEOUT + _UNANSWERED_GRACE):
                channel = await self._writer_channel()
                await channel.execute(self._statement(len(batch)), params)  # autocommit: atomic
        except BaseException as exc:
            logger.error("audit batch of %d event(s) failed: %s", len(batch), exc)
            if isinstance(exc, Exception):
                await self._release()
            _fail(batch, exc)
            if not isinstance(exc, Exception):
                raise  # cancelled: the waiters are failed, the flusher stops
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)

    def _statement(self, rows: int) -> bytes:
        statement = self._statements.get(rows)
        if statement is None:
            values = ", ".join(_row(index) for index in range(rows))
            statement = f"INSERT INTO gateway.audit_events ({_COLUMNS}) VALUES {values}".encode()
            self._statements[rows] = statement
        return statement


def _fail(batch: list[_Pending], cause: BaseException) -> None:
    AUDIT_WRITE_FAILURES.inc(len(batch))
    reason = str(cause).strip() or type(cause).__name__
    for _, done in batch:
        if not done.done():
            # One exception per waiter: a shared instance would collect every waiter's traceback.
            error = AuditWriteError(f"the audit event could not be written ({reason}); the call was refused")
            error.__cause__ = cause
            done.set_exception(error)
