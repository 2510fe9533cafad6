"""The SQL rankers: BM25 equals the textbook formula; vector search finds the nearest chunks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servers.retrieval import ranking
from servers.retrieval.postings import PostingList, PostingLists
from servers.retrieval.ranking import DocumentFrequencies, keyword_ranking, vector_ranking
from tests.servers.retrieval.conftest import Retrieval

DOCS = [
    {"id": "1", "text": "The heart pumps blood. Blood carries oxygen to every organ of the body."},
    {"id": "2", "text": "Oxygen therapy helps patients with lung disease breathe."},
    {
        "id": "3",
        "text": "Plants release oxygen. Plants also store carbon in wood and roots, and blood is not "
        "involved.",
    },
    {"id": "4", "text": "Stock markets rose sharply on Tuesday."},
]


async def test_keyword_scores_are_bm25_over_english_lexemes(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=DOCS)
    query = "blood oxygen organs"
    async with retrieval.service.database.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, chunk_count, total_length, version FROM retrieval.collections WHERE name = %s",
            (collection,),
        )
        row = await cur.fetchone()
        assert row is not None
        cid, n, total, version = row
        cur = await conn.execute("SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %s))", (query,))
        terms = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT chunk_id, lexeme, tf, dl FROM retrieval.postings WHERE collection_id = %s", (cid,)
        )
        postings = await cur.fetchall()
        frequencies = DocumentFrequencies()
        ranked = await keyword_ranking(
            conn, query, [(cid, version)], None, limit=10, k1=1.2, b=0.75, frequencies=frequencies
        )
        # The second time, the document frequencies come from the cache: same ranking.
        again = await keyword_ranking(
            conn, query, [(cid, version)], None, limit=10, k1=1.2, b=0.75, frequencies=frequencies
        )
        # Split across two connections by chunk-id range: the same ranking.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ranking, "SPLIT_POSTINGS", 1)
            split = await keyword_ranking(
                conn,
                query,
                [(cid, version)],
                None,
                limit=10,
                k1=1.2,
                b=0.75,
                pool=retrieval.service.database.pool,
            )
        # Summed in this process over posting lists read once, then kept: the same ranking.
        kept = PostingLists(1 << 20)
        in_process = await keyword_ranking(
            conn, query, [(cid, version)], None, limit=10, k1=1.2, b=0.75, postings=kept
        )
        assert len(kept) == len(terms)
        in_process_again = await keyword_ranking(
            conn, query, [(cid, version)], None, limit=10, k1=1.2, b=0.75, postings=kept
        )
    remembered = frequencies.known(((cid, version),), terms)
    assert {t: st.df for t, st in remembered.items()} == {
        t: float(sum(1 for p in postings if p[1] == t)) for t in terms
    }
    assert again == ranked
    assert split == ranked
    assert in_process_again == in_process
    assert [c for c, _ in in_process] == [c for c, _ in ranked]
    for (_, mine), (_, theirs) in zip(in_process, ranked, strict=True):
        assert math.isclose(mine, theirs, rel_tol=1e-12)
    avgdl = total / n
    df = {t: sum(1 for p in postings if p[1] == t) for t in terms}
    expected: dict[int, float] = {}
    for chunk_id, lexeme, tf, dl in postings:
        if lexeme in df:
            idf = math.log(1 + (n - df[lexeme] + 0.5) / (df[lexeme] + 0.5))
            expected[chunk_id] = expected.get(chunk_id, 0.0) + idf * tf * 2.2 / (
                tf + 1.2 * (0.25 + 0.75 * dl / avgdl)
            )
    assert [c for c, _ in ranked] == sorted(expected, key=lambda c: -expected[c])
    for chunk_id, score in ranked:
        assert math.isclose(score, expected[chunk_id], rel_tol=1e-9)


async def test_a_query_of_stopwords_matches_nothing_by_keywords(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=DOCS)
    found = await retrieval.call(
        "search", {"query": "the and of", "collection": collection, "mode": "keyword"}
    )
    assert found["results"] == []


async def test_vector_search_ranks_by_cosine_similarity(retrieval: Retrieval) -> None:
    collection = retrieval.collection()
    await retrieval.ingest(collection, documents=DOCS)
    provider = await retrieval.service.provider()
    query = provider.embed_query("financial news about shares")
    async with retrieval.service.database.pool.connection() as conn:
        cur = await conn.execute("SELECT id FROM retrieval.collections WHERE name = %s", (collection,))
        row = await cur.fetchone()
        assert row is not None
        ranked = await vector_ranking(
            conn, query, [row[0]], None, model=provider.model_id, limit=4, ef_search=40
        )
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and len(ranked) == 4
    hits = await retrieval.call(
        "search", {"query": "financial news about shares", "collection": collection, "mode": "vector", "k": 1}
    )
    assert hits["results"][0]["document_id"] == "4"


async def test_kept_posting_lists_follow_every_write(retrieval: Retrieval) -> None:
    """A write bumps the collection's version: the next search reads fresh lists and ranks
    exactly as BM25 in SQL does, over one collection or several."""
    first, second = retrieval.collection(), retrieval.collection()
    await retrieval.ingest(first, documents=DOCS)
    await retrieval.ingest(second, documents=[{"id": "9", "text": "Blood banks store oxygen-rich blood."}])
    query = "oxygen blood plants"
    assert retrieval.service.postings is not None

    async def both() -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        async with retrieval.service.database.pool.connection() as conn:
            cur = await conn.execute(
                "SELECT id, version FROM retrieval.collections WHERE name = ANY(%s) ORDER BY id",
                ([first, second],),
            )
            scope = [(int(r[0]), int(r[1])) for r in await cur.fetchall()]
            kept = await keyword_ranking(
                conn, query, scope, None, limit=20, k1=1.2, b=0.75, postings=retrieval.service.postings
            )
            in_sql = await keyword_ranking(conn, query, scope, None, limit=20, k1=1.2, b=0.75)
        return kept, in_sql

    def same(kept: list[tuple[int, float]], in_sql: list[tuple[int, float]]) -> None:
        assert [c for c, _ in kept] == [c for c, _ in in_sql]
        for (_, mine), (_, theirs) in zip(kept, in_sql, strict=True):
            assert math.isclose(mine, theirs, rel_tol=1e-12)

    kept, in_sql = await both()
    same(kept, in_sql)
    assert len(kept) == 4  # documents 1, 2, 3 and 9
    # Document 2 now says nothing of oxygen; document 5 is new: both show at once.
    await retrieval.ingest(
        first,
        documents=[
            {"id": "2", "text": "Lung disease is treated in hospital."},
            {"id": "5", "text": "Oxygen, oxygen everywhere: plants make it."},
        ],
    )
    kept, in_sql = await both()
    same(kept, in_sql)
    assert len(kept) == 4  # 1, 3, 5 and 9
    hits = await retrieval.call(
        "search", {"query": query, "collections": [first, second], "mode": "keyword", "k": 10}
    )
    assert [h["chunk_id"] for h in hits["results"]] == [c for c, _ in kept]
    assert {h["document_id"] for h in hits["results"]} == {"1", "3", "5", "9"}


def test_posting_lists_stay_within_their_memory_budget() -> None:
    def lists(n: int) -> PostingList:
        return PostingList(np.arange(n, dtype=np.int64), np.ones(n, np.int32), np.full(n, 10, np.int32))

    one = lists(1000)
    kept = PostingLists(3 * one.nbytes)
    for i in range(5):
        kept.put((1, 1, f"term{i}"), lists(1000))
        assert kept.bytes <= kept.max_bytes
    # The least recently used went first; reading a list makes it recent again.
    assert kept.get((1, 1, "term0")) is None and kept.get((1, 1, "term1")) is None
    assert kept.get((1, 1, "term2")) is not None
    kept.put((1, 1, "term5"), lists(1000))
    assert kept.get((1, 1, "term2")) is not None and kept.get((1, 1, "term3")) is None
    # A list larger than the whole budget is not kept.
    kept.put((1, 1, "huge"), lists(10_000))
    assert kept.get((1, 1, "huge")) is None and len(kept) == 3


def test_posting_arrays_are_read_from_postgresqls_binary_format() -> None:
    import struct

    from servers.retrieval.postings import _array  # pyright: ignore[reportPrivateUsage]

    def binary(values: list[int], *, ndim: int = 1, nulls: int = 0, width: int = 4) -> bytes:
        head = struct.pack(">iiiii", ndim, nulls, 23 if width == 4 else 20, len(values), 1)
        code = ">ii" if width == 4 else ">iq"
        return head + b"".join(struct.pack(code, width, v) for v in values)

    assert _array(binary([3, 1, 2]), 4).tolist() == [3, 1, 2]
    assert _array(binary([2**40, 7], width=8), 8).tolist() == [2**40, 7]
    with pytest.raises(ValueError, match="one-dimensional"):
        _array(binary([1], ndim=2), 4)
    with pytest.raises(ValueError, match="NULLs"):
        _array(binary([1], nulls=1), 4)
    with pytest.raises(ValueError, match="element sizes"):
        _array(binary([1, 2], width=8), 4)
