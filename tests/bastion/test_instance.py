"""`bastion status` as text: each upstream, a dual-era upstream's 2026-07-28 connection, call limits."""

from __future__ import annotations

from bastion.instance import render_status


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
