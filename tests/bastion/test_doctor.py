"""`bastion doctor` against the real Redis and PostgreSQL 15 test services."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bastion.cli.doctor import doctor_command
from bastion.doctor import Check, run_doctor
from bastion.settings import Settings

REDIS_URL = os.environ.get("BASTION_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG15_URL = os.environ.get("BASTION_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def _check(checks: list[Check], name: str) -> Check:
    matches = [check for check in checks if check.name == name]
    assert len(matches) == 1, [check.name for check in checks]
    return matches[0]


def test_every_failed_check_says_how_to_fix_it(tmp_path: Path) -> None:
    checks = run_doctor(Settings(home=tmp_path / "h", redis_url=UNREACHABLE_REDIS, database_url=None))
    assert _check(checks, "python").ok
    assert _check(checks, "disk").ok
    for check in checks:
        assert check.ok or check.fix, check


def test_optional_tools_are_warnings_with_an_apt_get_line(tmp_path: Path) -> None:
    checks = run_doctor(Settings(home=tmp_path / "h", redis_url=None, database_url=None))
    for name in ("redis-server", "postgresql-15", "chromium", "clang", "wasm-ld"):
        tool = _check(checks, name)
        assert not tool.required
        assert tool.ok or "apt-get install -y " in tool.fix
    assert "redis" not in {check.name for check in checks}  # no REDIS_URL, nothing to reach


@pytest.mark.redis
def test_reachable_redis_passes_the_redis_check(tmp_path: Path) -> None:
    checks = run_doctor(Settings(home=tmp_path / "h", redis_url=REDIS_URL, database_url=None))
    redis_check = _check(checks, "redis")
    assert redis_check.ok, redis_check.detail
    assert redis_check.required


def test_unreachable_redis_fails_the_redis_check_with_a_fix(tmp_path: Path) -> None:
    checks = run_doctor(Settings(home=tmp_path / "h", redis_url=UNREACHABLE_REDIS, database_url=None))
    redis_check = _check(checks, "redis")
    assert not redis_check.ok
    assert redis_check.required
    assert "127.0.0.1:1" in redis_check.detail
    assert "REDIS_URL" in redis_check.fix


@pytest.mark.pg15
def test_postgres_without_pgvector_fails_the_database_check_naming_pgvector(tmp_path: Path) -> None:
    checks = run_doctor(Settings(home=tmp_path / "h", redis_url=None, database_url=PG15_URL))
    database = _check(checks, "database")
    assert not database.ok
    assert database.required
    assert "pgvector" in database.detail
    assert "pgvector" in database.fix


def test_unreachable_database_fails_the_database_check_without_showing_the_password(tmp_path: Path) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/test"
    checks = run_doctor(Settings(home=tmp_path / "h", redis_url=None, database_url=url))
    database = _check(checks, "database")
    assert not database.ok
    assert "cannot connect" in database.detail
    assert "hunter2" not in database.detail


def test_embedded_database_binaries_are_found_without_a_database_url(tmp_path: Path) -> None:
    checks = run_doctor(Settings(home=tmp_path / "h", redis_url=None, database_url=None))
    database = _check(checks, "database")
    assert database.ok, database.detail
    assert "pginstall" in database.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="the /root rule applies to root only")
def test_home_under_root_fails_as_root(tmp_path: Path) -> None:
    checks = run_doctor(Settings(home=Path("/root/bastion-home"), redis_url=None, database_url=None))
    home = _check(checks, "home")
    assert not home.ok
    assert "/root" in home.detail
    assert "BASTION_HOME=" in home.fix


def test_doctor_command_exits_1_and_reports_json_when_a_required_check_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(home=tmp_path / "h", redis_url=UNREACHABLE_REDIS, database_url=None)
    assert doctor_command(settings, as_json=True) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    failed = [check["name"] for check in report["checks"] if check["required"] and not check["ok"]]
    assert "redis" in failed


@pytest.mark.redis
def test_doctor_command_exits_0_when_only_warnings_remain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(home=tmp_path / "h", redis_url=REDIS_URL, database_url=None)
    assert doctor_command(settings) == 0
    assert "redis" in capsys.readouterr().out
