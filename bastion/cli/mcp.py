"""`bastion mcp-config` and `bastion mcp stdio`: connecting MCP clients to the gateway.

`mcp-config` prints a ready configuration for a client. `mcp stdio` bridges a client
that only speaks stdio to the gateway's Streamable HTTP endpoint with an API key
(bastion/cli/stdio_bridge.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import anyio
import typer

from bastion.cli.stdio_bridge import CONNECT_WAIT, KEY_ENV, bridge, check_url
from bastion.errors import ConfigError
from bastion.settings import Settings, load_settings

__all__ = ["mcp_app", "mcp_config_command"]

mcp_app = typer.Typer(help="Bridge MCP clients to the gateway.", no_args_is_help=True)


def gateway_url(settings: Settings, path: str = "/mcp") -> str:
    host = settings.host if settings.host not in {"0.0.0.0", "::"} else "127.0.0.1"  # noqa: S104 - mapping, not binding
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}{path}"


def client_config(client: str, url: str, key: str | None) -> dict[str, Any]:
    """A configuration snippet for `client`, with the key or a placeholder."""
    bearer = f"Bearer {key}" if key else "Bearer <your Bastion API key>"
    if client == "claude":
        # Claude Desktop launches local stdio servers: bridge through `bastion mcp stdio`.
        beside = Path(sys.executable).parent / "bastion"
        script = str(beside) if beside.exists() else shutil.which("bastion")
        command = script or sys.executable
        args = ["mcp", "stdio", "--url", url]
        if script is None:
            args = ["-m", "bastion.cli", *args]
        return {
            "mcpServers": {
                "bastion": {
                    "command": command,
                    "args": args,
                    "env": {KEY_ENV: key or "<your Bastion API key>"},
                }
            }
        }
    if client == "vscode":
        headers = {"Authorization": bearer if key else "Bearer ${input:bastion-key}"}
        config: dict[str, Any] = {"servers": {"bastion": {"type": "http", "url": url, "headers": headers}}}
        if not key:
            config["inputs"] = [
                {
                    "type": "promptString",
                    "id": "bastion-key",
                    "description": "Bastion API key",
                    "password": True,
                }
            ]
        return config
    if client == "cursor":
        return {"mcpServers": {"bastion": {"url": url, "headers": {"Authorization": bearer}}}}
    raise ConfigError(f"--client {client!r}: choose claude, vscode or cursor")


def mcp_config_command(
    client: Annotated[str, typer.Option(help="claude, vscode or cursor")],
    key: Annotated[str | None, typer.Option(help=f"API key to embed (default: ${KEY_ENV})")] = None,
    url: Annotated[str | None, typer.Option(help="gateway MCP URL (default: from settings)")] = None,
    virtual_server: Annotated[
        str | None, typer.Option("--virtual-server", help="a virtual server name")
    ] = None,
) -> None:
    """Print a ready MCP client configuration for this gateway."""
    settings = load_settings()
    if url is not None:
        check_url(url)
        target = url
    elif virtual_server is not None:
        if virtual_server not in settings.virtual_servers:
            known = ", ".join(sorted(settings.virtual_servers)) or "none are configured"
            raise ConfigError(
                f"--virtual-server {virtual_server!r}: no such virtual server (known: {known}); "
                "they are the [virtual_servers.NAME] tables of bastion.toml"
            )
        target = gateway_url(settings, f"/mcp/{quote(virtual_server, safe='')}")
    else:
        target = gateway_url(settings)
    typer.echo(json.dumps(client_config(client, target, key or os.environ.get(KEY_ENV)), indent=2))


@mcp_app.command("stdio")
def stdio_command(
    url: Annotated[str | None, typer.Option(help="gateway MCP URL (default: from settings)")] = None,
    key: Annotated[
        str | None, typer.Option(help=f"API key (default: ${KEY_ENV}; prefer the variable)")
    ] = None,
    wait: Annotated[
        float, typer.Option(min=0, help="seconds to wait for a gateway that is still starting")
    ] = CONNECT_WAIT,
) -> None:
    """Relay an MCP client on stdin/stdout to the gateway over Streamable HTTP."""
    settings = load_settings()
    token = key or os.environ.get(KEY_ENV)
    if not token:
        raise ConfigError(
            f"no API key: set {KEY_ENV} (create one with `bastion keys create --name NAME --role ROLE`)"
        )
    target = url or gateway_url(settings)
    check_url(target)
    anyio.run(bridge, target, token, wait)
