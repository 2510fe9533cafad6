"""`bastion policy` messages and exit codes, as a user in a shell sees them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REQUEST = {"principal": {"subject": "a", "tenant": "t", "roles": ["admin"]}, "action": "tools/call"}
POLICY = """package bastion.authz

decision := {"allow": false, "reasons": ["the default path"]}

custom := {"allow": true, "reasons": []}

nothing := null
"""


def policy_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "OPA_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "policy", *args],
        env={**base, "BASTION_HOME": str(cwd / "home"), "BASTION_LOG_LEVEL": "WARNING", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("policy-cli")
    (root / "policy").mkdir()
    (root / "policy" / "p.rego").write_text(POLICY)
    (root / "input.json").write_text(json.dumps(REQUEST))
    return root


def test_eval_uses_the_decision_path_the_gateway_uses(workdir: Path) -> None:
    default = policy_cli(workdir, "eval", "-i", "input.json", "--policy", "policy")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["reasons"] == ["the default path"]
    custom = policy_cli(
        workdir,
        "eval",
        "-i",
        "input.json",
        "--policy",
        "policy",
        BASTION_OPA_DECISION_PATH="bastion/authz/custom",
    )
    assert custom.returncode == 0, custom.stderr
    assert json.loads(custom.stdout)["allow"] is True


def test_an_undefined_query_prints_nothing_and_exits_3_unlike_a_null_value(workdir: Path) -> None:
    null = policy_cli(
        workdir, "eval", "-i", "input.json", "--policy", "policy", "-q", "bastion/authz/nothing"
    )
    assert (null.returncode, null.stdout, null.stderr) == (0, "null\n", "")
    missing = policy_cli(
        workdir, "eval", "-i", "input.json", "--policy", "policy", "-q", "bastion/authz/nowhere"
    )
    assert (missing.returncode, missing.stdout) == (3, "")
    assert missing.stderr == "bastion: data.bastion.authz.nowhere is undefined for this input\n"


def test_a_missing_policy_folder_is_named_by_the_option_that_gave_it(workdir: Path) -> None:
    result = policy_cli(workdir, "eval", "-i", "input.json", "--policy", "nowhere")
    assert result.returncode == 2
    assert (
        result.stderr == "bastion: error: --policy nowhere: no such folder. Give a folder of .rego files.\n"
    )
    result = policy_cli(workdir, "test", BASTION_POLICY_DIR=str(workdir / "nowhere"))
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"bastion: error: BASTION_POLICY_DIR {workdir / 'nowhere'}: no such folder"
    )


def test_a_file_given_as_the_policy_folder_is_called_a_file(workdir: Path) -> None:
    result = policy_cli(workdir, "test", "input.json")
    assert result.returncode == 2
    assert result.stderr == (
        "bastion: error: PATH input.json: a file, not a folder. Give the folder that holds it.\n"
    )
