"""Text sides of the ranking: knowledge entries in the model's joint text space (cached),
and a TF-IDF index of the entries for matching clinical history text.

The joint-space embeddings cost one `encode_text` pass over every entry's feature
sentences; they are cached in memory and on disk (outside git), keyed by the model version
and the knowledge hash, so a changed model or knowledge base never reuses stale vectors.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..cache import cache_root
from .knowledge_view import Entry, KnowledgeView
from .tfidf import TfidfIndex


def cache_dir() -> Path:
    return cache_root()


def entry_sentences(entry: Entry) -> list[str]:
    """What an image of this diagnosis would be captioned like."""
    sentences = [f"{entry.name_en}.", *entry.features_en]
    return [s for s in sentences if s.strip()]


def entry_document(entry: Entry) -> str:
    """The words a clinical history of this diagnosis tends to share with it."""
    return " ".join([
        entry.name_en, *entry.synonyms, *entry.history_keywords, *entry.history_keywords,
        *entry.features_en,
    ])


_MEMORY: dict[str, np.ndarray] = {}


def model_key(model) -> str:
    """The model version plus the weights file's identity: a retrained bundle that kept its
    version string must not reuse cached vectors."""
    version = re.sub(r"[^A-Za-z0-9._-]+", "_", str(getattr(model, "version", "unknown")))
    weights_dir = getattr(model, "weights_dir", None)
    if weights_dir is not None:
        path = Path(weights_dir) / "models" / "model.pt"
        try:
            stat = path.stat()
            ident = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
            version += "_" + hashlib.sha1(ident.encode()).hexdigest()[:8]
        except OSError:
            pass
    return version


def entry_embeddings(view: KnowledgeView, model) -> np.ndarray:
    """(n_entries, D) L2-normalised: the mean of each entry's sentence embeddings."""
    key = f"{model_key(model)}_{view.knowledge_hash}"
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"ddx_text_{key}.npy"
    if path.is_file():
        try:
            matrix = np.load(path)
            if matrix.shape[0] == len(view.entries):
                _MEMORY[key] = matrix
                return matrix
        except (OSError, ValueError):
            pass
    sentences, owners = [], []
    for i, entry in enumerate(view.entries):
        for sentence in entry_sentences(entry):
            sentences.append(sentence)
            owners.append(i)
    vectors = np.asarray(model.encode_text(sentences), dtype=np.float32)
    matrix = np.zeros((len(view.entries), vectors.shape[1]), dtype=np.float32)
    np.add.at(matrix, np.asarray(owners), vectors)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-8)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, matrix)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs recomputation
    _MEMORY[key] = matrix
    return matrix


class HistoryIndex:
    """TF-IDF over the entries' names, synonyms, history keywords and features."""

    def __init__(self, view: KnowledgeView) -> None:
        self.index = TfidfIndex([entry_document(e) for e in view.entries])

    def similarity(self, text: str) -> np.ndarray:
        return self.index.similarity(text)


@lru_cache(maxsize=4)
def history_index(view: KnowledgeView) -> HistoryIndex:
    return HistoryIndex(view)


