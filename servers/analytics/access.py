"""Who may do what: admin tools, readable datasets, and which files a caller may load.

The caller comes from the verified caller context. `allowed_datasets` (from policy)
names embedded datasets by name and external tables as `source`, `source.schema` or
`source.schema.table`; `None` means no restriction. An unknown and a forbidden
dataset get the same answer, so a refusal never confirms that a dataset exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bastion.caller import CallerContext
from servers.analytics.errors import AccessDeniedError, QueryRefusedError, UnknownDatasetError
from servers.analytics.guard import Relation

__all__ = [
    "ADMIN_ROLE",
    "UPLOADS_DIR",
    "authorize_embedded",
    "authorize_source",
    "check_path",
    "is_admin",
    "may_read_source_table",
    "require_admin",
    "upload_path",
]

ADMIN_ROLE = "admin"
UPLOADS_DIR = "uploads"
DEFAULT_SCHEMA = "public"


def is_admin(caller: CallerContext) -> bool:
    return caller.is_local_owner or caller.has_role(ADMIN_ROLE)


def require_admin(caller: CallerContext, action: str) -> None:
    if not is_admin(caller):
        raise AccessDeniedError(
            f"{action} is for admins: the caller {caller.subject!r} lacks the 'admin' role"
        )


def authorize_embedded(
    caller: CallerContext, relations: Iterable[Relation], known: set[str] | None
) -> list[str]:
    """The datasets a query on the embedded database reads, each one allowed to the caller.

    `known` is the set of existing datasets among them; None skips that check (the
    caller knows a reader role for them exists, and roles go with their datasets)."""
    datasets: list[str] = []
    for rel in relations:
        if rel.schema is not None:
            raise QueryRefusedError(
                f"{rel.schema}.{rel.name}: refer to a dataset by its bare name (see list_datasets)"
            )
        if (known is not None and rel.name not in known) or not caller.may_read_dataset(rel.name):
            raise UnknownDatasetError(rel.name)
        if rel.name not in datasets:
            datasets.append(rel.name)
    return datasets


def may_read_source_table(caller: CallerContext, source: str, schema: str, table: str) -> bool:
    allowed = caller.obligations.allowed_datasets
    if allowed is None:
        return True
    return any(entry in allowed for entry in (source, f"{source}.{schema}", f"{source}.{schema}.{table}"))


def may_use_source(caller: CallerContext, source: str) -> bool:
    allowed = caller.obligations.allowed_datasets
    return allowed is None or any(entry == source or entry.startswith(f"{source}.") for entry in allowed)


def authorize_source(caller: CallerContext, source: str, relations: Iterable[Relation]) -> None:
    """Refuse a query on `source` that names a table the caller may not read."""
    if not may_use_source(caller, source):
        raise QueryRefusedError(f"no source named {source!r} that you may query")
    for rel in relations:
        schema = rel.schema or DEFAULT_SCHEMA
        if not may_read_source_table(caller, source, schema, rel.name):
            raise QueryRefusedError(f"no table {schema}.{rel.name} on source {source!r} that you may read")


def upload_path(path: str, home: Path) -> Path:
    """The file a `path` argument names: `~` expanded, and a relative path read under
    BASTION_HOME/uploads (the server's own working directory means nothing to a caller)."""
    file = Path(path).expanduser()
    return file if file.is_absolute() else home / UPLOADS_DIR / file


def check_path(caller: CallerContext, path: Path, home: Path) -> None:
    """Only admins load arbitrary files of this host; others only from BASTION_HOME/uploads."""
    if is_admin(caller):
        return
    uploads = (home / UPLOADS_DIR).resolve()
    if not path.resolve().is_relative_to(uploads):
        raise AccessDeniedError(
            f"loading a file by path is limited to {uploads} for non-admin callers; "
            "upload the data with `content` instead"
        )
