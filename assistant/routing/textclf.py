"""A linear classifier on sentence embeddings: train, save, load, predict, measure.

The intent router and the complaint classifier both use it. Features are the project's
unit-length sentence embeddings, optionally beside TF-IDF blocks (words, characters) with a
fixed, chi-squared-selected vocabulary; the model is a multinomial logistic regression. A model
file is a plain `.npz` (weights, labels, vocabularies, JSON metadata), loaded with
`allow_pickle=False`: a few kilobytes for six intents, ~120 KB for 77, and loading takes
milliseconds."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

FORMAT = "meadow-embedding-classifier/1"
C_GRID = (1.0, 4.0, 16.0)


class DataError(ValueError):
    """A data file the classifier cannot use, with a message for the user."""


@dataclass
class TfidfBlock:
    """TF-IDF features over a fixed vocabulary (words or character n-grams), l2-normalised."""

    analyzer: str  # "word" | "char_wb"
    ngram_range: tuple[int, int]
    vocabulary: list[str]
    idf: np.ndarray

    @cached_property
    def vectorizer(self):
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(analyzer=self.analyzer, ngram_range=tuple(self.ngram_range), sublinear_tf=True,
                              vocabulary=self.vocabulary)
        vec.idf_ = self.idf
        return vec

    def transform(self, texts: Sequence[str]):
        return self.vectorizer.transform(list(texts))

    def spec(self) -> dict[str, Any]:
        return {"analyzer": self.analyzer, "ngram_range": list(self.ngram_range)}


@dataclass
class EmbeddingClassifier:
    labels: list[str]
    coef: np.ndarray  # (n_labels, sum of the TF-IDF blocks' sizes + embedding dim)
    intercept: np.ndarray  # (n_labels,)
    meta: dict[str, Any] = field(default_factory=dict)
    blocks: list[TfidfBlock] = field(default_factory=list)  # features before the embedding, in order

    @property
    def needs_texts(self) -> bool:
        return bool(self.blocks)

    def features(self, vectors: np.ndarray, texts: Sequence[str] | None = None):
        vectors = np.atleast_2d(vectors)
        if not self.blocks:
            return vectors
        if texts is None or len(texts) != len(vectors):
            raise ValueError("this model reads the texts too: pass them with the embeddings")
        from scipy import sparse

        return sparse.hstack([b.transform(texts) for b in self.blocks] + [sparse.csr_matrix(vectors)]).tocsr()

    def proba(self, vectors: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        logits = np.asarray(self.features(vectors, texts) @ self.coef.T) + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, vectors: np.ndarray, texts: Sequence[str] | None = None) -> list[str]:
        return [self.labels[i] for i in self.proba(vectors, texts).argmax(axis=1)]

    def scores(self, vector: np.ndarray, text: str | None = None) -> dict[str, float]:
        probs = self.proba(vector, None if text is None else [text])[0]
        return {label: float(p) for label, p in zip(self.labels, probs)}

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, **self.meta, "blocks": [b.spec() for b in self.blocks]}
        arrays: dict[str, np.ndarray] = {}
        for i, b in enumerate(self.blocks):
            arrays[f"block{i}_vocabulary"] = np.array(b.vocabulary, dtype=str)
            arrays[f"block{i}_idf"] = b.idf.astype(np.float32)
        with path.open("wb") as f:  # np.savez would append ".npz" to a name without it
            np.savez_compressed(f, coef=self.coef.astype(np.float32), intercept=self.intercept.astype(np.float32),
                                labels=np.array(self.labels, dtype=str), meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> "EmbeddingClassifier":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"model file {path} not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                blocks = [TfidfBlock(analyzer=spec["analyzer"], ngram_range=tuple(spec["ngram_range"]),
                                     vocabulary=[str(x) for x in data[f"block{i}_vocabulary"]],
                                     idf=data[f"block{i}_idf"].astype(np.float64))
                          for i, spec in enumerate(meta.pop("blocks", []))]
                model = cls(labels=[str(x) for x in data["labels"]], coef=data["coef"], intercept=data["intercept"],
                            meta=meta, blocks=blocks)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path} is not a classifier model file ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise DataError(f"{path}: unknown model format {meta.get('format')!r}")
        return model


# --- training ------------------------------------------------------------------------------------

def fit(vectors: np.ndarray, labels: Sequence[str], c: float = 4.0, class_weight: str | None = "balanced",
        sample_weight: np.ndarray | None = None, texts: Sequence[str] | None = None,
        vocabulary_size: int = 0) -> EmbeddingClassifier:
    """Logistic regression on the embeddings; with `vocabulary_size`, also on word and character
    TF-IDF blocks of that many chi-squared-selected terms each (needs `texts`)."""
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(labels))
    if len(classes) < 2:
        raise DataError("training needs at least two different labels")
    blocks = tfidf_blocks(texts, labels, vocabulary_size) if vocabulary_size else []
    model = EmbeddingClassifier(labels=[], coef=np.zeros(0), intercept=np.zeros(0), blocks=blocks)
    clf = LogisticRegression(C=c, max_iter=5000, class_weight=class_weight)
    clf.fit(model.features(vectors, texts), list(labels), sample_weight=sample_weight)
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # sklearn keeps one row for two classes: sigmoid(z) == softmax([0, z])
        coef = np.vstack([np.zeros_like(coef[0]), coef[0]])
        intercept = np.array([0.0, intercept[0]])
    model.labels = [str(c_) for c_ in clf.classes_]
    model.coef, model.intercept = coef.astype(np.float32), intercept.astype(np.float32)
    model.meta = {"C": c, "class_weight": class_weight, "vocabulary_size": vocabulary_size}
    return model


TFIDF_BLOCKS = (("word", (1, 2), 2), ("char_wb", (2, 5), 3))  # analyzer, n-grams, min document frequency


def tfidf_blocks(texts: Sequence[str] | None, labels: Sequence[str], size: int) -> list[TfidfBlock]:
    """Word and character TF-IDF blocks, each keeping the `size` terms most tied to the labels (chi2)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.feature_selection import chi2

    if texts is None:
        raise ValueError("TF-IDF features need the texts")
    blocks = []
    for analyzer, ngrams, min_df in TFIDF_BLOCKS:
        vec = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True,
                              min_df=min(min_df, max(1, len(texts) // 10)))
        matrix = vec.fit_transform(list(texts))
        score = np.nan_to_num(chi2(matrix, list(labels))[0])
        keep = np.sort(np.argsort(-score, kind="stable")[:size])
        vocabulary = [str(t) for t in vec.get_feature_names_out()[keep]]
        blocks.append(TfidfBlock(analyzer=analyzer, ngram_range=ngrams, vocabulary=vocabulary,
                                 idf=vec.idf_[keep].astype(np.float64)))
    return blocks


def fit_with_validation(vectors: np.ndarray, labels: Sequence[str], keys: Sequence[str], val_percent: int = 10,
                        c_grid: Sequence[float] = C_GRID, class_weight: str | None = "balanced",
                        sample_weight: np.ndarray | None = None, texts: Sequence[str] | None = None,
                        vocabulary_size: int = 0) -> tuple[EmbeddingClassifier, dict[str, Any]]:
    """Pick C on a validation split (by a hash of each key), then refit on everything."""
    labels = np.asarray(labels)
    weights = np.ones(len(labels)) if sample_weight is None else np.asarray(sample_weight)
    texts_ = None if texts is None else np.asarray(list(texts), dtype=object)
    val = np.array([in_holdout(k, val_percent, salt="val") for k in keys])
    report: dict[str, Any] = {"n_train": int((~val).sum()), "n_val": int(val.sum()), "grid": {}}
    best_c = c_grid[0]
    if val.any() and len(set(labels[~val])) >= 2:
        best = -1.0
        for c in c_grid:
            part = None if texts_ is None else list(texts_[~val])
            model = fit(vectors[~val], labels[~val], c, class_weight, weights[~val], part, vocabulary_size)
            score = metrics(labels[val], model.predict(vectors[val], None if texts_ is None else list(texts_[val])))
            report["grid"][str(c)] = score
            if score["macro_f1"] > best:
                best, best_c = score["macro_f1"], c
        report["val"] = report["grid"][str(best_c)]
    report["C"] = best_c
    return fit(vectors, labels, best_c, class_weight, weights, texts, vocabulary_size), report


def metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    if not len(truth):
        return {"n": 0, "accuracy": 0.0, "macro_f1": 0.0}
    return {"n": len(truth), "accuracy": round(float(accuracy_score(truth, predicted)), 4),
            "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4)}


def in_holdout(key: str, percent: int, salt: str = "meadow") -> bool:
    """A stable split: the same key always lands on the same side."""
    digest = hashlib.sha256(f"{salt}|{key.strip().lower()}".encode()).hexdigest()
    return int(digest, 16) % 100 < percent


# --- data ----------------------------------------------------------------------------------------

def read_labelled(path: Path, text_col: str = "text", label_col: str = "label") -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV or JSON-lines file; rows with an empty text or label are skipped."""
    rows = read_rows(path)
    if rows and (text_col not in rows[0] or label_col not in rows[0]):
        raise DataError(f"{path}: needs columns {text_col!r} and {label_col!r}; it has {sorted(rows[0])} "
                        "(choose them with --text-col / --label-col)")
    pairs = [(str(r[text_col]).strip(), str(r[label_col]).strip()) for r in rows
             if r.get(text_col) not in (None, "") and r.get(label_col) not in (None, "")]
    if not pairs:
        raise DataError(f"{path}: no labelled rows")
    texts, labels = zip(*pairs)
    return list(texts), list(labels)


def read_rows(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} not found")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        with path.open(newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read it as {'JSON lines' if path.suffix == '.jsonl' else 'CSV'} ({exc})") from exc


# --- embeddings, cached on disk --------------------------------------------------------------------

class CachedEmbedder:
    """Embeds lists of texts, keeping each list's vectors in `cache_dir` (keyed by the model name
    and the texts) so that evaluating or retraining on the same data does not embed it again."""

    def __init__(self, embedder: Any, model_name: str, cache_dir: Path | None = None):
        self.embedder, self.model_name, self.cache_dir = embedder, model_name, cache_dir

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        from assistant.knowledge.embeddings import embed

        texts = list(texts)
        path = self._path(texts)
        if path is not None and path.is_file():
            return np.load(path, allow_pickle=False)
        started = time.perf_counter()
        vectors = embed(self.embedder, texts) if texts else np.zeros((0, self.dim), dtype=np.float32)
        log.info("embedded %d texts in %.1f s", len(texts), time.perf_counter() - started)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as f:
                np.save(f, vectors)
            tmp.replace(path)
        return vectors

    @property
    def dim(self) -> int:
        return int(self.embedder.get_sentence_embedding_dimension())

    def _path(self, texts: list[str]) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256("\x1e".join([self.model_name, *texts]).encode()).hexdigest()[:32]
        return Path(self.cache_dir) / f"{digest}.npy"


def embed_long(embed: Callable[[Sequence[str]], np.ndarray], texts: Sequence[str], words: int = 180,
               max_chunks: int = 6) -> np.ndarray:
    """One vector per text, the mean of its chunks' embeddings: the model reads 256 tokens at most,
    and a complaint narrative is often longer."""
    chunks: list[str] = []
    owner: list[int] = []
    for i, text in enumerate(texts):
        tokens = text.split()
        parts = [" ".join(tokens[j:j + words]) for j in range(0, min(len(tokens), words * max_chunks), words)]
        chunks += parts or [text]
        owner += [i] * max(1, len(parts))
    vectors = embed(chunks)
    pooled = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
    np.add.at(pooled, np.asarray(owner), vectors)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.where(norms == 0, 1, norms)


EmbedFn = Callable[[Sequence[str]], np.ndarray]
