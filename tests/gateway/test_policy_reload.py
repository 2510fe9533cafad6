"""Policy files edited under a running gateway: a good edit takes effect, a broken one is reported.

The gateway runs on its own copy of the shipped policy. Granting analysts the counting
upstream shows in their `tools/list` and calls without a restart; a broken edit keeps the
last good policy deciding while `/readyz`, `/metrics` and the gateway's log say what is
wrong; fixing the file clears all three.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from tests.gateway.conftest import GatewayProcess, counter_gateway
from tests.gateway.test_gateway import _modern, _result

REPO_POLICIES = Path(__file__).resolve().parents[2] / "policies"
BROKEN = "package bastion.authz\n\ndeny contains msg if {\n"


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("policies")
    shutil.copytree(REPO_POLICIES, folder, dirs_exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def gateway(
    shared_home: Path, tmp_path_factory: pytest.TempPathFactory, policies: Path
) -> Iterator[GatewayProcess]:
    settings = f"policy_dir = {json.dumps(str(policies))}\npolicy_reload_interval = 0.1"
    with counter_gateway(shared_home, tmp_path_factory, "policy-reload", settings) as process:
        yield process


def _eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def _tools(gateway: GatewayProcess, key: str) -> set[str]:
    listed = _result(_modern(gateway.url + "/mcp", "tools/list", {}, key))
    return {tool["name"] for tool in listed["result"]["tools"]}


def _echo(gateway: GatewayProcess, key: str) -> dict[str, object]:
    return _result(
        _modern(
            gateway.url + "/mcp",
            "tools/call",
            {"name": "counter_echo", "arguments": {"text": "hi"}},
            key,
            "counter_echo",
        )
    )


def _ready(gateway: GatewayProcess) -> dict[str, object]:
    return httpx.get(gateway.url + "/readyz", timeout=10).json()


def _policy_ok_metric(gateway: GatewayProcess) -> str:
    text = httpx.get(gateway.url + "/metrics", timeout=10).text
    return next(line for line in text.splitlines() if line.startswith("bastion_policy_ok "))


def test_policy_edits_take_effect_and_a_broken_one_is_reported_until_fixed(
    gateway: GatewayProcess, policies: Path
) -> None:
    analyst = gateway.key("analyst")
    assert "counter_echo" not in _tools(gateway, analyst)
    assert "error" in _echo(gateway, analyst)  # denied: analysts are not granted the counter
    assert _ready(gateway)["policy"] == {"ok": True, "error": None}

    # A good edit: grant analysts the counter. No restart.
    data_file = policies / "data.json"
    data = json.loads(data_file.read_text())
    data["bastion"]["grants"]["roles"]["analyst"]["tools"].append("counter/*")
    data_file.write_text(json.dumps(data))
    _eventually(lambda: "counter_echo" in _tools(gateway, analyst), "analysts see the counter")
    assert _echo(gateway, analyst)["result"]["content"][0]["text"] == "hi"  # type: ignore[index]

    # A broken edit: the last good policy keeps deciding, and every report says why.
    rules = policies / "rules.rego"
    good_rules = rules.read_text()
    rules.write_text(BROKEN)
    _eventually(lambda: not _ready(gateway)["policy"]["ok"], "/readyz reports the broken policy")  # type: ignore[index]
    ready = _ready(gateway)
    assert ready["status"] == "degraded"
    assert "rules.rego" in ready["policy"]["error"]  # type: ignore[index]
    assert _policy_ok_metric(gateway) == "bastion_policy_ok 0.0"
    assert "rules.rego" in gateway.log.read_text()
    assert _echo(gateway, analyst)["result"]["content"][0]["text"] == "hi"  # type: ignore[index]
    assert "error" in _echo(gateway, gateway.key("viewer"))

    rules.write_text(good_rules)
    _eventually(lambda: _ready(gateway)["policy"] == {"ok": True, "error": None}, "the fix is picked up")
    assert _ready(gateway)["status"] == "ok"
    assert _policy_ok_metric(gateway) == "bastion_policy_ok 1.0"


async def test_a_session_is_told_when_a_policy_edit_changes_what_it_may_see(
    gateway: GatewayProcess, policies: Path
) -> None:
    """No catalog changed, yet the `service` role's tool list did: its session hears
    `notifications/tools/list_changed`, and lists the granted tools."""
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        heard.append(repr(message))

    headers = {"Authorization": f"Bearer {gateway.key('service')}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        Client(
            streamable_http_client(gateway.url + "/mcp", http_client=http),
            mode="legacy",
            message_handler=on_message,
        ) as client,
    ):
        assert not [t.name for t in (await client.list_tools()).tools if t.name.startswith("counter_")]
        data_file = policies / "data.json"
        data = json.loads(data_file.read_text())
        data["bastion"]["grants"]["roles"]["service"]["tools"].append("counter/*")
        data_file.write_text(json.dumps(data))
        with anyio.fail_after(20):
            while not any("tools/list_changed" in m for m in heard):
                await anyio.sleep(0.05)
        assert "counter_echo" in {t.name for t in (await client.list_tools()).tools}
