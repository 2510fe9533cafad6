"""`bastion status` as text: each upstream, a dual-era upstream's 2026-07-28 connection, call limits."""

from __future__ import annotations

from bastion.instance import reachable, render_status


def test_status_text_shows_each_upstreams_connections() -> None:
    upstream = {"transport": "stdio", "state": "ready", "tools": 3, "restarts": 0, "last_error": None}
    report = {
        "running": False,
        "home": "/srv/bastion",
        "upstreams": {
            "crm": {**upstream, "modern": {"state": "ready", "tools": 4, "restarts": 1, "last_error": None}},
            "legacy": {**upstream, "modern": {"state": "unsupported", "tools": 0, "restarts": 0}},
            "system": {
                **upstream,
                "calls": {"max_concurrency": 8, "slow_call_ms": 50, "counted": 8, "waiting": 3},
            },
            "remote": {**upstream, "transport": "http", "calls": {"max_concurrency": None}},
        },
        "database": {"embedded": False},
        "store": "postgres",
    }
    lines = render_status(report).splitlines()
    crm = lines.index(next(line for line in lines if "upstream  crm" in line))
    assert "stdio ready  tools 3  restarts 0" in lines[crm]
    assert lines[crm + 1].split() == ["2026-07-28", "ready", "tools", "4", "restarts", "1"]
    legacy = lines.index(next(line for line in lines if "upstream  legacy" in line))
    assert lines[legacy + 1].split() == ["2026-07-28", "unsupported"]
    system = lines.index(next(line for line in lines if "upstream  system" in line))
    assert "2026-07-28" not in lines[system + 1]
    assert lines[system].endswith("restarts 0  calls 8/8 (3 waiting)")
    remote = next(line for line in lines if "upstream  remote" in line)
    assert remote.endswith("restarts 0"), "an upstream without a call limit shows none"


def test_a_gateway_listening_on_every_address_is_asked_through_loopback() -> None:
    """Its full `/readyz` (upstreams, policy) answers a loopback client naming this machine."""
    assert reachable("http://0.0.0.0:8765") == "http://127.0.0.1:8765"
    assert reachable("http://[::]:8765/readyz") == "http://[::1]:8765/readyz"
    assert reachable("http://127.0.0.1:8765") == "http://127.0.0.1:8765"
    assert reachable("http://gateway.internal:8765") == "http://gateway.internal:8765"
