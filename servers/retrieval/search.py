"""Search: hybrid (default), vector or keyword, over the collections a caller may read.

The searched collections are the ones asked for, intersected with the caller's
`allowed_collections`; asking for one outside them is refused, and every SQL query is
bound to the allowed ids, so no chunk of another collection can come back. Results
are cached in the store under a key that includes each searched collection's
`version`, which every write bumps: a changed collection never serves stale results.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio

from bastion.caller import CallerContext
from servers.retrieval.catalog import (
    CollectionRow,
    check_name,
    list_collection_rows,
    missing_collections,
    readable,
)
from servers.retrieval.errors import InputError
from servers.retrieval.filters import SearchFilters
from servers.retrieval.fusion import rrf, weighted
from servers.retrieval.ranking import keyword_ranking, vector_ranking

if TYPE_CHECKING:
    from servers.retrieval.embeddings.base import EmbeddingProvider
    from servers.retrieval.service import RetrievalService

__all__ = ["Mode", "resolve_collections", "search"]

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "vector", "keyword"]
MODES = ("hybrid", "vector", "keyword")
CACHE_PREFIX = "retrieval:search:"
MARK_OPEN, MARK_CLOSE = "\x02", "\x03"
_HEADLINE_OPTIONS = (
    f"StartSel={MARK_OPEN}, StopSel={MARK_CLOSE}, MaxWords=40, MinWords=15, "
    'MaxFragments=2, FragmentDelimiter=" … "'
)


async def resolve_collections(
    service: RetrievalService,
    caller: CallerContext,
    collection: str | None,
    collections: Sequence[str] | None,
) -> list[CollectionRow]:
    """The collections to search: those named (each must exist and be allowed), else all allowed."""
    names: list[str] | None = None
    if collection is not None or collections:
        names = list(dict.fromkeys([*([collection] if collection else []), *(collections or [])]))
        for name in names:
            check_name(name)
            readable(caller, name)
    async with service.database.pool.connection() as conn:
        rows = await list_collection_rows(conn, names)
        missing = sorted(set(names or ()) - {row.name for row in rows})
        if missing:
            raise await missing_collections(conn, missing, caller)
    return [row for row in rows if caller.may_read_collection(row.name)]


def _validate(
    query: str, k: int, mode: str, filters: SearchFilters | None, service: RetrievalService
) -> None:
    limit = service.config.max_query_chars
    if not query.strip():
        raise InputError("the query is empty: give words or a question to search for")
    if len(query) > limit:
        raise InputError(
            f"the query is {len(query):,} characters long; the limit is {limit:,}. Shorten it to its key "
            "terms or question (BASTION_RETRIEVAL_MAX_QUERY_CHARS sets the limit)."
        )
    if mode not in MODES:
        raise InputError(f"mode {mode!r} is unknown: use one of {', '.join(MODES)}")
    if not 1 <= k <= service.config.max_k:
        raise InputError(f"k={k} is out of range: ask for 1 to {service.config.max_k} results")
    if filters is not None and filters.empty_date_range():
        raise InputError(
            f"filters.date_from ({filters.date_from}) is not before filters.date_to ({filters.date_to}): "
            "no document can match; swap them, or leave one out for an open range"
        )


# Bumped whenever a hit gains or loses a field, so that a result cached in another shape
# (before an upgrade, or by another replica) is never served.
HIT_SHAPE = 2


def _cache_key(
    service: RetrievalService,
    query: str,
    k: int,
    mode: str,
    filters: SearchFilters | None,
    rows: Sequence[CollectionRow],
    model: str,
) -> str:
    config = service.config
    material = json.dumps(
        {
            "q": query,
            "k": k,
            "mode": mode,
            "filters": filters.model_dump(mode="json") if filters else None,
            "collections": [(row.id, row.version) for row in rows],
            "model": model,
            "shape": HIT_SHAPE,
            "tuning": [
                config.fusion,
                config.rrf_k,
                config.keyword_weight,
                config.candidates,
                config.bm25_k1,
                config.bm25_b,
                config.hnsw_ef_search,
            ],
        },
        sort_keys=True,
    )
    return CACHE_PREFIX + hashlib.sha256(material.encode()).hexdigest()


async def search(
    service: RetrievalService,
    caller: CallerContext,
    query: str,
    *,
    collection: str | None = None,
    collections: Sequence[str] | None = None,
    k: int = 10,
    mode: str = "hybrid",
    filters: SearchFilters | None = None,
) -> dict[str, Any]:
    """Ranked, cited hits for `query`: `{results: [...], mode, collections, took_ms, cached}`."""
    started = time.perf_counter()
    _validate(query, k, mode, filters, service)
    if filters is not None and filters.is_empty():
        filters = None
    rows = await resolve_collections(service, caller, collection, collections)
    names = [row.name for row in rows]
    if not rows:
        return {"results": [], "mode": mode, "collections": [], "took_ms": 0.0, "cached": False}
    provider = await service.provider() if mode != "keyword" else None
    model = provider.model_id if provider is not None else ""
    key = _cache_key(service, query, k, mode, filters, rows, model)
    cached = await service.store.get(key)
    if cached is not None:
        results = json.loads(cached)
        return {
            "results": results,
            "mode": mode,
            "collections": names,
            "took_ms": _ms(started),
            "cached": True,
        }
    ids = [row.id for row in rows]
    limit = max(service.config.candidates, k) if mode == "hybrid" else k
    keyword: list[tuple[int, float]] = []
    vector: list[tuple[int, float]] = []
    config = service.config

    async def rank_keywords() -> None:
        nonlocal keyword
        async with service.database.pool.connection() as conn:
            keyword = await keyword_ranking(
                conn,
                query,
                [(row.id, row.version) for row in rows],
                filters,
                limit=limit,
                k1=config.bm25_k1,
                b=config.bm25_b,
                frequencies=service.frequencies,
                pool=service.database.pool,
                postings=service.postings,
            )

    async def rank_vectors(embedder: EmbeddingProvider) -> None:
        nonlocal vector
        query_vector = await anyio.to_thread.run_sync(embedder.embed_query, query)
        async with service.database.pool.connection() as conn:
            vector = await vector_ranking(
                conn, query_vector, ids, filters, model=model, limit=limit, ef_search=config.hnsw_ef_search
            )

    # In hybrid mode BM25 runs in PostgreSQL while the query is embedded here.
    try:
        async with anyio.create_task_group() as tg:
            if mode != "vector":
                tg.start_soon(rank_keywords)
            if provider is not None:
                tg.start_soon(rank_vectors, provider)
    except BaseExceptionGroup as group:
        # One side's failure explains the search's: surface it as itself, not as a group.
        raise group.exceptions[0] from None
    if mode == "keyword":
        ranked = keyword
    elif mode == "vector":
        ranked = vector
    elif config.fusion == "rrf":
        ranked = rrf(keyword, vector, k=config.rrf_k)
    else:
        ranked = weighted(keyword, vector, keyword_weight=config.keyword_weight)
    results = await _hits(service, query, ranked[:k])
    service.after_response(
        service.store.set(key, json.dumps(results).encode(), ttl=config.cache_ttl), "search cache write"
    )
    return {"results": results, "mode": mode, "collections": names, "took_ms": _ms(started), "cached": False}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _snippet(marked: str) -> str:
    """HTML-escaped passage with the matched terms in <mark>...</mark>."""
    escaped = html.escape(marked, quote=False)
    return escaped.replace(MARK_OPEN, "<mark>").replace(MARK_CLOSE, "</mark>")


async def _hits(
    service: RetrievalService, query: str, ranked: Sequence[tuple[int, float]]
) -> list[dict[str, Any]]:
    if not ranked:
        return []
    async with service.database.pool.connection() as conn:
        cur = await conn.execute(
            "WITH q AS (SELECT CASE WHEN count(*) = 0 THEN NULL"
            "                  ELSE array_to_string(array_agg(quote_literal(lexeme)), ' | "
            "')::tsquery END AS tsq"
            "           FROM unnest(to_tsvector('english', %s))) "
            "SELECT c.id, d.doc_key, d.title, d.source, c.page, c.start_offset, c.end_offset, d.metadata, "
            "       col.name, d.type, coalesce(ts_headline('english', c.text, q.tsq, %s), left(c.text, 300)),"
            "       c.context "
            "FROM retrieval.chunks c JOIN retrieval.documents d ON d.id = c.document_id "
            "JOIN retrieval.collections col ON col.id = c.collection_id CROSS JOIN q WHERE c.id = ANY(%s)",
            (query, _HEADLINE_OPTIONS, [chunk_id for chunk_id, _ in ranked]),
        )
        rows = {int(r[0]): r for r in await cur.fetchall()}
    hits: list[dict[str, Any]] = []
    for chunk_id, score in ranked:
        row = rows.get(chunk_id)
        if row is None:  # deleted between ranking and fetching
            continue
        hits.append(
            {
                "document_id": row[1],
                "chunk_id": chunk_id,
                "title": row[2],
                "source": row[3],
                "page": row[4],
                "section": row[11],
                "start": row[5],
                "end": row[6],
                "score": round(score, 6),
                "snippet": _snippet(row[10]),
                "metadata": row[7],
                "collection": row[8],
                "type": row[9],
            }
        )
    return hits
