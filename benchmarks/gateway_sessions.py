"""What sharing 2025-11-25 sessions between gateways costs (gateway/session_records.py).

Two gateways on one home (one embedded PostgreSQL, one instance key: two replicas on one
machine), the MCP SDK's echo server as their upstream. For each of `--sessions` sessions:
`initialize` on the first gateway (which saves the session's record), then four
`tools/list` on the second: the first of them continues the session there (reads the
record, replays the `initialize`), the other three find it held. The report gives the
p50 of each and the difference: what a session costs the first time it reaches another
replica.

Usage: python benchmarks/gateway_sessions.py [--sessions 50] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gateway import ECHO, Gateway, bench_policy_dir, free_port, listening, stop, wait_up

HANDSHAKE = "2025-11-25"
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE,
            "capabilities": {},
            "clientInfo": {"name": "gateway-sessions-benchmark", "version": "1"},
        },
    }
)


def listing(request_id: int) -> str:
    """A `tools/list`; each request of a session has an id of its own (MCP requires it)."""
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/list"})


def _ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 2)


def measure(sessions: int) -> dict[str, float | int]:
    work = Path(tempfile.mkdtemp(prefix="bgs-"))
    echo_port = free_port()
    echo = subprocess.Popen(
        [sys.executable, str(ECHO), "--port", str(echo_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first: Gateway | None = None
    second: subprocess.Popen[bytes] | None = None
    try:
        listening(echo_port, echo, "the echo server")
        first = Gateway(work, f"http://127.0.0.1:{echo_port}/mcp", "flush", bench_policy_dir(work))
        port = free_port()
        second = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli", "gateway", "--port", str(port)],
            env=first.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        other = f"http://127.0.0.1:{port}"
        wait_up(other + "/readyz", ready=True)
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "authorization": f"Bearer {first.key()}",
        }
        opened: list[float] = []
        continued: list[float] = []
        held: list[float] = []
        with httpx.Client(timeout=30) as client:

            def timed(
                url: str, body: str, extra: dict[str, str] | None = None
            ) -> tuple[float, httpx.Response]:
                started = time.perf_counter()
                answer = client.post(url + "/mcp", headers={**headers, **(extra or {})}, content=body)
                elapsed = time.perf_counter() - started
                if answer.status_code != 200:
                    raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:200]}")
                return elapsed, answer

            for _ in range(5):  # warm-up: connections, caches, prepared statements
                timed(first.url, INITIALIZE)
            for _ in range(sessions):
                elapsed, answer = timed(first.url, INITIALIZE)
                opened.append(elapsed)
                session = {
                    "mcp-session-id": answer.headers["mcp-session-id"],
                    "mcp-protocol-version": HANDSHAKE,
                }
                continued.append(timed(other, listing(2), session)[0])
                held.extend(timed(other, listing(request_id), session)[0] for request_id in (3, 4, 5))
        return {
            "sessions": sessions,
            "initialize_p50_ms": _ms(opened),
            "first_request_elsewhere_p50_ms": _ms(continued),
            "later_requests_p50_ms": _ms(held),
            "continuing_costs_ms": round(_ms(continued) - _ms(held), 2),
        }
    finally:
        if second is not None:
            stop(second)
        if first is not None:
            stop(first.process)
        stop(echo)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=50, help="sessions opened and continued (default 50)")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    if args.sessions < 1:
        parser.error("--sessions must be at least 1")
    result = measure(args.sessions)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
