"""`bastion policy`: run the Rego tests of a policy folder and evaluate one input.

Both work on the embedded engine, without a running gateway: an admin edits `policies/`,
runs `bastion policy test`, tries a request with `bastion policy eval`, and the gateway
picks the change up by itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from bastion.errors import ConfigError
from bastion.logs import configure_logging
from bastion.settings import Settings, load_settings

__all__ = ["policy_app"]

policy_app = typer.Typer(help="Policy: test and try the Rego policy.", no_args_is_help=True)


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, component="policy")
    return settings


def _folder(settings: Settings, path: Path | None, given_as: str) -> Path:
    """The policy folder: `path` (named in errors as `given_as`), else the one in use."""
    if path is None:
        if settings.policy_dir is None:
            from gateway.policy.bundle import default_policy_dir

            return default_policy_dir()
        path, given_as = settings.policy_dir, "BASTION_POLICY_DIR"
    if not path.exists():
        raise ConfigError(f"{given_as} {path}: no such folder. Give a folder of .rego files.")
    if not path.is_dir():
        raise ConfigError(f"{given_as} {path}: a file, not a folder. Give the folder that holds it.")
    return path


def _read_json(path: Path, what: str) -> Any:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot read ({exc.strerror}).") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path}: not UTF-8 text ({exc.reason}); give a JSON file.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} {path}: invalid JSON ({exc}). Fix the file.") from exc


@policy_app.command("test")
def test(
    path: Annotated[Path | None, typer.Argument(help="policy folder (default: the policy in use)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="list every test")] = False,
) -> None:
    """Run every `test_*` rule of the `*_test.rego` files in PATH; exit 1 if any fails."""
    from gateway.policy.embedded import EmbeddedRegoEngine
    from gateway.policy.testing import discover_tests, run_tests

    folder = _folder(_settings(), path, "PATH")
    engine = EmbeddedRegoEngine(folder, reload_interval=None, include_tests=True, strict=True)
    cases = discover_tests(folder)
    if not cases:
        raise ConfigError(f"{folder}: no test_* rules in any *_test.rego file.")
    outcomes = anyio.run(run_tests, engine, cases)
    counts = {"pass": 0, "fail": 0, "error": 0, "skip": 0}
    for outcome in outcomes:
        counts[outcome.result] += 1
        if verbose or outcome.result in {"fail", "error"}:
            line = f"{outcome.result.upper():<5} {outcome.case.file}: {outcome.case.path}"
            line += f" ({outcome.seconds * 1000:.2f} ms)" if outcome.result == "pass" else ""
            typer.echo(line + (f"\n      {outcome.detail}" if outcome.detail else ""))
    summary = ", ".join(f"{n} {label}" for label, n in counts.items() if n or label == "pass")
    typer.echo(f"{len(outcomes)} tests: {summary}".replace("pass", "passed"))
    raise typer.Exit(1 if counts["fail"] or counts["error"] else 0)


@policy_app.command("eval")
def evaluate(
    input_file: Annotated[Path, typer.Option("--input", "-i", help="JSON input document ('-' for stdin)")],
    data_file: Annotated[
        Path | None, typer.Option("--data", "-d", help="JSON data merged over the folder's")
    ] = None,
    path: Annotated[
        Path | None, typer.Option("--policy", help="policy folder (default: the policy in use)")
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", "-q", help="data path to print instead of the decision")
    ] = None,
) -> None:
    """Print the decision policy makes for the input in FILE (or any data path with --query).

    An undefined --query document prints nothing, says so on stderr and exits 3.
    """
    from gateway.policy.embedded import EmbeddedRegoEngine
    from gateway.policy.engine import UNDEFINED
    from gateway.policy.result import decision_from_result

    settings = _settings()
    folder = _folder(settings, path, "--policy")
    document = _read_json(input_file, "input")
    if not isinstance(document, dict):
        raise ConfigError(
            f'input {input_file}: must be a JSON object such as {{"principal": ..., "action": ...}}.'
        )
    extra = _read_json(data_file, "data") if data_file is not None else None
    if extra is not None and not isinstance(extra, dict):
        raise ConfigError(f"data {data_file}: must be a JSON object.")
    engine = EmbeddedRegoEngine(folder, reload_interval=None, extra_data=extra, strict=True)
    # Without --query, the document the gateway decides with.
    target = query or settings.opa_decision_path
    name = "data." + target.strip("/").replace("/", ".")
    value = anyio.run(engine.query, target, document)
    if value is UNDEFINED and query is None:
        raise ConfigError(
            f"{name} is undefined for this input in {folder}, so the gateway would deny it. "
            "Check that opa_decision_path names the policy's decision rule."
        )
    if value is UNDEFINED:
        # `null` would read as a value: print nothing and exit 3, as `bastion status` does.
        typer.echo(f"bastion: {name} is undefined for this input", err=True)
        raise typer.Exit(3)
    result: Any = value if query is not None else decision_from_result(value, name).to_dict()
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
