"""`bastion policy test` and `bastion policy eval`, run as the user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INPUT = {
    "principal": {
        "subject": "alice",
        "tenant": "acme",
        "roles": ["viewer"],
        "scopes": [],
        "auth_method": "api_key",
    },
    "action": "tools/call",
    "resource": {"upstream": "analytics", "tool": "query", "arguments": {"sql": "select 1"}},
    "context": {"time": "2026-05-01T10:00:00Z", "client_address": "127.0.0.1", "approval": "none"},
}


def _bastion(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BASTION_HOME": str(cwd / "home"), "BASTION_LOG_LEVEL": "WARNING"}
    env.pop("BASTION_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "policy", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("policy-cli")


def test_policy_test_runs_every_rego_test_and_passes(workdir: Path) -> None:
    result = _bastion("test", "--verbose", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "FAIL" not in result.stdout
    assert "PASS  authz_test.rego: bastion.authz_test.test_admin_may_call_any_tool" in result.stdout
    assert result.stdout.strip().splitlines()[-1].endswith("passed")


def test_policy_test_exits_1_when_a_test_fails(workdir: Path) -> None:
    folder = workdir / "failing"
    folder.mkdir()
    (folder / "p.rego").write_text(
        'package bastion.authz\n\ndecision := {"allow": false, "reasons": ["deny: x"], "obligations": null}\n'
    )
    (folder / "p_test.rego").write_text("package p_test\n\ntest_never if false\n")
    result = _bastion("test", str(folder), cwd=workdir)
    assert result.returncode == 1
    assert "FAIL  p_test.rego: p_test.test_never" in result.stdout
    assert "1 tests: 0 passed, 1 fail" in result.stdout


def test_policy_test_on_a_broken_folder_exits_2_with_one_line(workdir: Path) -> None:
    folder = workdir / "broken"
    folder.mkdir()
    (folder / "p.rego").write_text("package p\n\nx if {\n")
    result = _bastion("test", str(folder), cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.startswith("bastion: error: invalid policy:")
    assert "p.rego" in result.stderr


def test_policy_eval_prints_the_decision(workdir: Path) -> None:
    (workdir / "input.json").write_text(json.dumps(INPUT))
    result = _bastion("eval", "--input", "input.json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    decision = json.loads(result.stdout)
    assert decision["allow"] is False
    assert decision["reasons"] == ["deny: role viewer may not call analytics_query (rule viewers_read_only)"]
    assert decision["obligations"]["row_limit"] == 1000


def test_policy_eval_merges_extra_data(workdir: Path) -> None:
    (workdir / "input.json").write_text(json.dumps(INPUT))
    (workdir / "data.json").write_text(json.dumps({"bastion": {"tools": {"read_only": ["analytics/*"]}}}))
    result = _bastion("eval", "--input", "input.json", "--data", "data.json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["allow"] is True


def test_policy_eval_refuses_a_malformed_input_file(workdir: Path) -> None:
    (workdir / "bad.json").write_text("{not json")
    result = _bastion("eval", "--input", "bad.json", cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.startswith("bastion: error: input bad.json: invalid JSON")
    (workdir / "binary.json").write_bytes(b"\xff\xfe\x00{")
    result = _bastion("eval", "--input", "binary.json", cwd=workdir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("bastion: error: input binary.json: not UTF-8 text")
