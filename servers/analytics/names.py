"""Which names may become PostgreSQL identifiers, and how file headers become columns.

Dataset and source names are used as table and role-name material, so they are
checked strictly and never quoted into shape: lowercase ASCII letters, digits and
underscores, starting with a letter, at most 63 bytes, not a reserved prefix. A
column header from a file is normalised instead (`Sales Amount` -> `sales_amount`),
since a file's author chose it, not an attacker's query.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from servers.analytics.errors import InvalidNameError

__all__ = ["RESERVED_PREFIXES", "check_name", "column_names", "suggest_name"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# pg_ names can collide with the system catalogs; bastion_ names with our own roles.
RESERVED_PREFIXES = ("pg_", "bastion_")


def suggest_name(raw: str) -> str:
    """The closest safe name to `raw`, for error messages and headers."""
    text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not text:
        return "unnamed"
    if not text[0].isalpha():
        text = f"c_{text}"
    for prefix in RESERVED_PREFIXES:
        if text.startswith(prefix):
            text = f"x_{text}"
    return text[:63].rstrip("_")


def check_name(raw: str, what: str = "dataset") -> str:
    """`raw` if it is a safe identifier, else InvalidNameError with a safe suggestion."""
    if _NAME.match(raw) and not raw.startswith(RESERVED_PREFIXES):
        return raw
    hint = suggest_name(raw)
    if raw.startswith(RESERVED_PREFIXES):
        why = f"names starting with {' or '.join(RESERVED_PREFIXES)} are reserved"
    else:
        why = "use lowercase letters, digits and '_', starting with a letter, at most 63 characters"
    raise InvalidNameError(f"{what} name {raw!r} is not allowed: {why}. Try {hint!r}.")


def column_names(headers: Iterable[str]) -> list[str]:
    """Safe, unique column names for a file's headers, in order."""
    seen: set[str] = set()
    names: list[str] = []
    for index, header in enumerate(headers, start=1):
        base = suggest_name(header) if header.strip() else f"column_{index}"
        if base == "unnamed":
            base = f"column_{index}"
        name, n = base, 2
        while name in seen:
            suffix = f"_{n}"
            name = base[: 63 - len(suffix)] + suffix
            n += 1
        seen.add(name)
        names.append(name)
    return names
