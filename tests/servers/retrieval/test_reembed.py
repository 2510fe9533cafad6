"""Changing the embedding model re-embeds a collection in the background."""

from __future__ import annotations

from servers.retrieval.embeddings.onnx import MiniLMOnnxProvider
from servers.retrieval.service import RetrievalService
from tests.servers.retrieval.conftest import Retrieval


class _RenamedMiniLM(MiniLMOnnxProvider):
    """The same network under another model id: what a model change looks like to a collection."""

    model_id = "all-MiniLM-L6-v2-renamed"


async def test_a_collection_of_another_model_is_reembedded_and_stays_searchable(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=[{"id": "a", "text": "Volcanic ash grounded flights."}])
    old = retrieval.service
    retrieval.service = RetrievalService(
        settings=old.settings,
        database=old.database,
        store=old.store,
        config=old.config,
        provider=_RenamedMiniLM(),
    )
    try:
        from servers.retrieval.service import install_service

        install_service(retrieval.runtime, retrieval.service)
        await retrieval.ingest(
            collection, documents=[{"id": "b", "text": "Airlines cancelled routes over Iceland."}]
        )
        await retrieval.drain()  # the re-embedding job queued by that ingestion
        stats = await retrieval.call("collection_stats", {"collection": collection})
        assert stats["model"] == "all-MiniLM-L6-v2-renamed"
        assert stats["chunks_awaiting_reembedding"] == 0
        found = await retrieval.call(
            "search", {"query": "volcano ash and flights", "collection": collection, "mode": "vector", "k": 2}
        )
        assert found["results"][0]["document_id"] == "a"
    finally:
        await retrieval.service.aclose()
