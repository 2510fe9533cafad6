"""The `bastion` command line.

Settings are read once, here, and passed down. Every error Bastion raises on
purpose becomes one line on stderr and its exit code (2 for configuration, 1 for a
failed run); nothing prints a traceback at a user unless BASTION_LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from bastion.cli.dataset import dataset_app
from bastion.cli.ingest import ingest_command
from bastion.cli.keys import keys_app
from bastion.cli.mcp import mcp_app, mcp_config_command
from bastion.cli.policy import policy_app
from bastion.errors import BastionError
from bastion.logs import configure_logging
from bastion.settings import Settings, load_settings

__all__ = ["app", "main"]

app = typer.Typer(
    name="bastion",
    help="Bastion: a private, self-hosted AI analytics platform built out of MCP servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database: migrations, backup and restore.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

app.command("ingest")(ingest_command)
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.add_typer(mcp_app, name="mcp")
app.command("mcp-config")(mcp_config_command)
app.add_typer(dataset_app, name="dataset")

logger = logging.getLogger("bastion.cli")


def _settings(component: str | None = None) -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, component=component)
    return settings


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# -- instance ------------------------------------------------------------------


@app.command()
def up() -> None:
    """Start Bastion on this machine and supervise it until Ctrl+C."""
    from bastion.supervisor import Supervisor

    settings = _settings("supervisor")
    raise typer.Exit(Supervisor(settings).run())


@app.command()
def down(timeout: Annotated[float, typer.Option(help="seconds to wait for a clean stop")] = 60.0) -> None:
    """Stop the Bastion instance running for BASTION_HOME."""
    from bastion.instance import stop_instance

    settings = _settings()
    typer.echo(stop_instance(settings, timeout=timeout))


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Show what runs where for the instance at BASTION_HOME."""
    from bastion.instance import instance_status, render_status

    settings = _settings()
    report = instance_status(settings)
    if as_json:
        _print_json(report)
    else:
        typer.echo(render_status(report))
    raise typer.Exit(0 if report["running"] else 3)


@app.command()
def serve(
    name: Annotated[str, typer.Argument(help="built-in server name, e.g. system")],
    transport: Annotated[str, typer.Option(help="stdio or http")] = "stdio",
    host: Annotated[str, typer.Option(help="listen address for http")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port for http")] = 8801,
) -> None:
    """Run one built-in MCP server over stdio or Streamable HTTP (at /mcp)."""
    from bastion.cli.serve import serve_command

    if transport not in {"stdio", "http"}:
        raise typer.BadParameter(f"--transport {transport!r}: choose stdio or http")
    settings = load_settings()
    # stdout carries the protocol over stdio: logs always go to stderr.
    configure_logging(settings.log_level, settings.log_format, component=name)
    serve_command(settings, name, transport, host, port)


@app.command(hidden=True)
def gateway(
    host: Annotated[str | None, typer.Option(help="listen address")] = None,
    port: Annotated[int | None, typer.Option(help="listen port")] = None,
) -> None:
    """Run the gateway alone (the supervisor runs it for you)."""
    from bastion.gateway_runner import run_gateway

    settings = _settings("gateway")
    run_gateway(settings, host=host or settings.host, port=port or settings.port)


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Check this machine for what Bastion and its tests need, and say how to fix the rest."""
    from bastion.cli.doctor import doctor_command

    raise typer.Exit(doctor_command(_settings(), as_json))


# -- config --------------------------------------------------------------------


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Print the effective settings, secrets redacted."""
    from bastion.settings import config_path

    settings = _settings()
    data = settings.redacted()
    if as_json:
        _print_json(data)
        return
    source = config_path()
    typer.echo(f"# settings file: {source if source else 'none'}")
    for key, value in data.items():
        typer.echo(f"{key} = {json.dumps(value)}")


# -- database ------------------------------------------------------------------


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply every pending migration (kernel and built-in servers)."""
    from bastion.components import all_migration_sets
    from bastion.db.database import Database

    settings = _settings()

    async def go() -> list[str]:
        db = Database(settings)
        try:
            return await db.migrate(all_migration_sets())
        finally:
            await db.close()

    applied = anyio.run(go)
    typer.echo(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))


@db_app.command("status")
def db_status(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List every migration, applied or pending."""
    from bastion.components import all_migration_sets
    from bastion.db.database import Database

    settings = _settings()

    async def go() -> list[dict[str, Any]]:
        db = Database(settings)
        try:
            states = await db.status(all_migration_sets())
        finally:
            await db.close()
        return [
            {
                "component": s.component,
                "migration": s.id,
                "applied_at": s.applied_at.isoformat() if s.applied_at else None,
                "checksum_ok": s.checksum_ok,
            }
            for s in states
        ]

    rows = anyio.run(go)
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        mark = row["applied_at"] or "pending"
        warn = "" if row["checksum_ok"] else "  (changed since applied)"
        typer.echo(f"{row['component']:<12} {row['migration']:<40} {mark}{warn}")
    pending = sum(1 for r in rows if r["applied_at"] is None)
    typer.echo(f"{len(rows) - pending} applied, {pending} pending")


@db_app.command("backup")
def db_backup(file: Annotated[Path, typer.Argument(help="archive to write")]) -> None:
    """Write the database and the instance key to FILE (keep it private: it holds the key)."""
    from bastion.db.backup import backup
    from bastion.db.database import Database

    settings = _settings()

    async def go() -> dict[str, Any]:
        db = Database(settings)
        try:
            return await backup(db, file)
        finally:
            await db.close()

    manifest = anyio.run(go)
    typer.echo(
        f"backup written to {file} ({manifest['size_bytes']} bytes, PostgreSQL {manifest['server_version']})"
    )


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="archive written by `bastion db backup`")],
    force: Annotated[bool, typer.Option("--force", help="replace a non-empty database and the key")] = False,
) -> None:
    """Restore FILE into this instance (refuses a non-empty database unless --force)."""
    from bastion.db.backup import restore
    from bastion.db.database import Database

    settings = _settings()

    async def go() -> dict[str, Any]:
        db = Database(settings)
        try:
            return await restore(db, file, force=force)
        finally:
            await db.close()

    manifest = anyio.run(go)
    typer.echo(f"restored {file} (made {manifest['created_at']} by Bastion {manifest['bastion_version']})")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: one clear line per failure."""
    try:
        code = app(args=argv, standalone_mode=False)
    except BastionError as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            logger.exception("failed")
        sys.stderr.write(f"bastion: error: {exc.message}\n")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("bastion: aborted\n")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        # Usage errors from click (typer vendors its own copy): shown as usage lines.
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):
            show()
            sys.exit(int(exc.exit_code))  # type: ignore[attr-defined]
        raise
    sys.exit(code if isinstance(code, int) else 0)
