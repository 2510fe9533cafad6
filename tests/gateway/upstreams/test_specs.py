"""Each upstream's call limits: its settings first, then the default by where it runs; and in status."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.settings import load_settings
from gateway.upstreams.manager import UpstreamManager
from gateway.upstreams.specs import upstream_specs

ECHO = 'command = "python3"\nargs = ["-c", "pass"]\n'


@pytest.fixture
def config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in ("DATABASE_URL", "REDIS_URL", "OPA_URL", "BASTION_CONFIG", "BASTION_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BASTION_HOME", str(tmp_path / "home"))
    return tmp_path / "bastion.toml"


def _limits() -> dict[str, tuple[int | None, float | None]]:
    """Each upstream's (max_concurrency, slow_call) as the gateway would run it."""
    specs = upstream_specs(load_settings(), b"k" * 32)
    return {name: (spec.max_concurrency, spec.slow_call) for name, spec in specs.items()}


def test_servers_on_this_machine_get_eight_calls_at_once_and_remote_ones_no_limit(config: Path) -> None:
    config.write_text(
        'builtin_servers = ["system"]\n'
        f'[upstreams.local_stdio]\ntransport = "stdio"\n{ECHO}'
        '[upstreams.loopback]\ntransport = "http"\nurl = "http://127.0.0.1:9100/mcp"\n'
        '[upstreams.named_loopback]\ntransport = "http"\nurl = "http://localhost:9100/mcp"\n'
        '[upstreams.v6_loopback]\ntransport = "http"\nurl = "http://[::1]:9100/mcp"\n'
        '[upstreams.remote]\ntransport = "http"\nurl = "https://crm.internal/mcp"\n'
    )
    assert _limits() == {
        "system": (8, 0.05),
        "local_stdio": (8, 0.05),
        "loopback": (8, 0.05),
        "named_loopback": (8, 0.05),
        "v6_loopback": (8, 0.05),
        "remote": (None, 0.05),
    }


def test_settings_override_the_default_limit(config: Path) -> None:
    config.write_text(
        'builtin_servers = ["system"]\n'
        "[servers.system]\nmax_concurrency = 2\nslow_call_ms = 1000\n"
        f'[upstreams.unlimited]\ntransport = "stdio"\n{ECHO}max_concurrency = 0\n'
        f'[upstreams.strict]\ntransport = "stdio"\n{ECHO}max_concurrency = 1\nstrict_concurrency = true\n'
        '[upstreams.remote]\ntransport = "http"\nurl = "https://crm.internal/mcp"\n'
        "max_concurrency = 32\nslow_call_ms = 250\n"
    )
    assert _limits() == {
        "system": (2, 1.0),
        "unlimited": (None, 0.05),
        "strict": (1, None),
        "remote": (32, 0.25),
    }


async def test_status_describes_each_upstreams_call_limit(config: Path) -> None:
    config.write_text(
        "builtin_servers = []\n"
        f'[upstreams.local_stdio]\ntransport = "stdio"\n{ECHO}'
        '[upstreams.remote]\ntransport = "http"\nurl = "https://crm.internal/mcp"\n'
    )
    manager = UpstreamManager(upstream_specs(load_settings(), b"k" * 32))
    slots = manager.slots("local_stdio")
    assert slots is not None and manager.slots("remote") is None
    ticket = await slots.acquire()
    described = manager.describe()
    assert described["local_stdio"]["calls"] == {
        "max_concurrency": 8,
        "slow_call_ms": 50,
        "counted": 1,
        "waiting": 0,
    }
    assert described["remote"]["calls"] == {"max_concurrency": None}
    slots.release(ticket)
    assert manager.describe()["local_stdio"]["calls"]["counted"] == 0


def test_call_timeout_bounds_each_upstreams_requests(config: Path) -> None:
    config.write_text(
        'builtin_servers = ["system"]\n'
        f'[upstreams.quick]\ntransport = "stdio"\n{ECHO}call_timeout = 20\n'
        '[upstreams.patient]\ntransport = "http"\nurl = "https://crm.internal/mcp"\ncall_timeout = 3600\n'
    )
    specs = upstream_specs(load_settings(), b"k" * 32)
    assert {name: spec.timeout for name, spec in specs.items()} == {
        "system": 300.0,
        "quick": 20.0,
        "patient": 3600.0,
    }


def test_a_call_timeout_of_zero_is_refused_naming_the_setting(config: Path) -> None:
    config.write_text(
        f'builtin_servers = []\n[upstreams.quick]\ntransport = "stdio"\n{ECHO}call_timeout = 0\n'
    )
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "upstreams.quick.call_timeout" in str(refused.value)
