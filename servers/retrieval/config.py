"""`RetrievalConfig`: the retrieval server's own settings.

Read once, from `BASTION_RETRIEVAL_*` environment variables, when the server first
needs them; every field has a working default. List values accept JSON
(`["/srv/docs", "/data"]`) or a `:`-separated list of paths.

    BASTION_RETRIEVAL_ALLOWED_ROOTS     folders ingestion may read (default $BASTION_HOME/uploads)
    BASTION_RETRIEVAL_MAX_FILE_BYTES    largest file accepted (default 50 MB)
    BASTION_RETRIEVAL_EMBEDDING         `onnx` (MiniLM, offline) or `ollama`
    BASTION_RETRIEVAL_OLLAMA_URL / _OLLAMA_MODEL   where and which Ollama model embeds
    BASTION_RETRIEVAL_FUSION            `rrf` or `weighted` (hybrid score fusion)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bastion.errors import ConfigError
from bastion.settings import Settings

__all__ = ["RetrievalConfig"]

ENV_PREFIX = "BASTION_RETRIEVAL_"


class RetrievalConfig(BaseSettings):
    """Limits, models and tuning of the retrieval server."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", validate_default=True)

    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list[Path],
        description="folders whose files may be ingested; empty means $BASTION_HOME/uploads",
    )
    max_file_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="largest file accepted")
    max_document_chars: int = Field(default=5_000_000, ge=1, description="largest inline document")
    max_documents_per_call: int = Field(default=10_000, ge=1)
    max_files_per_job: int = Field(default=100_000, ge=1)
    max_query_chars: int = Field(default=2_000, ge=10, description="longest query accepted")
    max_k: int = Field(default=200, ge=1, le=1000)

    chunk_tokens: int = Field(default=200, ge=16, le=512, description="target chunk size in model tokens")
    chunk_overlap: int = Field(default=32, ge=0, le=256, description="overlap between chunks in tokens")

    embedding: Literal["onnx", "ollama"] = "onnx"
    onnx_model_path: Path | None = Field(default=None, description="override the packaged ONNX file")
    tokenizer_path: Path | None = Field(default=None, description="override the packaged tokenizer.json")
    onnx_threads: int = Field(default=0, ge=0, le=64, description="0 lets onnxruntime choose")
    ollama_url: str = "http://127.0.0.1:11434"
    ollama_model: str = "nomic-embed-text"
    embed_batch: int = Field(
        default=8, ge=1, le=512, description="texts per model call (memory grows with it)"
    )
    embedding_cache: bool = Field(
        default=True, description="reuse vectors of identical text (by content hash)"
    )

    fusion: Literal["rrf", "weighted"] = "weighted"
    rrf_k: int = Field(default=10, ge=1, description="RRF constant (tuned on SciFact train)")
    keyword_weight: float = Field(
        default=0.65, ge=0, le=1, description="share of BM25 in weighted fusion (tuned)"
    )
    candidates: int = Field(
        default=100, ge=10, le=2000, description="hits taken from each side before fusion"
    )
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    hnsw_ef_search: int = Field(default=100, ge=10, le=1000)
    cache_ttl: float = Field(default=300, gt=0, description="seconds a cached search result lives")
    postings_cache_mb: int = Field(
        default=256,
        ge=0,
        description="memory for BM25 posting lists kept in the server process (0: BM25 summed in PostgreSQL)",
    )

    worker: bool = Field(default=True, description="run an ingestion worker inside the server process")
    job_lease: float = Field(
        default=120, gt=0, description="seconds a worker holds a job before it is retried"
    )
    job_slice: float = Field(default=60, gt=0, description="seconds of work before a job is re-queued")
    items_per_batch: int = Field(default=64, ge=1, le=1000, description="job items a worker embeds together")
    worker_idle_poll: float = Field(default=2.0, gt=0, description="seconds between empty-queue checks")

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(":") if part]
        return value

    @classmethod
    def load(cls, **overrides: Any) -> RetrievalConfig:
        """Read the environment once; a bad value names the variable and what is allowed."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigError(f"invalid retrieval settings: {problems}.") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{ENV_PREFIX}ALLOWED_ROOTS is not valid JSON ({exc}).") from None

    def roots(self, settings: Settings) -> list[Path]:
        """The allowed roots, resolved; the instance's uploads folder when none is set."""
        roots = self.allowed_roots or [settings.home / "uploads"]
        return [root.expanduser().resolve() for root in roots]
