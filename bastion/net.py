"""Whether a host name or address stays on this machine."""

from __future__ import annotations

from ipaddress import ip_address


def is_loopback(host: str | None) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1) and for `localhost`."""
    if not host:
        return False
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in ("localhost", "localhost.")
