"""`bastion mcp stdio` as a client runs it: a subprocess fed JSON-RPC lines on stdin.

The gateway is a real `bastion gateway` process on a port of its own, so a test can stop
it and start it again under a running bridge. Every request a client sends must get an
answer on stdout, whatever happens to the gateway, the key or the line itself; closing
stdin ends the bridge once the answers still owed have arrived.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import COUNTER, GatewayProcess

HANDSHAKE = "2025-11-25"
MODERN = "2026-07-28"
WAIT = 30.0  # seconds any one answer or exit may take
CONFORMANCE = Path(__file__).resolve().parent / "interop" / "conformance_server.py"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
    "io.modelcontextprotocol/clientInfo": {"name": "bridge-test", "version": "1"},
}


class Gateway:
    """`bastion gateway` on one port that stays the same across restarts."""

    def __init__(self, home: Path, work: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        counter_log = work / "counter.log"
        config = work / "bastion.toml"
        config.write_text(f"""builtin_servers = []
[upstreams.counter]
transport = "stdio"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(COUNTER))}]
env = {{ COUNTING_SERVER_LOG = {json.dumps(str(counter_log))} }}
[upstreams.conformance]
transport = "stdio"
command = {json.dumps(sys.executable)}
args = [{json.dumps(str(CONFORMANCE))}, "--transport", "stdio"]
""")
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))
        }
        env.update({"BASTION_HOME": str(home), "BASTION_CONFIG": str(config), "BASTION_LOG_FORMAT": "json"})
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "gateway.log"
        self.keys = GatewayProcess(url=self.url, home=home, log=self.log, counter_log=counter_log, env=env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return self.keys.env

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bastion.cli", "gateway", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 120
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"gateway did not become ready: {self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def _ready(self) -> bool:
        try:
            upstreams = httpx.get(self.url + "/readyz", timeout=2.0).json().get("upstreams") or {}
        except (httpx.HTTPError, ValueError):
            return False
        settled = all(
            u.get("modern", {}).get("state", "ready") in {"ready", "unsupported"} for u in upstreams.values()
        )
        return bool(upstreams) and all(u["state"] == "ready" for u in upstreams.values()) and settled

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def sessions_open(self) -> float:
        metrics = httpx.get(self.url + "/metrics", timeout=5.0).text
        [line] = [m for m in metrics.splitlines() if m.startswith("bastion_gateway_sessions_open ")]
        return float(line.split()[1])


@pytest.fixture(scope="module")
def gateway(shared_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    running = Gateway(shared_home, tmp_path_factory.mktemp("bridge"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


class Bridge:
    """A running `bastion mcp stdio`: JSON-RPC lines in, JSON lines out, stderr kept."""

    def __init__(self, url: str, key: str, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli", "mcp", "stdio", "--url", url, *args],
            env={**env, "BASTION_API_KEY": key},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.out: queue.Queue[bytes | None] = queue.Queue()
        self.err: list[str] = []
        self.pumps = [threading.Thread(target=self._pump), threading.Thread(target=self._pump_stderr)]
        for pump in self.pumps:
            pump.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.out.put(line)
        self.out.put(None)

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.err.append(line.decode(errors="replace"))

    def send(self, message: dict[str, Any] | str) -> None:
        assert self.process.stdin is not None
        line = message if isinstance(message, str) else json.dumps(message)
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        try:
            line = self.out.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no answer within {WAIT} s; stderr: {self.stderr()}") from None
        assert line is not None, f"the bridge closed stdout; stderr: {self.stderr()}"
        message: dict[str, Any] = json.loads(line)
        return message

    def answer(self, rid: int | str) -> dict[str, Any]:
        """The answer to request `rid`, past any notifications before it."""
        while "id" not in (message := self.receive()) or "method" in message:
            pass
        assert message["id"] == rid, message
        return message

    def request(self, rid: int, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.answer(rid)

    def handshake(self) -> dict[str, Any]:
        client = {"name": "bridge-test", "version": "1"}
        hello = self.request(
            1, "initialize", {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": client}
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return hello

    def close(self) -> int:
        """Close stdin, as a client that is done does, and wait for the bridge to exit."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(WAIT)

    def stderr(self) -> str:
        return "".join(self.err)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        for pump in self.pumps:
            pump.join(10)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None and not pipe.closed:
                pipe.close()


@pytest.fixture
def bridges() -> Iterator[list[Bridge]]:
    started: list[Bridge] = []
    yield started
    for bridge in started:
        bridge.stop()


@pytest.fixture
def bridge(gateway: Gateway, bridges: list[Bridge]) -> Bridge:
    started = Bridge(gateway.url + "/mcp", gateway.keys.key("admin"), gateway.env)
    bridges.append(started)
    return started


def _text(answer: dict[str, Any]) -> str:
    assert "result" in answer, answer
    return "".join(block["text"] for block in answer["result"]["content"] if block["type"] == "text")


