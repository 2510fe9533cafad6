"""Documentation keeps up with the code: a new setting or command must be documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.cli import app
from bastion.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    assert f"| `{field}` |" in (DOCS / "configuration.md").read_text(), (
        f"document `{field}` in configuration.md"
    )


def _commands() -> list[str]:
    import typer.main

    group = typer.main.get_group(app)
    names: list[str] = []
    for name, command in group.commands.items():
        if getattr(command, "hidden", False):
            continue
        sub = getattr(command, "commands", None)
        if sub:
            names += [f"{name} {child}" for child in sub]
        else:
            names.append(name)
    return sorted(names)


@pytest.mark.parametrize("command", _commands())
def test_every_cli_command_is_documented(command: str) -> None:
    assert f"`bastion {command}" in (DOCS / "operations.md").read_text(), f"document `bastion {command}`"
