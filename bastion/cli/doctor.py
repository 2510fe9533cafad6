"""`bastion doctor`: print the doctor's checks as a table or as JSON."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bastion.doctor import Check, run_doctor
from bastion.settings import Settings

__all__ = ["doctor_command", "render_table"]

logger = logging.getLogger(__name__)


def doctor_command(settings: Settings, as_json: bool = False) -> int:
    """Run the checks and print them; exit code 1 when a required check fails."""
    checks = run_doctor(settings)
    failed = [check.name for check in checks if check.required and not check.ok]
    if as_json:
        payload = {"ok": not failed, "checks": [asdict(check) for check in checks]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        console = Console()
        console.print(render_table(checks))
        if failed:
            console.print(f"[bold red]{len(failed)} required check(s) failed:[/] {', '.join(failed)}")
        else:
            console.print("[bold green]Ready.[/] Warnings, if any, only matter for tests and plugin builds.")
    if failed:
        logger.debug("doctor: required checks failed: %s", failed)
    return 1 if failed else 0


def _status(check: Check) -> Text:
    if check.ok:
        return Text("ok", style="green")
    return Text("FAIL", style="bold red") if check.required else Text("warn", style="yellow")


def render_table(checks: list[Check]) -> Table:
    table = Table(title="bastion doctor", show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")
    for check in checks:
        # Text(), not markup: details quote paths and errors that may contain brackets.
        table.add_row(check.name, _status(check), Text(check.detail), Text(check.fix, style="cyan"))
    return table
