"""The Bastion gateway: one authenticated, policy-guarded entry point.

`create_app` is imported lazily so that `gateway.auth`, `gateway.migrations` and the
other parts load without the whole application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from gateway.app import create_app

        return create_app
    raise AttributeError(name)
