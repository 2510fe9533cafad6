"""Fixtures for the audit tests: the gateway schema on the shared database."""

from __future__ import annotations

import uuid

import pytest

from bastion.db.database import Database
from gateway.migrations import MIGRATIONS


@pytest.fixture
async def gateway_db(database: Database) -> Database:
    """The shared embedded database with the gateway's migrations applied."""
    await database.migrate([MIGRATIONS])
    return database


@pytest.fixture
def run_id() -> str:
    """Prefix of this test's request ids: the append-only table is never cleaned."""
    return f"t-{uuid.uuid4().hex[:12]}-"
