"""An upstream whose `server/discover` fails with a server error (HTTP 5xx) is asked again
later; only a refusal of the method says it does not speak 2026-07-28."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from tests.gateway.conftest import GatewayProcess, running_gateway
from tests.http_stub import serving


class _Failing(BaseHTTPRequestHandler):
    """Every POST gets 500, as a server does while it starts or when its database is down."""

    seen = 0

    def do_POST(self) -> None:
        type(self).seen += 1
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(500)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture(scope="module")
def failing_upstream() -> Iterator[str]:
    with serving(_Failing) as base:
        yield base + "/mcp"


@pytest.fixture(scope="module")
def gateway_with_failing(
    shared_home: Path, tmp_path_factory: pytest.TempPathFactory, failing_upstream: str
) -> Iterator[GatewayProcess]:
    work = tmp_path_factory.mktemp("discover")
    config = f'builtin_servers = []\n[upstreams.flaky]\ntransport = "http"\nurl = "{failing_upstream}"\n'

    def tried(url: str) -> bool:  # both connections have met the server at least once
        try:
            flaky = httpx.get(url + "/readyz", timeout=2.0).json()["upstreams"]["flaky"]
        except (httpx.HTTPError, ValueError, KeyError):
            return False
        return bool(flaky["state"] != "starting" and flaky.get("modern", {}).get("state") != "starting")

    with running_gateway(shared_home, work, config, work / "unused.log", ready=tried) as process:
        yield process


def test_a_server_error_at_discover_is_retried_not_taken_for_an_old_server(
    gateway_with_failing: GatewayProcess,
) -> None:
    def flaky() -> dict[str, object]:
        body = httpx.get(gateway_with_failing.url + "/readyz", timeout=10).json()
        return dict(body["upstreams"]["flaky"])

    # Both connections keep failing and keep being retried; the 2026-07-28 one is never
    # written off as `unsupported` for a 500.
    seen = _Failing.seen
    for _ in range(100):  # bounded: 10 s
        if _Failing.seen >= seen + 2:
            break
        time.sleep(0.1)  # the gateway's retries are its own: nothing to wait on but time
    assert _Failing.seen >= seen + 2, "the gateway stopped asking"
    state = flaky()
    assert state["state"] == "failed" and state["restarts"] >= 1, state
    modern = state.get("modern")
    assert isinstance(modern, dict) and modern["state"] == "failed", state
