"""`EmbeddingProvider`: what the retrieval server needs from an embedding model.

Providers are synchronous and CPU- or I/O-bound; callers run them off the event loop
(`anyio.to_thread.run_sync`). Vectors come back L2-normalised as a float32 array of
shape (n, dimension), so cosine similarity is a dot product.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["EmbeddingProvider", "Vectors", "approximate_token_spans"]

Vectors = npt.NDArray[np.float32]

_WORDISH = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def approximate_token_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of word and punctuation tokens: a tokenizer-free stand-in."""
    return [(m.start(), m.end()) for m in _WORDISH.finditer(text)]


class EmbeddingProvider(ABC):
    """An embedding model: its identity, its tokenizer's spans, and batch embedding."""

    #: Recorded on every collection and chunk; a change of model re-embeds.
    model_id: str
    #: Length of the vectors.
    dimension: int
    #: Longest input the model reads, in its tokens; chunks stay below it.
    max_tokens: int

    @abstractmethod
    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """The character span of every model token of `text` (special tokens excluded)."""

    @abstractmethod
    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors of passages to store."""

    def embed_query(self, text: str) -> Vectors:
        """The vector of one search query, shape (dimension,)."""
        return self.embed_documents([text])[0]

    def close(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release sessions or clients."""


def normalise(vectors: npt.NDArray[np.floating]) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)
