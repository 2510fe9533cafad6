"""The command line as a user runs it: one clear line per error, secrets never printed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_config_show_prints_effective_settings_with_secrets_redacted(tmp_path: Path) -> None:
    done = _run(
        "config",
        "show",
        "--json",
        env={"BASTION_HOME": str(tmp_path), "DATABASE_URL": "postgresql://u:topsecret@db:5432/x"},
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["home"] == str(tmp_path)
    assert shown["database_url"] == "postgresql://u:***@db:5432/x"
    assert "topsecret" not in done.stdout + done.stderr


def test_a_bad_setting_fails_with_one_line_and_exit_code_2(tmp_path: Path) -> None:
    done = _run("config", "show", env={"BASTION_HOME": str(tmp_path), "BASTION_LOG_LEVEL": "loud"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "bastion: error: invalid settings: BASTION_LOG_LEVEL='LOUD': "
        "expected 'DEBUG', 'INFO', 'WARNING' or 'ERROR'."
    ]


def test_an_unknown_server_name_lists_the_known_ones(shared_home: Path) -> None:
    done = _run("serve", "nope", env={"BASTION_HOME": str(shared_home)})
    assert done.returncode == 2
    assert "no built-in server named 'nope'" in done.stderr and "system" in done.stderr


def test_db_status_lists_applied_migrations_of_the_instance(shared_home: Path) -> None:
    assert _run("db", "migrate", env={"BASTION_HOME": str(shared_home)}).returncode == 0
    done = _run("db", "status", "--json", env={"BASTION_HOME": str(shared_home)})
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {"component": "kernel", "migration": "0001_stores"}.items() <= rows[0].items()
    assert all(row["applied_at"] for row in rows)


def test_db_backup_and_status_without_a_running_instance(home_path: Path, tmp_path: Path) -> None:
    env = {"BASTION_HOME": str(home_path)}
    archive = tmp_path / "x.backup"
    done = _run("db", "backup", str(archive), env=env)
    assert done.returncode == 0, done.stderr
    assert archive.exists()
    refused = _run("db", "restore", str(tmp_path / "missing.backup"), env=env)
    assert refused.returncode == 2 and "no such backup file" in refused.stderr
    status = _run("status", env=env)
    assert status.returncode == 3 and "not running" in status.stdout
