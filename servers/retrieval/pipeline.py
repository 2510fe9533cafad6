"""From a job item to stored chunks: read, extract, chunk, embed (cached), write.

Reading, extracting and chunking run in a worker thread; embeddings are looked up in
`embedding_cache` by the hash of the exact text embedded (per model) and only the
missing ones are computed, in length-sorted batches so little padding is wasted.
Each document is then written in its own transaction (`documents.write_document`).
A file that cannot be ingested fails alone, with its reason.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np

from servers.retrieval.chunking import chunk_document
from servers.retrieval.documents import PreparedChunk, PreparedDocument, write_document
from servers.retrieval.embeddings.base import EmbeddingProvider, Vectors
from servers.retrieval.errors import InputError, PathRefusedError
from servers.retrieval.extract import Extracted, extract_bytes, extract_inline
from servers.retrieval.jobs import Item
from servers.retrieval.paths import check_file, resolve_allowed
from servers.retrieval.vectors import as_array, register_vector

if TYPE_CHECKING:
    from servers.retrieval.catalog import CollectionRow
    from servers.retrieval.service import RetrievalService

__all__ = ["ItemResult", "embed_cached", "prepare_item", "process_items", "search_text", "text_hash"]

logger = logging.getLogger(__name__)

TITLE_CHARS = 200
# Chunks embedded together per wave, in model batches: enough to sort by length.
WAVE_BATCHES = 4


@dataclass(frozen=True, slots=True)
class ItemResult:
    seq: int
    status: str
    outcome: str | None = None
    error: str | None = None
    document_id: str | None = None
    chunks: int = 0


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def search_text(title: str, context: str, text: str) -> str:
    # What is embedded and indexed: the passage with the document title and section
    # above it, so a passage is found by what its document and section are about.
    head = " — ".join(part for part in (title[:TITLE_CHARS], context) if part)
    return f"{head}\n{text}" if head else text


def _prepare(
    extracted: Extracted, provider: EmbeddingProvider, target: int, overlap: int
) -> list[PreparedChunk]:
    target = min(target, provider.max_tokens - 48)
    prepared: list[PreparedChunk] = []
    for chunk in chunk_document(extracted, provider.token_spans, target=target, overlap=overlap):
        text = extracted.text[chunk.start : chunk.end]
        embedded = search_text(extracted.title, chunk.context, text)
        prepared.append(
            PreparedChunk(
                chunk.ord,
                chunk.start,
                chunk.end,
                chunk.page,
                chunk.context,
                text,
                text_hash(embedded),
                embedded,
            )
        )
    return prepared


def _inline_date(metadata: dict[str, Any]) -> datetime | None:
    value = metadata.get("date") or metadata.get("modified_at")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def prepare_item(
    item: Item, service: RetrievalService, provider: EmbeddingProvider, tags: Sequence[str]
) -> PreparedDocument:
    """Read and chunk one item (blocking: run it in a thread). Raises InputError with the reason."""
    config = service.config
    if item.kind == "document":
        payload = item.payload or {}
        text = str(payload.get("text", ""))
        if len(text) > config.max_document_chars:
            raise InputError(
                f"document of {len(text):,} characters exceeds the "
                f"{config.max_document_chars:,}-character limit"
            )
        metadata: dict[str, Any] = dict(payload.get("metadata") or {})
        extracted = extract_inline(text, str(payload.get("title") or ""))
        source = metadata.get("source")
        return PreparedDocument(
            doc_key=str(payload["id"]),
            title=extracted.title,
            source=str(source) if source is not None else None,
            type=extracted.type,
            tags=list(tags),
            metadata=metadata,
            text=extracted.text,
            content_hash=text_hash(extracted.text),
            size_bytes=len(text.encode("utf-8", "surrogatepass")),
            modified_at=_inline_date(metadata),
            chunks=_prepare(extracted, provider, config.chunk_tokens, config.chunk_overlap),
        )
    raw = item.ref.split(":", 1)[1]
    # Checked again here: the roots may have changed, or a link moved, since the job began.
    path = resolve_allowed(raw, service.roots)
    if not path.is_file():
        raise PathRefusedError(f"{raw} is not a regular file")
    check = check_file(path, config.max_file_bytes)
    if check.reason is not None or check.kind is None:
        raise PathRefusedError(check.reason or "unsupported file")
    data = path.read_bytes()
    if len(data) > config.max_file_bytes:
        raise PathRefusedError(f"file grew past the {config.max_file_bytes:,}-byte limit while being read")
    extracted = extract_bytes(data, check.kind)
    stat = path.stat()
    return PreparedDocument(
        doc_key=str(path),
        title=extracted.title or path.stem,
        source=str(path),
        type=extracted.type,
        tags=list(tags),
        metadata={"file_name": path.name},
        text=extracted.text,
        content_hash=text_hash(extracted.text),
        size_bytes=len(data),
        modified_at=datetime.fromtimestamp(stat.st_mtime, UTC),
        page_starts=extracted.page_starts,
        chunks=_prepare(extracted, provider, config.chunk_tokens, config.chunk_overlap),
    )


def _embed_sorted(provider: EmbeddingProvider, texts: list[str], batch: int) -> Vectors:
    """Embed in batches of similar lengths (less padding), results in the input order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), provider.dimension), dtype=np.float32)
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        out[idx] = provider.embed_documents([texts[j] for j in idx])
    return out


