"""Who is calling: the `Principal` every authenticator produces.

A principal is what policy, rate limits and audit see of a caller, whatever proved
its identity: an API key today, OAuth tokens in a later issue, and the loopback test
principal used by the conformance suite. Authenticators differ; the principal does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AuthMethod", "Principal"]

AuthMethod = Literal["api_key", "oauth", "loopback_test"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    `subject` names the caller (an API key's name, an OAuth `sub`), `tenant` the
    organisation it acts in, `roles` what policy grants it, `scopes` what an OAuth
    token was limited to (empty for API keys). `key_id` is the public id of the API
    key used, so audit can tell two keys of one subject apart.
    """

    subject: str
    tenant: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    auth_method: AuthMethod
    key_id: str | None = None

    def to_policy_input(self) -> dict[str, Any]:
        """The `input.principal` object policy sees (lists, as JSON has no tuples)."""
        return {
            "subject": self.subject,
            "tenant": self.tenant,
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "auth_method": self.auth_method,
        }
