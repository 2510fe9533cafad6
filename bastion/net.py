"""Whether a host name or address stays on this machine, and what a `Host` header names."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str | None) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) and for `localhost`."""
    if not host:
        return False
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in ("localhost", "localhost.")


def authority_host(authority: str) -> str | None:
    """The host of a `Host` header value (`name`, `name:port`, `[v6]:port`), lowercased;
    None when it is not a valid authority (`[x]`, an unclosed bracket)."""
    try:
        return urlsplit(f"//{authority}").hostname
    except ValueError:
        return None
