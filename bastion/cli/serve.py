"""`bastion serve NAME`: run one built-in server over stdio or Streamable HTTP."""

from __future__ import annotations

import anyio

from bastion.components import load_server
from bastion.errors import ConfigError
from bastion.settings import Settings

__all__ = ["TRANSPORTS", "serve_command"]

TRANSPORTS = ("stdio", "http")


def serve_command(settings: Settings, name: str, transport: str, host: str, port: int) -> None:
    """Load the built-in server `name` and serve it until its client or a signal ends it."""
    # Imported here so `bastion --help` never pays for the MCP SDK.
    from bastion.mcp import serve

    if transport == "stdio":
        chosen = "stdio"
    elif transport == "http":
        chosen = "http"
    else:
        raise ConfigError(f"--transport {transport!r}: expected one of {', '.join(TRANSPORTS)}.")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: expected 0..65535 (0 picks a free port).")
    spec = load_server(name)
    # This process serves only `spec`: what its start created is frozen out of the collector.
    anyio.run(
        lambda: serve(spec, settings, transport=chosen, host=host, port=port, freeze_startup_objects=True)
    )
