"""An upstream's request during a call reaches a client only when one call can have caused it.

The relay through real sessions (elicitation, sampling, roots) is exercised end to end by
the conformance suite through the gateway; here, who gets asked when several calls, or a
call from a client that cannot be asked, are in flight.
"""

from __future__ import annotations

from typing import Any

from mcp import types

from gateway.back_channel import BackChannels

ROOTS = types.ListRootsRequest()


class AskedClient:
    """Stands in for a client session: records what it is asked and answers with no roots."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    async def send_request(self, request: Any, result_type: Any, metadata: Any = None) -> Any:
        self.asked.append(request)
        return types.ListRootsResult(roots=[])


async def test_the_one_call_in_flight_from_an_askable_client_is_asked() -> None:
    back, alice = BackChannels(), AskedClient()
    with back.open("files", alice, 7):  # type: ignore[arg-type]
        back.sending("files")
        answer = await back.relay("files", ROOTS, types.ListRootsResult)
        back.sent("files")
    assert isinstance(answer, types.ListRootsResult) and alice.asked == [ROOTS]


async def test_another_call_in_flight_on_the_upstream_keeps_anyone_from_being_asked() -> None:
    """Bob's call took a path where he cannot be asked (a 2026-07-28 client, or the fast
    path): the upstream's request may be his, so Alice must not see it."""
    back, alice = BackChannels(), AskedClient()
    with back.open("files", alice, 7):  # type: ignore[arg-type]
        back.sending("files")  # Alice's call
        back.sending("files")  # Bob's
        refused = await back.relay("files", ROOTS, types.ListRootsResult)
        assert isinstance(refused, types.ErrorData)
        assert refused.message == (
            "the gateway cannot relay this request from 'files': 2 calls are in flight on it"
        )
        back.sent("files")  # Bob's call ends: Alice's is the only one left
        assert isinstance(await back.relay("files", ROOTS, types.ListRootsResult), types.ListRootsResult)
        back.sent("files")
    assert alice.asked == [ROOTS]


async def test_a_call_from_a_client_that_cannot_be_asked_is_never_relayed_to() -> None:
    back = BackChannels()
    back.sending("files")
    refused = await back.relay("files", ROOTS, types.ListRootsResult)
    assert isinstance(refused, types.ErrorData) and "cannot be asked" in refused.message
    back.sent("files")
    idle = await back.relay("files", ROOTS, types.ListRootsResult)
    assert isinstance(idle, types.ErrorData) and "no call is in flight" in idle.message