def _call(name: str, arguments: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments, **params}


# Stdin closing


def test_a_bridge_whose_client_never_writes_exits_when_stdin_closes(bridge: Bridge) -> None:
    assert bridge.close() == 0
    assert bridge.stderr() == ""


def test_a_call_sent_just_before_stdin_closes_is_answered_and_the_session_ended(
    gateway: Gateway, bridge: Bridge
) -> None:
    before = gateway.sessions_open()
    bridge.handshake()
    bridge.send(
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": _call("counter_hold", {"seconds": 0.5})}
    )
    assert bridge.close() == 0
    assert _text(bridge.answer(2)) == "held"
    assert gateway.sessions_open() == before  # the bridge sent the session's DELETE


def test_a_piped_request_is_answered_before_the_bridge_exits(gateway: Gateway) -> None:
    client = {"name": "pipe", "version": "1"}
    lines = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": client},
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": _call("counter_echo", {"text": "piped"}),
        },
    ]
    done = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "mcp", "stdio", "--url", gateway.url + "/mcp"],
        env={**gateway.env, "BASTION_API_KEY": gateway.keys.key("admin")},
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = {m["id"]: m for m in map(json.loads, done.stdout.splitlines()) if "id" in m}
    assert _text(answers[2]) == "piped"


# Lines that are not JSON-RPC


def test_a_line_that_is_not_json_rpc_is_answered_with_an_error_and_the_bridge_goes_on(bridge: Bridge) -> None:
    bridge.handshake()
    bridge.send("{not json")
    unparsed = bridge.receive()
    assert unparsed["id"] is None and unparsed["error"]["code"] == -32700
    bridge.send({"id": 6, "method": "tools/list"})  # no "jsonrpc"
    invalid = bridge.receive()
    assert invalid["id"] == 6 and invalid["error"]["code"] == -32600
    bridge.send("[1, 2]")
    assert bridge.receive()["id"] is None
    assert bridge.request(7, "ping")["result"] == {}
    lines = bridge.stderr().splitlines()
    assert len(lines) == 3 and all(line.startswith("bastion mcp stdio: answered -32") for line in lines), (
        lines
    )


# What the gateway needs to hear


def test_results_larger_than_a_mebibyte_cross_the_bridge(bridge: Bridge) -> None:
    bridge.handshake()
    big = "a" * (1536 * 1024)
    # A progress token sends the call through the SDK's server, whose answer is an SSE event.
    params = _call("counter_echo", {"text": big}, _meta={"progressToken": "big"})
    assert _text(bridge.request(2, "tools/call", params)) == big


def test_a_2026_client_is_served_without_a_handshake(bridge: Bridge) -> None:
    discover = bridge.request(1, "server/discover", {"_meta": ENVELOPE})
    assert MODERN in discover["result"]["supportedVersions"]
    tools = bridge.request(2, "tools/list", {"_meta": ENVELOPE})["result"]["tools"]
    assert "counter_echo" in {tool["name"] for tool in tools}
    echoed = bridge.request(3, "tools/call", _call("counter_echo", {"text": "modern"}, _meta=ENVELOPE))
    assert _text(echoed) == "modern"
    # A tool that mirrors an argument into an Mcp-Param-* header (SEP-2243) gets it.
    region = bridge.request(
        4, "tools/call", _call("conformance_test_headers", {"region": "eu-west"}, _meta=ENVELOPE)
    )
    assert _text(region) == "region=eu-west", region


# The key


