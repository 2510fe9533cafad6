"""The client address audit and policy see: a trusted proxy's `X-Forwarded-For`, else the peer.

By default a reverse proxy on the gateway's own machine is believed (the address it
forwards is the client's), so a proxy in front of the gateway does not make every caller
look local; `trusted_proxies = []` believes no header, and the peer's address is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bastion.db.embedded import EmbeddedPostgres
from bastion.home import Home
from tests.gateway.conftest import GatewayProcess, counter_gateway
from tests.gateway.test_gateway import _modern


@pytest.fixture(scope="module")
def untrusting(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway that believes no proxy."""
    with counter_gateway(shared_home, tmp_path_factory, "untrusting", "trusted_proxies = []") as process:
        yield process


def _call(gateway: GatewayProcess, request_id: str, forwarded_for: str | None) -> str | None:
    """An audited `tools/call` (with `X-Forwarded-For` when given): the address in its event."""
    headers = {"x-request-id": request_id}
    if forwarded_for is not None:
        headers["x-forwarded-for"] = forwarded_for
    params = {"name": "counter_echo", "arguments": {"text": "hi"}}
    url = gateway.url + "/mcp"
    response = _modern(url, "tools/call", params, gateway.key("admin"), name="counter_echo", headers=headers)
    assert response.status_code == 200, response.text
    with psycopg.connect(EmbeddedPostgres(Home(gateway.home)).dsn()) as conn:
        row = conn.execute(
            "SELECT client_address FROM gateway.audit_events WHERE request_id = %s", (request_id,)
        ).fetchone()
    assert row is not None
    return row[0]


def test_a_proxy_on_this_machine_is_believed_by_default(gateway: GatewayProcess) -> None:
    assert _call(gateway, "address-direct", None) == "127.0.0.1"
    # A proxy appends the address it saw; the nearest one not itself a trusted proxy is the client.
    assert _call(gateway, "address-proxied", "198.51.100.20, 203.0.113.7") == "203.0.113.7"


def test_no_proxy_is_believed_when_none_is_trusted(untrusting: GatewayProcess) -> None:
    assert _call(untrusting, "address-untrusted", "203.0.113.7") == "127.0.0.1"
