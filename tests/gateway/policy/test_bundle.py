"""Reading a policy folder the way OPA reads a bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy import PolicyLoadError
from gateway.policy.bundle import PolicyBundle, clean_error, default_policy_dir, fingerprint


def test_the_shipped_folder_holds_the_policy_its_tests_and_data() -> None:
    bundle = PolicyBundle.load(default_policy_dir(), include_tests=True)
    names = [name for name, _ in bundle.modules]
    assert {"authz.rego", "rules.rego", "obligations.rego", "authz_test.rego"} <= set(names)
    roles = set(bundle.data["bastion"]["grants"]["roles"])
    assert roles == {"admin", "analyst", "viewer", "service", "conformance"}
    production = PolicyBundle.load(default_policy_dir())
    assert not any(name.endswith("_test.rego") for name, _ in production.modules)


def test_a_data_file_in_a_subfolder_lands_under_that_path(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package p\nx := data.teams.red.size\n")
    (tmp_path / "teams" / "red").mkdir(parents=True)
    (tmp_path / "teams" / "red" / "data.json").write_text('{"size": 3}')
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "broken.rego").write_text("not rego")
    bundle = PolicyBundle.load(tmp_path)
    assert bundle.data == {"teams": {"red": {"size": 3}}}
    assert [name for name, _ in bundle.modules] == ["p.rego"]


def test_extra_data_wins_over_the_folders(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package p\n")
    (tmp_path / "data.json").write_text('{"a": {"b": 1, "c": 2}}')
    bundle = PolicyBundle.load(tmp_path, extra_data={"a": {"b": 5}})
    assert bundle.data == {"a": {"b": 5, "c": 2}}


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"p.rego": "package p\n", "data.json": "{oops"}, "invalid JSON"),
        ({"p.rego": "package p\n", "data.json": "[1]"}, "must be a JSON object"),
        ({"only_test.rego": "package p_test\n"}, "holds no .rego policy"),
        (
            {
                "p.rego": "package p\n",
                "data.json": '{"a": 1}',
                "x/data.json": "{}",
                "a/data.json": '{"b": 1}',
            },
            "defined twice",
        ),
    ],
)
def test_a_broken_folder_fails_with_a_message_naming_the_problem(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(PolicyLoadError, match=message):
        PolicyBundle.load(tmp_path)


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.rego").write_text("package p\n\nallow if {\n")
    with pytest.raises(PolicyLoadError, match=r"bad\.rego:\d+"):
        PolicyBundle.load(tmp_path).compile()


def test_a_missing_folder_says_which_setting_to_fix(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="BASTION_POLICY_DIR"):
        PolicyBundle.load(tmp_path / "nowhere")


def test_the_fingerprint_changes_when_a_file_changes(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package p\n")
    before = fingerprint(tmp_path)
    (tmp_path / "p.rego").write_text("package p\n\nx := 1\n")
    assert fingerprint(tmp_path) != before


def test_engine_errors_lose_the_rust_backtrace() -> None:
    error = RuntimeError("\n--> a.rego:1:2\n  |\nerror: bad\n\nStack backtrace:\n   0: <unknown>\n")
    assert clean_error(error) == "--> a.rego:1:2 | error: bad"
