"""When the audit event of a call cannot be written, the call is refused with a JSON-RPC
error on every path (its result never leaves the gateway), and the gateway keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from mcp.shared.exceptions import MCPError

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from tests.gateway.conftest import GatewayProcess
from tests.gateway.test_gateway import MODERN, _client, _modern, _result

# A constraint the audit table does not have: rows of the `pid` tool are refused, so the
# writer's batch fails the way a full disk or a lost database would fail it.
REFUSE = (
    "ALTER TABLE gateway.audit_events ADD CONSTRAINT test_refuse_pid "
    "CHECK (tool IS DISTINCT FROM 'pid') NOT VALID"
)


@pytest.fixture
def refusing_audit(gateway: GatewayProcess) -> Iterator[None]:
    dsn = EmbeddedPostgres(Home(gateway.home)).dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(REFUSE)
    try:
        yield
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE gateway.audit_events DROP CONSTRAINT test_refuse_pid")


def test_the_fast_path_refuses_a_call_whose_audit_event_fails(
    gateway: GatewayProcess, refusing_audit: None
) -> None:
    response = _modern(gateway.url + "/mcp", "tools/call", {"name": "counter_pid", "arguments": {}},
                       gateway.key("admin"), "counter_pid")  # fmt: skip
    error = _result(response)["error"]
    assert error["code"] == -32603
    assert error["message"].startswith("the audit event could not be written (")
    assert error["message"].endswith("the call was refused")
    assert "test_refuse_pid" in error["message"]  # the database's own reason
    assert "result" not in _result(response)
    echo = _modern(gateway.url + "/mcp", "tools/call", {"name": "counter_echo", "arguments": {"text": "on"}},
                   gateway.key("admin"), "counter_echo")  # fmt: skip
    assert _result(echo)["result"]["content"][0]["text"] == "on"


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_every_era_and_path_refuses_it_too(
    gateway: GatewayProcess, refusing_audit: None, mode: str
) -> None:
    async def progress(done: float, total: float | None, message: str | None) -> None:
        del done, total, message

    async with _client(gateway.url + "/mcp", gateway.key("admin"), mode) as client:
        # Without a progress token the call takes the fast path; with one, the SDK's.
        for callback in (None, progress):
            with pytest.raises(MCPError) as refused:
                await client.call_tool("counter_pid", {}, progress_callback=callback)
            assert "the audit event could not be written" in refused.value.error.message, callback
        assert (await client.call_tool("counter_echo", {"text": "still"})).content