def test_a_key_revoked_mid_session_is_named_with_what_to_do(gateway: Gateway, bridges: list[Bridge]) -> None:
    key = gateway.keys.new_key("viewer", "bridge-revoked-later")
    bridge = Bridge(gateway.url + "/mcp", key, gateway.env)
    bridges.append(bridge)
    bridge.handshake()
    assert "result" in bridge.request(2, "ping")
    revoke = ["keys", "revoke", key.split("_")[1]]
    done = subprocess.run(
        [sys.executable, "-m", "bastion.cli", *revoke],
        env=gateway.env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + WAIT
    rid = 3
    while "result" in (answer := bridge.request(rid, "tools/list")) and time.monotonic() < deadline:
        rid += 1  # the gateway may serve a key from its cache for a moment
        time.sleep(0.2)
    message = answer["error"]["message"]
    assert "refused the API key: this API key was revoked" in message and "bastion keys create" in message
    assert bridge.stderr().strip().endswith(message)


# The gateway going away


def test_a_gateway_that_stops_answering_is_reported_per_request_and_the_bridge_goes_on(
    gateway: Gateway, bridge: Bridge
) -> None:
    bridge.handshake()
    gateway.stop()
    try:
        for rid in (2, 3):
            error = bridge.request(rid, "tools/list")["error"]
            assert f"the gateway at {gateway.url}/mcp did not answer" in error["message"]
            assert "bastion up" in error["message"]
        assert bridge.process.poll() is None
        assert "Traceback" not in bridge.stderr()
    finally:
        gateway.start()


def test_a_restarted_gateway_gets_a_new_session_without_the_client_noticing(
    gateway: Gateway, bridge: Bridge
) -> None:
    bridge.handshake()
    assert "result" in bridge.request(2, "tools/list")
    gateway.stop()
    gateway.start()
    assert "counter_echo" in {t["name"] for t in bridge.request(3, "tools/list")["result"]["tools"]}
    assert _text(bridge.request(4, "tools/call", _call("counter_echo", {"text": "again"}))) == "again"
    assert bridge.stderr() == ""
    assert bridge.close() == 0


# What a real gateway cannot be made to do on cue: a stand-in on 127.0.0.1 that records.


class StandIn:
    """A fake gateway serving a 2025-11-25 session, after answering `unavailable` POSTs with 503."""

    def __init__(self, unavailable: int = 0) -> None:
        self.unavailable = unavailable
        self.seen: list[tuple[float, str, dict[str, str], dict[str, Any]]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                stand_in.seen.append(
                    (time.monotonic(), "POST", {k.lower(): v for k, v in self.headers.items()}, body)
                )
                if stand_in.unavailable:
                    stand_in.unavailable -= 1
                    error = {"code": -32603, "message": "authentication is unavailable: retry shortly"}
                    self.reply(503, {"jsonrpc": "2.0", "id": None, "error": error}, {"retry-after": "1"})
                elif "id" not in body:
                    self.reply(202, None)
                elif body["method"] == "initialize":
                    result = {
                        "protocolVersion": HANDSHAKE,
                        "capabilities": {},
                        "serverInfo": {"name": "stand-in", "version": "1"},
                    }
                    self.reply(
                        200, {"jsonrpc": "2.0", "id": body["id"], "result": result}, {"mcp-session-id": "s1"}
                    )
                else:
                    self.reply(200, {"jsonrpc": "2.0", "id": body["id"], "result": {}})

            def do_GET(self) -> None:
                self.reply(405, None)

            def do_DELETE(self) -> None:
                stand_in.seen.append((time.monotonic(), "DELETE", dict(self.headers.items()), {}))
                self.reply(204, None)

            def reply(
                self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in {"content-type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mcp"

    def posted(self, method: str) -> list[tuple[float, dict[str, str]]]:
        return [
            (at, headers)
            for at, verb, headers, body in self.seen
            if verb == "POST" and body.get("method") == method
        ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture
def stand_in(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    fake = StandIn(getattr(request, "param", 0))
    yield fake
    fake.close()


@pytest.mark.parametrize("stand_in", [2], indirect=True)
def test_a_gateway_still_starting_is_asked_again_when_its_retry_after_says(
    stand_in: StandIn, gateway: Gateway, bridges: list[Bridge]
) -> None:
    bridge = Bridge(stand_in.url, "bst_key", gateway.env, "--wait", "10")
    bridges.append(bridge)
    assert bridge.handshake()["result"]["protocolVersion"] == HANDSHAKE
    asked = [at for at, _ in stand_in.posted("server/discover")]
    assert len(asked) == 3 and all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(asked))


@pytest.mark.parametrize("stand_in", [100], indirect=True)
def test_a_gateway_unavailable_past_the_wait_ends_the_bridge_in_one_line(
    stand_in: StandIn, gateway: Gateway
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "mcp", "stdio", "--url", stand_in.url, "--wait", "2.5"],
        env={**gateway.env, "BASTION_API_KEY": "bst_key"},
        capture_output=True,
        text=True,
        timeout=WAIT,
        stdin=subprocess.PIPE,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line == (
        f"bastion: error: the gateway at {stand_in.url} answered HTTP 503: "
        "authentication is unavailable: retry shortly"
    )
    assert len(stand_in.posted("server/discover")) == 3  # at 0, 1 and 2 s: Retry-After, within --wait


def test_a_handshake_era_session_names_its_version_on_every_later_message(
    stand_in: StandIn, gateway: Gateway, bridges: list[Bridge]
) -> None:
    bridge = Bridge(stand_in.url, "bst_key", gateway.env)
    bridges.append(bridge)
    bridge.handshake()
    assert bridge.request(2, "tools/list")["result"] == {}
    [(_, hello)] = stand_in.posted("initialize")
    assert "mcp-protocol-version" not in hello  # the handshake negotiates it
    for method in ("notifications/initialized", "tools/list"):
        [(_, headers)] = stand_in.posted(method)
        assert headers["mcp-protocol-version"] == HANDSHAKE and headers["mcp-session-id"] == "s1", method
    assert bridge.close() == 0
    assert [verb for _, verb, _, _ in stand_in.seen][-1] == "DELETE"
