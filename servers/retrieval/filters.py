"""Search filters: what a caller may narrow a search by, and their SQL.

Conditions apply to the chunk (`c`) and its document (`d`); values always travel as
bound parameters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, get_args

from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DOCUMENT_TYPES", "DocumentType", "SearchFilters", "filter_sql"]

Scalar = str | int | float | bool
# What extraction stores as a document's type: one per supported format, and inline text.
DocumentType = Literal["text", "markdown", "html", "pdf", "docx", "inline"]
DOCUMENT_TYPES: tuple[str, ...] = get_args(DocumentType)


class SearchFilters(BaseModel):
    """Narrow a search. Every given field must match (AND)."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        default=None, description="source path; `*` matches any run of characters (e.g. `/srv/docs/*.pdf`)"
    )
    type: list[DocumentType] | None = Field(default=None, description="document types")
    tags: list[str] | None = Field(default=None, description="documents carrying all of these tags")
    metadata: dict[str, Scalar] | None = Field(
        default=None, description="metadata fields equal to these values"
    )
    date_from: datetime | None = Field(
        default=None, description="documents modified at or after (ISO 8601; UTC without a zone)"
    )
    date_to: datetime | None = Field(
        default=None, description="documents modified before (ISO 8601; UTC without a zone)"
    )
    document_id: list[str] | None = Field(default=None, description="only these documents")

    def is_empty(self) -> bool:
        return not any(value is not None for value in self.model_dump().values())

    def empty_date_range(self) -> bool:
        """Whether `date_from` is not before `date_to`, so that no document can match."""
        if self.date_from is None or self.date_to is None:
            return False
        return _utc(self.date_from) >= _utc(self.date_to)


def _utc(moment: datetime) -> datetime:
    """A time without a zone is UTC (else the database would read it in its session's zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _like(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def filter_sql(filters: SearchFilters | None) -> tuple[str, dict[str, Any]]:
    """`AND ...` conditions on `c`/`d` and their parameters (empty when nothing filters)."""
    if filters is None:
        return "", {}
    parts: list[str] = []
    params: dict[str, Any] = {}
    if filters.source is not None:
        parts.append("d.source LIKE %(f_source)s")
        params["f_source"] = _like(filters.source)
    if filters.type:
        parts.append("d.type = ANY(%(f_type)s)")
        params["f_type"] = filters.type
    if filters.tags:
        parts.append("d.tags @> %(f_tags)s")
        params["f_tags"] = filters.tags
    if filters.metadata:
        parts.append("d.metadata @> %(f_metadata)s")
        params["f_metadata"] = Jsonb(filters.metadata)
    if filters.date_from is not None:
        parts.append("d.modified_at >= %(f_date_from)s")
        params["f_date_from"] = _utc(filters.date_from)
    if filters.date_to is not None:
        parts.append("d.modified_at < %(f_date_to)s")
        params["f_date_to"] = _utc(filters.date_to)
    if filters.document_id:
        parts.append("d.doc_key = ANY(%(f_document_id)s)")
        params["f_document_id"] = filters.document_id
    return "".join(f" AND {p}" for p in parts), params
