"""`bastion keys`: create, list and revoke the API keys MCP clients use.

Each command opens the instance database itself (starting the embedded server if
needed) and applies the kernel and gateway migrations first, so it works before the
gateway has ever run. A new key is printed once: only its hash is stored.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer

from bastion.errors import StoreError
from bastion.logs import configure_logging
from bastion.settings import Settings, load_settings

if TYPE_CHECKING:
    from bastion.db.database import Database
    from bastion.stores import Store
    from gateway.auth import ApiKeyRecord, ApiKeyStore

__all__ = ["keys_app"]

keys_app = typer.Typer(help="API keys for MCP clients: create, list, revoke.", no_args_is_help=True)

_T = TypeVar("_T")


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _with_keys(action: Callable[[ApiKeyStore], Awaitable[_T]], *, announce: bool = False) -> _T:
    """Run `action` on the instance's key store; `announce` also opens the store for pub/sub."""
    from bastion.components import kernel_migrations
    from bastion.db.database import Database
    from bastion.home import Home
    from bastion.stores import open_store
    from gateway.auth import ApiKeyStore
    from gateway.migrations import MIGRATIONS

    settings = _settings()
    instance_key = Home(settings.home).instance_key(create=True)

    async def go() -> _T:
        db: Database = Database(settings)
        store: Store | None = None
        try:
            await db.open(migrations=[kernel_migrations(), MIGRATIONS])
            if announce:
                try:
                    store = await open_store(settings, db)
                except StoreError as exc:
                    # The change itself is in the database; only the instant announcement is lost.
                    sys.stderr.write(
                        f"warning: cannot announce it to running gateways ({exc.message}); they drop "
                        f"the key when their cache of it expires (api_key_cache_ttl, "
                        f"{settings.api_key_cache_ttl:g} s)\n"
                    )
            return await action(ApiKeyStore(db.pool, instance_key, publisher=store))
        finally:
            if store is not None:
                await store.close()
            await db.close()

    return anyio.run(go)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def _check_roles(settings: Settings, roles: tuple[str, ...]) -> None:
    """Refuse a role the policy does not define: a key holding only such roles could do nothing."""
    if settings.opa_url:
        return  # the OPA server holds the policy and its data
    from gateway.auth import ApiKeyUsageError
    from gateway.policy.bundle import PolicyBundle, default_policy_dir, defined_roles
    from gateway.policy.errors import PolicyLoadError

    folder = settings.policy_dir or default_policy_dir()
    try:
        known = defined_roles(PolicyBundle.load(folder).data)
    except PolicyLoadError:
        return  # a broken policy is reported by `bastion policy test` and the gateway, not here
    unknown = [r for r in roles if r not in known]
    if known and unknown:
        raise ApiKeyUsageError(
            f"the policy in {folder} defines no role {', '.join(map(repr, unknown))} "
            f"(its roles: {', '.join(known)}), so the key could do nothing. Use one of those, "
            "or add the role under bastion.grants.roles in the policy's data.json first."
        )


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="who or what uses the key, e.g. ci-bot")],
    role: Annotated[list[str], typer.Option("--role", help="role granted (repeat for several)")],
    tenant: Annotated[str, typer.Option("--tenant", help="tenant the key acts in")] = "default",
    expires_in_days: Annotated[
        int | None,
        typer.Option(
            "--expires-in-days", min=1, max=36500, help="expire after this many days (at most 100 years)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print {id, key, role, ...} as JSON")] = False,
) -> None:
    """Create an API key and print it once (only its hash is kept)."""
    from gateway.auth.api_keys import validate_key_fields

    expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    roles = tuple(role)
    validate_key_fields(name, roles, tenant)  # the form first, then whether the policy knows the roles
    _check_roles(_settings(), roles)

    async def action(keys: ApiKeyStore) -> tuple[ApiKeyRecord, str]:
        created = await keys.create(name, roles, tenant=tenant, expires_at=expires_at)
        return created.record, created.key

    record, key = _with_keys(action)
    if as_json:
        _print_json(
            {
                "id": record.id,
                "key": key,
                "role": record.roles[0],
                "roles": list(record.roles),
                "name": record.name,
                "tenant": record.tenant,
                "expires_at": None if record.expires_at is None else record.expires_at.isoformat(),
            }
        )
        return
    # The key alone on stdout, so `KEY=$(bastion keys create ...)` works; notes on stderr.
    typer.echo(
        f"Created API key {record.id} for {record.name!r} "
        f"(roles {', '.join(record.roles)}, tenant {record.tenant}, expires {_when(record.expires_at)}).",
        err=True,
    )
    typer.echo(key)
    typer.echo(
        "Store it now: it is shown only once. Clients send it as `Authorization: Bearer <key>`.", err=True
    )


@keys_app.command("list")
def list_keys(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """List every API key with its status (secrets are never shown)."""

    async def action(keys: ApiKeyStore) -> list[ApiKeyRecord]:
        return await keys.list()

    records = _with_keys(action)
    now = datetime.now(UTC)
    if as_json:
        _print_json([record.to_json(now) for record in records])
        return
    if not records:
        typer.echo("No API keys yet. Create one with `bastion keys create --name NAME --role ROLE`.")
        return
    header = f"{'ID':<13} {'NAME':<20} {'ROLES':<18} {'TENANT':<10} {'STATUS':<8} {'CREATED':<18} LAST USED"
    typer.echo(header)
    for r in records:
        typer.echo(
            f"{r.id:<13} {r.name[:20]:<20} {','.join(r.roles)[:18]:<18} {r.tenant[:10]:<10} "
            f"{r.status(now):<8} {_when(r.created_at):<18} {_when(r.last_used_at)}"
        )


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="key id from `bastion keys list`")],
) -> None:
    """Revoke an API key; running gateways refuse it within a second."""
    from gateway.auth import ApiKeyUsageError

    async def action(keys: ApiKeyStore) -> tuple[ApiKeyRecord, bool]:
        before = await keys.get(key_id)
        if before is None:
            raise ApiKeyUsageError(f"no API key has id {key_id!r}; `bastion keys list` shows the ids")
        if before.revoked_at is not None:
            return before, False
        return await keys.revoke(key_id), True

    record, changed = _with_keys(action, announce=True)
    if changed:
        typer.echo(f"Revoked API key {record.id} ({record.name!r}).")
    else:
        when = _when(record.revoked_at)
        typer.echo(f"API key {record.id} ({record.name!r}) was already revoked at {when}.")
