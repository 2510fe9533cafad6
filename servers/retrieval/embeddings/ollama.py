"""Embeddings from an Ollama server (`/api/embed`), for example `nomic-embed-text`.

The dimension is learnt from the first answer. nomic-embed-text expects task prefixes
(`search_document: ` / `search_query: `); they are added for models named `nomic*`.
Chunk sizes are measured with a word-level approximation of the model's tokenizer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from servers.retrieval.embeddings.base import EmbeddingProvider, Vectors, approximate_token_spans, normalise
from servers.retrieval.errors import RetrievalError

__all__ = ["OllamaProvider"]

logger = logging.getLogger(__name__)


class OllamaProvider(EmbeddingProvider):
    """An embedding model served by Ollama."""

    max_tokens = 2048

    def __init__(self, url: str, model: str, *, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.model_id = f"ollama:{model}"
        self._client = httpx.Client(base_url=self.url, timeout=timeout)
        self._prefixed = model.startswith("nomic")
        self.dimension = len(self._embed(["dimension probe"])[0])

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return approximate_token_spans(text)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        prefix = "search_document: " if self._prefixed else ""
        return self._embed([prefix + t for t in texts])

    def embed_query(self, text: str) -> Vectors:
        prefix = "search_query: " if self._prefixed else ""
        return self._embed([prefix + text])[0]

    def close(self) -> None:
        self._client.close()

    def _embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, getattr(self, "dimension", 0)), dtype=np.float32)
        try:
            response = self._client.post("/api/embed", json={"model": self.model, "input": texts})
        except httpx.HTTPError as exc:
            raise RetrievalError(
                f"cannot reach Ollama at {self.url} ({exc}). Start it (`ollama serve`) or set "
                "BASTION_RETRIEVAL_EMBEDDING=onnx to embed offline."
            ) from None
        if response.status_code != 200:
            raise RetrievalError(
                f"Ollama at {self.url} refused to embed with {self.model!r} "
                f"({response.status_code}: {response.text[:200]}). Pull it with `ollama pull {self.model}`."
            )
        body: Any = response.json()
        vectors = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(texts):
            raise RetrievalError(f"Ollama at {self.url} answered without embeddings for {len(texts)} inputs")
        return normalise(np.asarray(vectors, dtype=np.float32))
