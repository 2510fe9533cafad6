"""Fixtures of the policy tests: a policy folder to edit, and an OPA stand-in."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.policy.bundle import default_policy_dir
from tests.gateway.policy.opa_server import OpaTestServer


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A copy of the shipped policy folder that a test may change."""
    target = tmp_path / "policies"
    shutil.copytree(default_policy_dir(), target)
    return target


@pytest.fixture
async def opa_server() -> AsyncIterator[OpaTestServer]:
    async with OpaTestServer() as server:
        yield server