async def embed_cached(
    service: RetrievalService, provider: EmbeddingProvider, texts: list[str], hashes: list[str]
) -> Vectors:
    """Vectors of `texts`, from the cache where possible, computing and caching the rest."""
    found: dict[str, Any] = {}
    if not service.config.embedding_cache:
        return await anyio.to_thread.run_sync(_embed_sorted, provider, texts, service.config.embed_batch)
    async with service.database.pool.connection() as conn:
        await register_vector(conn)
        cur = await conn.execute(
            "SELECT text_hash, embedding FROM retrieval.embedding_cache WHERE model = %s AND "
            "text_hash = ANY(%s)",
            (provider.model_id, list(set(hashes))),
        )
        for digest, vector in await cur.fetchall():
            found[digest] = vector
    missing = list(dict.fromkeys(h for h in hashes if h not in found))
    if missing:
        first = {h: t for t, h in zip(texts, hashes, strict=True)}
        vectors = await anyio.to_thread.run_sync(
            _embed_sorted, provider, [first[h] for h in missing], service.config.embed_batch
        )
        async with service.database.pool.connection() as conn:
            await register_vector(conn)
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO retrieval.embedding_cache (model, text_hash, embedding) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    [(provider.model_id, h, v) for h, v in zip(missing, vectors, strict=True)],
                )
        found.update(zip(missing, vectors, strict=True))
    out = np.zeros((len(hashes), provider.dimension), dtype=np.float32)
    for i, h in enumerate(hashes):
        out[i] = as_array(found[h])
    return out


