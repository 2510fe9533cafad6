"""Requests an upstream sends back during a call: elicitation, sampling, roots, log lines.

An upstream that needs the user (elicitation), a model (sampling) or the client's roots
while it handles a `tools/call` asks its client, the gateway. The gateway relays the
request to the client whose call is in flight on that upstream, on that call's own
stream, and the answer back. The upstream's request names no call of the gateway's, so
the relay needs exactly one call in flight on that upstream, from a client able to
answer. Every call the gateway sends an upstream is counted (`sending`), whichever path
it took: with several in flight, or with the one in flight from a client that cannot be
asked (a 2026-07-28 client, or one that declared none of these capabilities), the relay
refuses rather than ask the wrong person.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import anyio
from mcp import types
from mcp.server.session import ServerSession
from mcp.shared.message import ServerMessageMetadata

__all__ = ["BackChannels"]

logger = logging.getLogger(__name__)


class BackChannels:
    """Which client sessions have a call in flight on which upstream."""

    def __init__(self) -> None:
        self._open: dict[str, list[tuple[ServerSession, types.RequestId | None]]] = {}
        self._calls: dict[str, int] = {}  # upstream -> calls in flight on it, every path

    def sending(self, upstream: str) -> None:
        """A call to `upstream` starts; pair with `sent`."""
        self._calls[upstream] = self._calls.get(upstream, 0) + 1

    def sent(self, upstream: str) -> None:
        left = self._calls.get(upstream, 0) - 1
        if left > 0:
            self._calls[upstream] = left
        else:
            self._calls.pop(upstream, None)

    @contextmanager
    def open(
        self, upstream: str, session: ServerSession, request_id: types.RequestId | None
    ) -> Generator[None]:
        entry = (session, request_id)
        self._open.setdefault(upstream, []).append(entry)
        try:
            yield
        finally:
            self._open[upstream].remove(entry)

    def _single(self, upstream: str) -> tuple[ServerSession, types.RequestId | None] | types.ErrorData:
        channels = self._open.get(upstream) or []
        calls = max(self._calls.get(upstream, 0), len(channels))
        if len(channels) == 1 and calls == 1:
            return channels[0]
        if calls > 1:
            reason = f"{calls} calls are in flight"
        elif calls == 1:
            reason = "the call in flight comes from a client that cannot be asked"
        else:
            reason = "no call is in flight"
        return types.ErrorData(
            code=-32600, message=f"the gateway cannot relay this request from {upstream!r}: {reason} on it"
        )

    async def relay(
        self, upstream: str, request: types.ServerRequest, result_type: type[Any], *, answer_within: float
    ) -> Any:
        """Ask the client and hand back its answer, or an error for the upstream. A client that
        is silent for `answer_within` seconds is told the request is cancelled (the SDK sends
        `notifications/cancelled` for a request its caller gave up on), as it is when the
        upstream cancels the request itself."""
        target = self._single(upstream)
        if isinstance(target, types.ErrorData):
            return target
        session, request_id = target
        try:
            with anyio.fail_after(answer_within):
                return await session.send_request(
                    request, result_type, metadata=ServerMessageMetadata(related_request_id=request_id)
                )
        except TimeoutError:
            return types.ErrorData(
                code=-32001,
                message=f"the client did not answer {request.method} within {answer_within:g} s",
            )
        except Exception as exc:
            return types.ErrorData(code=-32603, message=f"the client did not answer: {exc}")

    async def log(self, upstream: str, params: types.LoggingMessageNotificationParams) -> None:
        target = self._single(upstream)
        if isinstance(target, types.ErrorData):
            return
        session, request_id = target
        try:
            await session.send_log_message(  # pyright: ignore[reportDeprecated]
                params.level, params.data, params.logger, related_request_id=request_id
            )
        except Exception as exc:
            logger.debug("could not relay a log line from %s: %s", upstream, exc)
