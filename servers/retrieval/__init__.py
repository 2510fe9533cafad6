"""The retrieval server: ingestion, hybrid search and citations over pgvector and PostgreSQL FTS.

The server's declaration is `servers.retrieval.server:spec`. The names below are the
public surface other parts of Bastion (the `bastion ingest` command) may use; importing
this package loads no model and no heavy parser.
"""

from servers.retrieval.config import RetrievalConfig
from servers.retrieval.errors import (
    AccessDeniedError,
    ExtractionError,
    InputError,
    NotFoundError,
    PathRefusedError,
    RetrievalError,
)
from servers.retrieval.filters import SearchFilters
from servers.retrieval.ingest import InlineDocument, start_ingest
from servers.retrieval.jobs import channel as job_channel
from servers.retrieval.jobs import job_status
from servers.retrieval.service import RetrievalService
from servers.retrieval.standalone import open_service

__all__ = [
    "AccessDeniedError",
    "ExtractionError",
    "InlineDocument",
    "InputError",
    "NotFoundError",
    "PathRefusedError",
    "RetrievalConfig",
    "RetrievalError",
    "RetrievalService",
    "SearchFilters",
    "job_channel",
    "job_status",
    "open_service",
    "start_ingest",
]
