"""`bastion mcp-config` and `bastion mcp stdio`: connecting MCP clients to the gateway.

`mcp-config` prints a ready configuration for a client. `mcp stdio` bridges a
client that only speaks stdio to the gateway's Streamable HTTP endpoint with an API
key: messages are relayed both ways by the MCP SDK's own transports, so sessions,
streams and notifications behave exactly as over HTTP. Before relaying anything it
asks the gateway once whether it is there and takes the key, so a wrong key or URL
ends the bridge with one line saying so, rather than every request failing with the
transport's "Server returned an error response".
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
import typer

from bastion.errors import ConfigError
from bastion.settings import Settings, load_settings

__all__ = ["mcp_app", "mcp_config_command"]

mcp_app = typer.Typer(help="Bridge MCP clients to the gateway.", no_args_is_help=True)

KEY_ENV = "BASTION_API_KEY"
CONNECT_WAIT = 10.0  # seconds a bridge started with its client waits for a gateway still starting
# A stateless 2026-07-28 `server/discover`: authenticated like every request, and cheap.
_DISCOVER_HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "server/discover",
}
_DISCOVER = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "server/discover",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}


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
    target = url or gateway_url(settings, f"/mcp/{virtual_server}" if virtual_server else "/mcp")
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
    _check_url(target)
    anyio.run(_bridge, target, token, wait)


EXAMPLE_URL = "http://127.0.0.1:8800/mcp"


def _check_url(url: str) -> None:
    """An http(s) URL with a host, or a ConfigError saying what was expected."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigError(
            f"--url {url!r} is not a URL ({exc}); expected e.g. http://127.0.0.1:8800/mcp"
        ) from None
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"--url {url!r}: expected an http:// or https:// URL, e.g. http://127.0.0.1:8800/mcp"
        )


async def _check_gateway(http: Any, url: str, wait: float) -> None:
    """Raise a ConfigError saying what to do when `url` is not a gateway that takes this key."""
    import httpx2

    deadline = anyio.current_time() + wait
    while True:
        try:
            response = await http.post(url, json=_DISCOVER, headers=_DISCOVER_HEADERS)
            break
        except httpx2.TransportError as exc:
            if anyio.current_time() >= deadline:
                raise ConfigError(
                    f"cannot reach the gateway at {url} ({str(exc) or type(exc).__name__}). "
                    "Start Bastion with `bastion up`, or pass the gateway's MCP URL with --url."
                ) from None
            await anyio.sleep(0.5)
    if response.status_code < 400 or response.status_code == 429:
        return  # it answered as a gateway that took the key (the discover answer itself is not needed)
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    error = body.get("error")
    said = body.get("error_description") or (error.get("message") if isinstance(error, dict) else None)
    if response.status_code == 401:
        raise ConfigError(
            f"the gateway at {url} refused the API key: {said or 'unauthorized'}. Check {KEY_ENV} "
            "(`bastion keys list` shows the keys; `bastion keys create --name NAME --role ROLE` makes one)."
        )
    said = said or response.text[:200]
    raise ConfigError(f"the gateway at {url} answered HTTP {response.status_code}: {said}")


async def _bridge(url: str, key: str, wait: float) -> None:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.stdio import stdio_server

    async with httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {key}"}, timeout=httpx2.Timeout(30.0, read=3600)
    ) as http:
        await _check_gateway(http, url, wait)
        async with (
            streamable_http_client(url, http_client=http) as (remote_read, remote_write),
            stdio_server() as (local_read, local_write),
            anyio.create_task_group() as tg,
        ):

            async def relay(source: Any, sink: Any) -> None:
                async for item in source:
                    if isinstance(item, Exception):
                        sys.stderr.write(f"bastion mcp stdio: {item}\n")
                        continue
                    await sink.send(item)
                tg.cancel_scope.cancel()  # either side closing ends the bridge

            tg.start_soon(relay, local_read, remote_write)
            tg.start_soon(relay, remote_read, local_write)
