"""Client setup as a user does it: `bastion mcp-config` printed, then used as each client would.

Claude Desktop launches the printed command with the printed environment and speaks stdio
to it (`bastion mcp stdio`, the bridge); VS Code and Cursor connect to the printed URL
with the printed headers. Each configuration must reach the gateway and call a tool, and
the bridge must turn a wrong key or URL into one line that says what to do.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import TextContent

from tests.gateway.conftest import GatewayProcess


def _bastion(
    gateway: GatewayProcess, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", *args],
        env={**gateway.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _config(gateway: GatewayProcess, client: str, *extra: str, env: dict[str, str] | None = None) -> Any:
    done = _bastion(gateway, "mcp-config", "--client", client, "--url", gateway.url + "/mcp", *extra, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@asynccontextmanager
async def _connect(client: str, config: Any) -> AsyncGenerator[Client]:
    """Connect the way `client` reads its configuration."""
    if client == "claude":
        server = config["mcpServers"]["bastion"]
        # The desktop app starts the command with the configuration's environment only.
        params = StdioServerParameters(command=server["command"], args=server["args"], env=server["env"])
        async with Client(params) as session:
            yield session
        return
    server = config["servers"]["bastion"] if client == "vscode" else config["mcpServers"]["bastion"]
    async with (
        httpx2.AsyncClient(headers=server["headers"], timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        Client(streamable_http_client(server["url"], http_client=http)) as session,
    ):
        yield session


@pytest.mark.parametrize("client", ["claude", "vscode", "cursor"])
async def test_each_printed_configuration_reaches_the_gateway(gateway: GatewayProcess, client: str) -> None:
    config = _config(gateway, client, "--key", gateway.key("admin"))
    steps: list[float] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        steps.append(progress)

    async with _connect(client, config) as session:
        names = {tool.name for tool in (await session.list_tools()).tools}
        assert {"counter_echo", "system_version"} <= names
        echoed = await session.call_tool("counter_echo", {"text": f"via {client}"})
        slow = await session.call_tool(
            "counter_slow", {"steps": 3, "delay": 0.01}, progress_callback=progress
        )
    assert [b.text for b in echoed.content if isinstance(b, TextContent)] == [f"via {client}"]
    assert not slow.is_error and steps == [1, 2, 3]  # progress crosses the bridge too


def test_the_key_comes_from_the_environment_or_is_asked_for(gateway: GatewayProcess) -> None:
    key = gateway.key("viewer")
    claude = _config(gateway, "claude", env={"BASTION_API_KEY": key})
    assert claude["mcpServers"]["bastion"]["env"] == {"BASTION_API_KEY": key}
    assert claude["mcpServers"]["bastion"]["args"][-2:] == ["--url", gateway.url + "/mcp"]
    # Without a key VS Code prompts for it, as a password, instead of storing it in the file.
    vscode = _config(gateway, "vscode", env={"BASTION_API_KEY": ""})
    assert vscode["servers"]["bastion"]["headers"] == {"Authorization": "Bearer ${input:bastion-key}"}
    assert vscode["inputs"] == [
        {"type": "promptString", "id": "bastion-key", "description": "Bastion API key", "password": True}
    ]
    solo = _config(gateway, "cursor", "--virtual-server", "solo", env={"BASTION_API_KEY": ""})
    assert solo["mcpServers"]["bastion"]["url"] == gateway.url + "/mcp"  # --url wins over the name
    by_name = _bastion(gateway, "mcp-config", "--client", "cursor", "--virtual-server", "solo")
    assert json.loads(by_name.stdout)["mcpServers"]["bastion"]["url"].endswith("/mcp/solo")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--virtual-server", "no such/../x"],
            "--virtual-server 'no such/../x': no such virtual server (known: open, solo)",
        ),
        (
            ["--url", "ftp://127.0.0.1/mcp"],
            "--url 'ftp://127.0.0.1/mcp': expected an http:// or https:// URL",
        ),
        (["--url", "http://127.0.0.1:abc/mcp"], "--url 'http://127.0.0.1:abc/mcp' is not a URL"),
    ],
)
def test_mcp_config_refuses_a_virtual_server_or_url_that_leads_nowhere(
    gateway: GatewayProcess, args: list[str], expected: str
) -> None:
    done = _bastion(gateway, "mcp-config", "--client", "cursor", *args)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"bastion: error: {expected}"), line


def test_an_unknown_client_is_refused_with_the_choices(gateway: GatewayProcess) -> None:
    done = _bastion(gateway, "mcp-config", "--client", "emacs")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == "bastion: error: --client 'emacs': choose claude, vscode or cursor"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bridge(gateway: GatewayProcess, key: str, url: str) -> subprocess.CompletedProcess[str]:
    # The bridge checks before it reads stdin: it must end on its own, with one line.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "mcp", "stdio", "--url", url, "--wait", "0"],
        env={**gateway.env, "BASTION_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.PIPE,  # left open, as a client leaves it
        check=False,
    )
    assert time.monotonic() - started < 30
    return done


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown key", "refused the API key: unknown or invalid API key"),
        ("malformed key", "refused the API key: the bearer token is not a Bastion API key"),
        ("revoked key", "refused the API key: this API key was revoked"),
        ("unknown virtual server", "answered HTTP 404: no MCP endpoint at /mcp/nope"),
        ("nothing listening", "cannot reach the gateway at"),
        ("not a URL", "--url 'http://[bad/mcp' is not a URL"),
        ("not http", "--url 'ftp://127.0.0.1/mcp': expected an http:// or https:// URL"),
        ("port not a number", "--url 'http://127.0.0.1:abc/mcp' is not a URL (Port could not be cast"),
        ("port out of range", "--url 'http://127.0.0.1:99999/mcp' is not a URL (Port out of range"),
        ("control character", "is not a URL (Invalid non-printable ASCII character in URL"),
    ],
)
def test_the_bridge_says_what_is_wrong_in_one_line_and_stops(
    gateway: GatewayProcess, case: str, expected: str
) -> None:
    key, url = gateway.key("admin"), gateway.url + "/mcp"
    if case == "unknown key":
        key = "bst_000000000000_" + "A" * 43
    elif case == "malformed key":
        key = "not-a-key"
    elif case == "revoked key":
        key = gateway.new_key("viewer", "bridge-revoked")
        key_id = key.split("_")[1]
        assert _bastion(gateway, "keys", "revoke", key_id).returncode == 0
    elif case == "unknown virtual server":
        url = gateway.url + "/mcp/nope"
    elif case == "not a URL":
        url = "http://[bad/mcp"
    elif case == "not http":
        url = "ftp://127.0.0.1/mcp"
    elif case == "port not a number":
        url = "http://127.0.0.1:abc/mcp"
    elif case == "port out of range":
        url = "http://127.0.0.1:99999/mcp"
    elif case == "control character":
        url = gateway.url + "/m\x01cp"
    else:
        url = f"http://127.0.0.1:{_closed_port()}/mcp"
    done = _bridge(gateway, key, url)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("bastion: error: ") and expected in line, line
    if "key" in case:
        assert "BASTION_API_KEY" in line and "bastion keys create" in line


def test_the_bridge_without_any_key_says_how_to_make_one(gateway: GatewayProcess) -> None:
    env = {k: v for k, v in gateway.env.items() if k != "BASTION_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "mcp", "stdio", "--url", gateway.url + "/mcp"],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 2
    assert "no API key: set BASTION_API_KEY" in done.stderr and "bastion keys create" in done.stderr
