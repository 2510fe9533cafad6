"""Fixtures of the policy-folder tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.gateway.policy.opa_server import OpaTestServer


@pytest.fixture
async def opa_server() -> AsyncIterator[OpaTestServer]:
    async with OpaTestServer() as server:
        yield server
