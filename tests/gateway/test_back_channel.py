"""An upstream's request during a call reaches a client only when one call can have caused it.

The relay through real sessions (elicitation, sampling, roots) is exercised end to end by
the conformance suite through the gateway; here, who gets asked when several calls, or a
call from a client that cannot be asked, are in flight.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp import types

from gateway.back_channel import BackChannels

ROOTS = types.ListRootsRequest()


class AskedClient:
    """Stands in for a client session: records what it is asked and answers with no roots,
    or (`silent`) never answers, recording that the request was given up on."""

    def __init__(self, *, silent: bool = False) -> None:
        self.asked: list[Any] = []
        self.given_up: list[Any] = []
        self.silent = silent

    async def send_request(self, request: Any, result_type: Any, metadata: Any = None) -> Any:
        self.asked.append(request)
        if self.silent:
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                self.given_up.append(request)
                raise
        return types.ListRootsResult(roots=[])


async def test_the_one_call_in_flight_from_an_askable_client_is_asked() -> None:
    back, alice = BackChannels(), AskedClient()
    with back.open("files", alice, 7):  # type: ignore[arg-type]
        back.sending("files")
        answer = await back.relay("files", ROOTS, types.ListRootsResult, answer_within=30)
        back.sent("files")
    assert isinstance(answer, types.ListRootsResult) and alice.asked == [ROOTS]


async def test_another_call_in_flight_on_the_upstream_keeps_anyone_from_being_asked() -> None:
    """Bob's call took a path where he cannot be asked (a 2026-07-28 client, or the fast
    path): the upstream's request may be his, so Alice must not see it."""
    back, alice = BackChannels(), AskedClient()
    with back.open("files", alice, 7):  # type: ignore[arg-type]
        back.sending("files")  # Alice's call
        back.sending("files")  # Bob's
        refused = await back.relay("files", ROOTS, types.ListRootsResult, answer_within=30)
        assert isinstance(refused, types.ErrorData)
        assert refused.message == (
            "the gateway cannot relay this request from 'files': 2 calls are in flight on it"
        )
        back.sent("files")  # Bob's call ends: Alice's is the only one left
        assert isinstance(
            await back.relay("files", ROOTS, types.ListRootsResult, answer_within=30), types.ListRootsResult
        )
        back.sent("files")
    assert alice.asked == [ROOTS]


async def test_a_call_from_a_client_that_cannot_be_asked_is_never_relayed_to() -> None:
    back = BackChannels()
    back.sending("files")
    refused = await back.relay("files", ROOTS, types.ListRootsResult, answer_within=30)
    assert isinstance(refused, types.ErrorData) and "cannot be asked" in refused.message
    back.sent("files")
    idle = await back.relay("files", ROOTS, types.ListRootsResult, answer_within=30)
    assert isinstance(idle, types.ErrorData) and "no call is in flight" in idle.message


async def test_a_client_that_never_answers_is_given_up_on_after_the_upstreams_timeout() -> None:
    """Without a bound, a silent client would hold the upstream's request (and the call
    waiting on it) until its session ends."""
    back, silent = BackChannels(), AskedClient(silent=True)
    with back.open("files", silent, 7):  # type: ignore[arg-type]
        back.sending("files")
        with anyio.fail_after(10):
            answer = await back.relay("files", ROOTS, types.ListRootsResult, answer_within=0.05)
        back.sent("files")
    assert isinstance(answer, types.ErrorData)
    assert answer.code == -32001
    assert answer.message == "the client did not answer roots/list within 0.05 s"
    assert silent.given_up == [ROOTS]
