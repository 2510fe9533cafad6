"""`bastion keys` as a user runs it, against the shared instance, with a live gateway authenticator."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import anyio

from bastion.db.database import Database
from bastion.home import Home
from bastion.stores import PostgresStore
from gateway.auth import ApiKeyAuthenticator, ApiKeyStore, AuthFailure, Principal


def keys_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("BASTION_", "DATABASE_URL", "REDIS_URL"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "keys", *args],
        env={**base, "BASTION_HOME": str(home), "BASTION_LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


async def test_create_list_and_revoke_reach_a_running_gateway(shared_home: Path, database: Database) -> None:
    created = keys_cli(
        shared_home, "create", "--name", "cli-bot", "--role", "analyst", "--tenant", "acme", "--json"
    )
    assert created.returncode == 0, created.stderr
    shown = json.loads(created.stdout)
    assert shown["role"] == "analyst" and shown["roles"] == ["analyst"] and shown["tenant"] == "acme"
    assert shown["key"].startswith(f"bst_{shown['id']}_")

    listed = keys_cli(shared_home, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert shown["key"].split("_", 2)[2] not in listed.stdout
    [mine] = [row for row in json.loads(listed.stdout) if row["id"] == shown["id"]]
    assert mine["status"] == "active" and mine["name"] == "cli-bot"

    keys = ApiKeyStore(database.pool, Home(shared_home).instance_key())
    store = PostgresStore(database.pool, database.dsn)
    header = f"Bearer {shown['key']}"
    try:
        async with ApiKeyAuthenticator(keys, store=store, cache_ttl=3600) as auth:
            principal = await auth.authenticate(header, "127.0.0.1")
            assert principal == Principal("cli-bot", "acme", ("analyst",), (), "api_key", shown["id"])

            revoked = await anyio.to_thread.run_sync(keys_cli, shared_home, "revoke", shown["id"])
            assert revoked.returncode == 0, revoked.stderr
            assert f"Revoked API key {shown['id']}" in revoked.stdout
            # The CLI announced it through the store: the cached key goes within a second.
            with anyio.fail_after(1.0):
                while isinstance(await auth.verify(header, "127.0.0.1"), Principal):
                    await asyncio.sleep(0.01)
            result = await auth.verify(header, "127.0.0.1")
            assert isinstance(result, AuthFailure) and result.reason == "revoked"
    finally:
        await store.close()

    again = keys_cli(shared_home, "revoke", shown["id"])
    assert again.returncode == 0 and "already revoked" in again.stdout
    relisted = json.loads(keys_cli(shared_home, "list", "--json").stdout)
    assert [row["status"] for row in relisted if row["id"] == shown["id"]] == ["revoked"]


def test_create_prints_only_the_key_on_stdout(shared_home: Path) -> None:
    done = keys_cli(shared_home, "create", "--name", "plain", "--role", "viewer", "--role", "service")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 and done.stdout.startswith("bst_")
    assert "shown only once" in done.stderr and "roles viewer, service" in done.stderr


def test_bad_input_fails_with_one_clear_line_and_exit_code_2(shared_home: Path) -> None:
    unknown = keys_cli(shared_home, "revoke", "000000000000")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "bastion: error: no API key has id '000000000000'; `bastion keys list` shows the ids"
    ]
    bad_role = keys_cli(shared_home, "create", "--name", "x", "--role", "Root!")
    assert bad_role.returncode == 2 and "role 'Root!' is not allowed" in bad_role.stderr


def test_a_role_the_policy_does_not_define_is_refused_before_a_key_exists(shared_home: Path) -> None:
    before = json.loads(keys_cli(shared_home, "list", "--json").stdout)
    done = keys_cli(shared_home, "create", "--name", "typo", "--role", "analyst", "--role", "anaylst")
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "defines no role 'anaylst'" in line and "admin, analyst" in line and "data.json" in line
    assert json.loads(keys_cli(shared_home, "list", "--json").stdout) == before


def test_a_revocation_holds_when_the_store_that_announces_it_is_down(shared_home: Path) -> None:
    """Redis unreachable: the key is revoked all the same (the database is the record), and
    the user is told that gateways drop it when their cache expires instead of at once."""
    created = json.loads(
        keys_cli(shared_home, "create", "--name", "storm", "--role", "viewer", "--json").stdout
    )
    done = keys_cli(shared_home, "revoke", created["id"], REDIS_URL="redis://127.0.0.1:9/0")
    assert done.returncode == 0, done.stderr
    assert f"Revoked API key {created['id']}" in done.stdout
    assert "cannot announce it to running gateways" in done.stderr and "api_key_cache_ttl" in done.stderr
    listed = {k["id"]: k for k in json.loads(keys_cli(shared_home, "list", "--json").stdout)}
    assert listed[created["id"]]["revoked_at"] is not None


def test_an_expiry_beyond_a_century_is_refused_in_one_line(shared_home: Path) -> None:
    done = keys_cli(
        shared_home, "create", "--name", "forever", "--role", "viewer", "--expires-in-days", "5000000"
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--expires-in-days" in done.stderr