async def process_items(
    service: RetrievalService, collection: CollectionRow, items: Sequence[Item], tags: Sequence[str]
) -> list[ItemResult]:
    """Ingest a batch of claimed items into `collection`; one result per item."""
    provider = await service.provider()
    started = time.perf_counter()
    results: list[ItemResult] = []
    ready: list[tuple[Item, PreparedDocument]] = []
    for item in items:
        try:
            doc = await anyio.to_thread.run_sync(prepare_item, item, service, provider, tags)
        except InputError as exc:
            results.append(ItemResult(item.seq, "failed", error=exc.message))
            continue
        except OSError as exc:
            results.append(
                ItemResult(item.seq, "failed", error=f"cannot read the file ({exc.strerror or exc})")
            )
            continue
        except Exception as exc:  # a parser crashing on a malformed file must not fail the job
            logger.warning("item %s of a job could not be extracted", item.ref, exc_info=True)
            results.append(
                ItemResult(item.seq, "failed", error=f"could not be read: {type(exc).__name__}: {exc}")
            )
            continue
        ready.append((item, doc))
    pending = await _skip_known(service, collection, ready, results)
    prepared_at = time.perf_counter()
    chunks = sum(len(doc.chunks) for _, doc in pending)
    waves = _waves(pending, service.config.embed_batch * WAVE_BATCHES)
    # Embedding (a thread) runs one wave ahead of the writes (the database): the model
    # never waits for PostgreSQL, which is what keeps ingestion close to raw model speed.
    send, receive = anyio.create_memory_object_stream[list[tuple[Item, PreparedDocument]]](1)

    async def embed_waves() -> None:
        async with send:
            for wave in waves:
                texts = [c.search_text for _, doc in wave for c in doc.chunks]
                if texts:
                    vectors = await embed_cached(
                        service, provider, texts, [c.text_hash for _, doc in wave for c in doc.chunks]
                    )
                    offset = 0
                    for _, doc in wave:
                        doc.vectors = vectors[offset : offset + len(doc.chunks)]
                        offset += len(doc.chunks)
                await send.send(wave)

    async with anyio.create_task_group() as tg:
        tg.start_soon(embed_waves)
        async with receive:
            async for wave in receive:
                for item, doc in wave:
                    async with service.database.pool.connection() as conn:
                        written = await write_document(
                            conn, collection.id, doc, model=provider.model_id, dim=provider.dimension
                        )
                    doc.vectors = None  # written: let the memory go
                    results.append(
                        ItemResult(
                            item.seq, "done", written.outcome, None, written.document_id, written.chunks
                        )
                    )
    logger.debug(
        "%d items, %d chunks: prepared in %.3fs, embedded and written in %.3fs",
        len(items),
        chunks,
        prepared_at - started,
        time.perf_counter() - prepared_at,
    )
    return results


def _waves(
    docs: list[tuple[Item, PreparedDocument]], budget: int
) -> list[list[tuple[Item, PreparedDocument]]]:
    """Consecutive groups of documents holding about `budget` chunks each."""
    waves: list[list[tuple[Item, PreparedDocument]]] = [[]]
    size = 0
    for entry in docs:
        if size >= budget:
            waves.append([])
            size = 0
        waves[-1].append(entry)
        size += len(entry[1].chunks)
    return [wave for wave in waves if wave]


async def _skip_known(
    service: RetrievalService,
    collection: CollectionRow,
    ready: list[tuple[Item, PreparedDocument]],
    results: list[ItemResult],
) -> list[tuple[Item, PreparedDocument]]:
    """Settle unchanged documents and duplicates before anything is embedded."""
    if not ready:
        return []
    async with service.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT doc_key, content_hash FROM retrieval.documents WHERE collection_id = %s "
            "AND (doc_key = ANY(%s) OR content_hash = ANY(%s))",
            (collection.id, [d.doc_key for _, d in ready], [d.content_hash for _, d in ready]),
        )
        rows = await cur.fetchall()
    by_key = {str(k): str(h) for k, h in rows}
    by_hash = {str(h): str(k) for k, h in rows}
    pending: list[tuple[Item, PreparedDocument]] = []
    seen: dict[str, str] = {}
    for item, doc in ready:
        twin = by_hash.get(doc.content_hash) or seen.get(doc.content_hash)
        if by_key.get(doc.doc_key) == doc.content_hash:
            # Same content: only the metadata may have changed, written without re-embedding.
            doc.chunks = []
            pending.append((item, doc))
        elif twin is not None and twin != doc.doc_key:
            results.append(ItemResult(item.seq, "done", "duplicate", None, twin, 0))
        else:
            seen[doc.content_hash] = doc.doc_key
            pending.append((item, doc))
    return pending


def file_ref(path: Path) -> str:
    return f"file:{path}"
