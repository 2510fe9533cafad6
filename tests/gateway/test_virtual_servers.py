"""Virtual servers: which part of the catalog each one shows, and which settings are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.errors import ConfigError
from bastion.settings import Settings, VirtualServerConfig
from gateway.catalog import ViewConfig, build_view
from gateway.naming import NameTable
from gateway.runtime import view_configs
from gateway.upstreams.connection import Catalog
from tests.gateway.conftest import counter_upstream, running_gateway
from tests.gateway.test_gateway import _client


def test_a_virtual_server_shows_whole_upstreams_and_only_the_tools_its_globs_pick() -> None:
    def catalog(upstream: str) -> Catalog:
        found = Catalog()
        found.tools = [{"name": n, "inputSchema": {"type": "object"}} for n in ("forecast_run", "query")]
        found.prompts = [{"name": "brief"}]
        found.resources = [{"uri": f"{upstream}://readme", "name": "readme"}]
        found.templates = [{"uriTemplate": f"{upstream}://rows/{{id}}", "name": "row"}]
        return found

    catalogs = {"a": catalog("a"), "b": catalog("b")}
    globs_only = ViewConfig(name="g", tool_globs=("*_forecast_*",))
    view = build_view(globs_only, catalogs, NameTable(prefix=globs_only.prefixed))
    assert sorted(view.tools) == ["a_forecast_run", "b_forecast_run"]
    assert not view.prompts and not view.resource_list and not view.template_definitions()
    assert view.resource_upstream("a://readme") is None and view.resource_upstream("b://rows/1") is None

    mixed = ViewConfig(name="m", upstreams=frozenset({"a"}), tool_globs=("b_forecast_*",))
    view = build_view(mixed, catalogs, NameTable(prefix=mixed.prefixed))
    assert sorted(view.tools) == ["a_forecast_run", "a_query", "b_forecast_run"]
    assert list(view.prompts) == ["a_brief"]
    assert [r["uri"] for r in view.resource_list] == ["a://readme"]
    assert view.resource_upstream("a://rows/1") == "a" and view.resource_upstream("b://rows/1") is None


def _settings(tmp_path: Path, host: str, **virtual: VirtualServerConfig) -> Settings:
    return Settings(home=tmp_path, host=host, database_url=None, redis_url=None, virtual_servers=virtual)


def test_the_loopback_test_principal_is_refused_when_the_gateway_listens_beyond_loopback(
    tmp_path: Path,
) -> None:
    open_server = VirtualServerConfig(allow_loopback_test_principal=True)
    on_loopback = view_configs(_settings(tmp_path, "127.0.0.1", open=open_server), set())
    assert on_loopback["open"].allow_loopback_test_principal
    with pytest.raises(ConfigError, match=r"virtual_servers.open.allow_loopback_test_principal .*0\.0\.0\.0"):
        view_configs(_settings(tmp_path, "0.0.0.0", open=open_server), set())


def test_a_virtual_server_naming_an_unknown_upstream_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "127.0.0.1", team=VirtualServerConfig(upstreams=["analytcs"]))
    with pytest.raises(ConfigError, match=r"unknown upstreams \['analytcs'\]; known: \['analytics'\]"):
        view_configs(settings, {"analytics"})


async def test_endpoints_hear_of_exactly_the_changes_in_what_they_list(
    shared_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`/mcp/globbed` lists only `counter_extra`: it hears when that tool comes and when it
    goes; `/mcp/system_only` lists none of the counter's tools and hears of neither."""
    work = tmp_path_factory.mktemp("list-changes")
    counter_log = work / "counter.log"
    config = (
        'builtin_servers = ["system"]\n'
        + counter_upstream(counter_log)
        + '[virtual_servers.globbed]\ntools = ["counter_extra"]\n'
        + '[virtual_servers.system_only]\nupstreams = ["system"]\n'
    )
    heard: dict[str, list[str]] = {"globbed": [], "system_only": []}

    def recorder(name: str) -> Any:
        async def on_message(message: Any) -> None:
            heard[name].append(repr(message))

        return on_message

    with running_gateway(shared_home, work, config, counter_log) as gateway:
        url = gateway.url + "/mcp"
        async with (
            _client(
                url + "/globbed", gateway.key("admin"), "legacy", message_handler=recorder("globbed")
            ) as globbed,
            _client(
                url + "/system_only", gateway.key("admin"), "legacy", message_handler=recorder("system_only")
            ) as other,
            _client(url, gateway.key("admin"), "legacy") as main,
        ):
            assert [t.name for t in (await globbed.list_tools()).tools] == []
            await other.list_tools()
            for round_, expected in enumerate((["counter_extra"], []), start=1):  # it comes, then goes
                await main.call_tool("counter_toggle_extra", {})
                with anyio.fail_after(20):
                    while sum("tools/list_changed" in m for m in heard["globbed"]) < round_:
                        await anyio.sleep(0.05)
                assert [t.name for t in (await globbed.list_tools()).tools] == expected
            await anyio.sleep(0.5)  # time enough for a stray notification to arrive
    assert not any("list_changed" in m for m in heard["system_only"]), heard["system_only"]
