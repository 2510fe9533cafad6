"""The Bastion gateway: one authenticated, policy-guarded entry point."""

from gateway.app import create_app

__all__ = ["create_app"]
