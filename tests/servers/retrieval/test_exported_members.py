"""The public surface of the retrieval package is a decision: this test pins it."""

from __future__ import annotations

import servers.retrieval


def test_the_retrieval_package_exports_exactly_its_public_names() -> None:
    assert sorted(servers.retrieval.__all__) == [
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
    for name in servers.retrieval.__all__:
        assert getattr(servers.retrieval, name) is not None
