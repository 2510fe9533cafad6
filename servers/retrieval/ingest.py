"""Starting an ingestion: validate the request, record the job, queue it.

What can be checked at once is refused at once, with nothing recorded: an invalid
collection name, a collection the caller may not use, a path outside the allowed
roots or missing, a malformed or over-long inline document, an empty request. What
needs a file's content (its type, size, whether it parses) is decided per file by the
worker, so one bad file fails alone while the rest are ingested.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.caller import CallerContext
from servers.retrieval import jobs
from servers.retrieval.catalog import check_name, readable
from servers.retrieval.errors import InputError
from servers.retrieval.paths import resolve_allowed

if TYPE_CHECKING:
    from servers.retrieval.service import RetrievalService

__all__ = ["InlineDocument", "start_ingest"]

logger = logging.getLogger(__name__)

MAX_TAGS = 32
MAX_TAG_CHARS = 64
MAX_GLOBS = 64


class InlineDocument(BaseModel):
    """A document given as text: its `id` is kept and returned by search as `document_id`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=512)
    title: str = Field(default="", max_length=2000)
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict[str, Any])


def _check_tags(tags: Sequence[str]) -> list[str]:
    if len(tags) > MAX_TAGS:
        raise InputError(f"{len(tags)} tags given; at most {MAX_TAGS} are allowed")
    for tag in tags:
        if not tag or len(tag) > MAX_TAG_CHARS:
            raise InputError(f"tag {tag!r} must be 1 to {MAX_TAG_CHARS} characters")
    return list(dict.fromkeys(tags))


def _check_documents(service: RetrievalService, documents: Sequence[InlineDocument]) -> list[dict[str, Any]]:
    config = service.config
    if len(documents) > config.max_documents_per_call:
        raise InputError(
            f"{len(documents):,} documents in one call; the limit is {config.max_documents_per_call:,}. "
            "Send them in several calls."
        )
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for doc in documents:
        if doc.id in seen:
            raise InputError(f"document id {doc.id!r} appears twice in this call; ids must be unique")
        seen.add(doc.id)
        if not doc.text.strip():
            raise InputError(f"document {doc.id!r} has no text")
        if len(doc.text) > config.max_document_chars:
            raise InputError(
                f"document {doc.id!r} has {len(doc.text):,} characters; the limit is "
                f"{config.max_document_chars:,}. Split it into several documents."
            )
        out.append(doc.model_dump())
    return out


async def start_ingest(
    service: RetrievalService,
    caller: CallerContext,
    collection: str,
    *,
    paths: Sequence[str] = (),
    documents: Sequence[InlineDocument] = (),
    tags: Sequence[str] = (),
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    prune: bool = False,
) -> str:
    """Validate and queue an ingestion; return its job id. `prune`: also delete the
    collection's documents whose files under the folders in `paths` are gone."""
    check_name(collection)
    readable(caller, collection)
    if not paths and not documents:
        raise InputError("nothing to ingest: give `paths` (files or folders) or `documents`")
    if len(include) > MAX_GLOBS or len(exclude) > MAX_GLOBS:
        raise InputError(f"at most {MAX_GLOBS} include and {MAX_GLOBS} exclude patterns are allowed")
    resolved = [resolve_allowed(raw, service.roots) for raw in paths]
    if prune and not any(path.is_dir() for path in resolved):
        raise InputError(
            "`prune` deletes the documents whose files are gone from the folders in `paths`, "
            "and no folder was given: name the folder the files were in"
        )
    docs = _check_documents(service, documents)
    async with service.database.pool.connection() as conn:
        job_id = await jobs.create_job(
            conn,
            collection=collection,
            subject=caller.subject,
            tags=_check_tags(tags),
            paths=[str(path) for path in resolved],
            options={"include": list(include), "exclude": list(exclude), "prune": prune},
            documents=docs,
        )
    await service.enqueue(job_id)
    logger.info(
        "ingestion job %s queued for %s: %d path(s), %d document(s)",
        job_id,
        collection,
        len(resolved),
        len(docs),
    )
    return job_id
