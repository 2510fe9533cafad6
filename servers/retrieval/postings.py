"""BM25 summed in the server process over posting lists it keeps in memory.

At 100k chunks most of a keyword query's time in PostgreSQL goes into walking and
aggregating the postings of its common lexemes (tens of thousands of rows each). Those
lists only change when their collection does, so the server keeps them, as numpy
arrays, per collection version: a lexeme's postings are read from PostgreSQL once
(as binary arrays, parsed without a Python object per posting), and every later query that uses
the lexeme sums BM25 over the arrays. Every write bumps the collection's `version`,
which is part of the key, so a stale list is never used. Memory is bounded
(`postings_cache_mb`); the least recently used lists go first.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from psycopg import AsyncConnection

__all__ = ["PostingList", "PostingLists", "bm25_top", "read_postings"]


@dataclass(frozen=True)
class PostingList:
    """One lexeme's postings in one collection: chunk ids with term frequency and chunk length."""

    chunk_ids: NDArray[np.int64]
    tf: NDArray[np.int32]
    dl: NDArray[np.int32]

    @property
    def nbytes(self) -> int:
        return int(self.chunk_ids.nbytes + self.tf.nbytes + self.dl.nbytes) + 200  # + object overhead


_EMPTY = PostingList(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int32))

Key = tuple[int, int, str]
"""(collection id, collection version, lexeme)."""


class PostingLists:
    """Posting lists kept per collection version, least recently used evicted past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._lists: OrderedDict[Key, PostingList] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lists)

    def get(self, key: Key) -> PostingList | None:
        found = self._lists.get(key)
        if found is not None:
            self._lists.move_to_end(key)
        return found

    def put(self, key: Key, postings: PostingList) -> None:
        size = postings.nbytes
        if size > self.max_bytes:
            return  # larger than the whole budget: read it each time instead
        old = self._lists.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
        self._lists[key] = postings
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._lists.popitem(last=False)
            self.bytes -= evicted.nbytes


# Per (collection, lexeme), one row of three arrays in index order, each in PostgreSQL's
# binary array format (`array_send`): the whole list crosses as three byte strings that
# numpy reads in place, instead of one protocol message and Python object per posting
# (a binary COPY of 83k postings took 100 ms here, this 18 ms).
_READ = """
SELECT c.id, q.ord::int4, a.ids, a.tfs, a.dls
FROM unnest(%(lexemes)s::text[]) WITH ORDINALITY AS q(lexeme, ord)
CROSS JOIN unnest(%(cols)s::bigint[]) AS c(id)
CROSS JOIN LATERAL (
    SELECT array_send(array_agg(p.chunk_id)) AS ids, array_send(array_agg(p.tf)) AS tfs,
           array_send(array_agg(p.dl)) AS dls
    FROM retrieval.postings p WHERE p.collection_id = c.id AND p.lexeme = q.lexeme
) a
"""

_ARRAY_HEADER = struct.Struct(">iiiii")  # ndim, has nulls, element type, length, lower bound


def _array(data: bytes, width: int) -> NDArray[Any]:
    """A one-dimensional int4 or int8 array without NULLs, from PostgreSQL's binary format."""
    ndim, nulls, _, length, _ = _ARRAY_HEADER.unpack_from(data)
    if ndim != 1 or nulls:
        raise ValueError("unexpected posting array: not one-dimensional, or with NULLs")
    code = ">i8" if width == 8 else ">i4"
    items = np.frombuffer(data, dtype=[("len", ">i4"), ("value", code)], offset=_ARRAY_HEADER.size)
    if items.size != length or (items["len"] != width).any():
        raise ValueError("unexpected posting array: element sizes do not match its type")
    return items["value"]


async def read_postings(
    conn: AsyncConnection[Any], collection_ids: Sequence[int], lexemes: Sequence[str]
) -> dict[tuple[int, str], PostingList]:
    """Every posting of `lexemes` in each collection, in one round trip.

    Each (collection, lexeme) pair asked for is in the answer, empty when it has no postings."""
    found: dict[tuple[int, str], PostingList] = {}
    async with conn.cursor(binary=True) as cur:
        await cur.execute(_READ, {"lexemes": list(lexemes), "cols": list(collection_ids)})
        for cid, ord_, ids, tfs, dls in await cur.fetchall():
            key = (int(cid), lexemes[int(ord_) - 1])
            if ids is None:  # no postings: array_agg of nothing is NULL
                found[key] = _EMPTY
                continue
            tf, dl = _array(tfs, 4).astype(np.int32), _array(dls, 4).astype(np.int32)
            found[key] = PostingList(_array(ids, 8).astype(np.int64), tf, dl)
    return found


# A dense score array over the chunk-id range is fastest while the range is not much larger
# than the postings; past this factor, ids are first mapped to a compact range.
_DENSE_FACTOR = 8


def bm25_top(
    postings: Sequence[Sequence[PostingList]],
    *,
    chunk_count: float,
    avg_length: float,
    k1: float,
    b: float,
    limit: int,
) -> list[tuple[int, float]]:
    """(chunk id, BM25 score) of the best `limit` chunks, best first (ties by chunk id).

    `postings` holds, per query lexeme, its lists in each searched collection; the same
    formula as the SQL ranker (Robertson-Sparck Jones IDF, `ln(1 + (N - df + 0.5) / (df + 0.5))`)."""
    ids_parts: list[NDArray[np.int64]] = []
    weight_parts: list[NDArray[np.float64]] = []
    n = max(chunk_count, 1.0)
    c0 = k1 * (1 - b)
    c1 = k1 * b / max(avg_length, 1e-9)
    for lists in postings:
        df = float(sum(len(p.chunk_ids) for p in lists))
        if df == 0:
            continue
        idf = np.log(1 + (n - df + 0.5) / (df + 0.5)) * (k1 + 1)
        for p in lists:
            if not len(p.chunk_ids):
                continue
            tf = p.tf.astype(np.float64)
            ids_parts.append(p.chunk_ids)
            weight_parts.append(idf * tf / (tf + c0 + c1 * p.dl))
    if not ids_parts:
        return []
    ids = np.concatenate(ids_parts)
    weights = np.concatenate(weight_parts)
    low, high = int(ids.min()), int(ids.max())
    if high - low + 1 <= _DENSE_FACTOR * ids.size:
        scores = np.bincount(ids - low, weights=weights, minlength=high - low + 1)
        present = np.bincount(ids - low, minlength=high - low + 1) > 0
        candidates = np.flatnonzero(present)
        candidate_ids = candidates + low
        candidate_scores = scores[candidates]
    else:
        candidate_ids, inverse = np.unique(ids, return_inverse=True)
        candidate_scores = np.bincount(inverse, weights=weights)
    if candidate_ids.size > limit:
        # Everything scoring at least the limit-th best, so ties at the cut keep the lowest ids.
        threshold = np.partition(candidate_scores, candidate_ids.size - limit)[candidate_ids.size - limit]
        keep = candidate_scores >= threshold
        candidate_ids = candidate_ids[keep]
        candidate_scores = candidate_scores[keep]
    order = np.lexsort((candidate_ids, -candidate_scores))[:limit]
    return [(int(i), float(s)) for i, s in zip(candidate_ids[order], candidate_scores[order], strict=True)]
