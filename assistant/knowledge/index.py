"""knowledge_base/ -> chunks -> embeddings -> Chroma; retrieve() with dense + BM25 fusion."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
from rank_bm25 import BM25Okapi

from assistant.config import Settings, apply_offline_env
from assistant.knowledge.documents import Document, load_documents
from assistant.types import Chunk

log = logging.getLogger(__name__)

RRF_K = 60  # reciprocal-rank-fusion constant (Cormack et al. 2009)
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*%?|[\u4e00-\u9fff]")
_STOP = frozenset("a an the is are am do does did i my me you your we our of to for in on at and or "
                  "it can how what when which who with be by if from this that there as s".split())


class IndexMissing(RuntimeError):
    """Nothing is indexed yet."""


@dataclass
class IngestReport:
    documents: int = 0
    chunks: int = 0
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    flagged: dict[str, list[str]] = field(default_factory=dict)  # doc id -> instructions found

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOP]


def chunk_documents(doc: Document) -> list[Chunk]:
    """One chunk per `##` section (an FAQ entry is one question with its answer)."""
    chunks = []
    for section in doc.sections:
        heading = section.heading
        text = f"{heading}\n{section.text}" if doc.type == "faq" else f"{doc.title} - {heading}\n{section.text}"
        chunks.append(Chunk(
            id=f"{doc.id}#{section.anchor}", text=text, doc_id=doc.id, title=doc.title, section=heading,
            type=doc.type, product=doc.product, version=doc.version,
            effective_date=doc.effective_date.isoformat(), source=doc.source,
        ))
    return chunks


def embedding_text(chunk: Chunk) -> str:
    """An FAQ entry is found by its question (question-to-question similarity is what the FAQ
    fast path's threshold measures); BM25 still sees the answer. Other chunks embed whole."""
    return chunk.section if chunk.type == "faq" else chunk.text


def document_hash(doc: Document) -> str:
    return hashlib.sha256(doc.path.read_bytes()).hexdigest()[:32]


class ChromaEmbedding:
    """Chroma embedding function over our sentence-transformers model: Chroma's own default
    would try to download a model, which fails offline."""

    def __init__(self, embedder: Any = None):
        self._embedder = embedder

    def __call__(self, input: list[str]) -> list[np.ndarray]:  # noqa: A002 (Chroma's name)
        if self._embedder is None:
            raise RuntimeError("no embedder: open the collection through KnowledgeBase")
        return list(self._embedder.encode(list(input), normalize_embeddings=True, convert_to_numpy=True))

    @staticmethod
    def name() -> str:
        return "meadow-sentence-transformers"

    def is_legacy(self) -> bool:
        return False

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "ChromaEmbedding":
        return ChromaEmbedding()  # Chroma rebuilds it from stored config; we always pass ours

    def default_space(self) -> str:
        return "cosine"

    def supported_spaces(self) -> list[str]:
        return ["cosine"]

    def embed_query(self, input: list[str]) -> list[np.ndarray]:  # noqa: A002
        return self(input)


def make_chroma_client(settings: Settings):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    apply_offline_env()
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_host:
        return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


class KnowledgeBase:
    def __init__(self, settings: Settings, embedder: Any = None, client: Any = None,
                 document_check: Callable[[str], list[str]] | None = None):
        if embedder is None:
            from assistant.knowledge.embeddings import load_embedder

            embedder = load_embedder(settings)
        self.settings = settings
        self.embedder = embedder
        self.client = client or make_chroma_client(settings)
        self.document_check = document_check
        self.collection = self.client.get_or_create_collection(
            settings.collection, embedding_function=ChromaEmbedding(embedder),
            configuration={"hnsw": {"space": "cosine"}},
        )
        self._lexical: _LexicalIndex | None = None

    # --- ingest -------------------------------------------------------------------------------

    def ingest(self, progress: bool = False) -> IngestReport:
        from tqdm import tqdm

        from assistant.knowledge.terms import load_terms

        product_keys = set(load_terms(self.settings.terms_file).products)
        documents = load_documents(self.settings.knowledge_dir, product_keys=product_keys)
        indexed = self._indexed_hashes()
        report = IngestReport(documents=len(documents))
        for doc in tqdm(documents, desc="ingest", unit="doc", disable=not progress):
            digest = document_hash(doc)
            if indexed.get(doc.id) == digest:
                report.skipped.append(doc.id)
                continue
            if self.document_check is not None:
                found = self.document_check("\n".join(s.text for s in doc.sections))
                if found:
                    report.flagged[doc.id] = found
                    log.warning("not indexed: %s contains instructions aimed at the model: %s", doc.source, found)
                    self.collection.delete(where={"doc_id": doc.id})
                    continue
            (report.updated if doc.id in indexed else report.added).append(doc.id)
            self._index_document(doc, digest)
        present = {d.id for d in documents} - set(report.flagged)
        for doc_id in sorted(set(indexed) - present):
            self.collection.delete(where={"doc_id": doc_id})
            report.deleted.append(doc_id)
        report.chunks = self.collection.count()
        self._lexical = None
        return report

    def _indexed_hashes(self) -> dict[str, str]:
        rows = self.collection.get(include=["metadatas"])
        return {m["doc_id"]: m.get("doc_hash", "") for m in rows["metadatas"] or []}

    def _index_document(self, doc: Document, digest: str) -> None:
        self.collection.delete(where={"doc_id": doc.id})
        chunks = chunk_documents(doc)
        if not chunks:
            return
        embeddings = self.embedder.encode([embedding_text(c) for c in chunks], normalize_embeddings=True,
                                          convert_to_numpy=True, batch_size=64)
        self.collection.add(
            ids=[c.id for c in chunks], documents=[c.text for c in chunks], embeddings=embeddings,
            metadatas=[_metadata(c, digest) for c in chunks],
        )

    # --- retrieve -----------------------------------------------------------------------------

    def count(self) -> int:
        return self.collection.count()

    def retrieve(self, query: str, k: int | None = None, filters: dict[str, Any] | None = None,
                 hybrid: bool | None = None) -> list[Chunk]:
        """Top-k chunks, best first; `score` is the cosine similarity in [0, 1]."""
        k = k or self.settings.retrieval_k
        hybrid = self.settings.hybrid if hybrid is None else hybrid
        if self.count() == 0:
            raise IndexMissing("The knowledge base is not indexed yet: run `assistant ingest` first.")
        vector = self.embedder.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        dense = self._dense(vector, max(k * 4, 20), filters)
        if not hybrid:
            return dense[:k]
        lexical = self._lexical_index().search(query, vector, max(k * 4, 20), filters)
        return _fuse([dense, lexical], k)

    def _dense(self, vector: np.ndarray, n: int, filters: dict[str, Any] | None) -> list[Chunk]:
        result = self.collection.query(
            query_embeddings=[vector], n_results=min(n, self.count()), where=chroma_where(filters),
            include=["documents", "metadatas", "distances"],
        )
        return [
            _chunk(id_, text, meta, score=max(0.0, min(1.0, 1.0 - dist)))
            for id_, text, meta, dist in zip(result["ids"][0], result["documents"][0],
                                             result["metadatas"][0], result["distances"][0])
        ]

    def _lexical_index(self) -> "_LexicalIndex":
        if self._lexical is None:
            rows = self.collection.get(include=["documents", "metadatas", "embeddings"])
            self._lexical = _LexicalIndex(rows["ids"], rows["documents"], rows["metadatas"], rows["embeddings"])
        return self._lexical

    def chunk(self, chunk_id: str) -> Chunk | None:
        rows = self.collection.get(ids=[chunk_id], include=["documents", "metadatas"])
        if not rows["ids"]:
            return None
        return _chunk(rows["ids"][0], rows["documents"][0], rows["metadatas"][0])


class _LexicalIndex:
    """BM25 over every chunk, built once from Chroma's contents (so every worker sees the same)."""

    def __init__(self, ids: list[str], texts: list[str], metas: list[dict], embeddings: Any):
        self.ids, self.texts, self.metas = ids, texts, metas
        self.vectors = np.asarray(embeddings, dtype=np.float32)
        self.bm25 = BM25Okapi([tokenize(t) or ["_"] for t in texts])

    def search(self, query: str, vector: np.ndarray, n: int, filters: dict[str, Any] | None) -> list[Chunk]:
        tokens = tokenize(query)
        if not tokens:
            return []
        scores = self.bm25.get_scores(tokens)
        allowed = [i for i in np.argsort(-scores) if scores[i] > 0 and _matches(self.metas[i], filters)]
        hits = allowed[:n]
        sims = self.vectors[hits] @ vector if hits else []
        return [_chunk(self.ids[i], self.texts[i], self.metas[i], score=float(max(0.0, min(1.0, s))))
                for i, s in zip(hits, sims)]


def _fuse(rankings: Iterable[list[Chunk]], k: int) -> list[Chunk]:
    fused: dict[str, float] = {}
    by_id: dict[str, Chunk] = {}
    for ranking in rankings:
        for rank, chunk in enumerate(ranking):
            fused[chunk.id] = fused.get(chunk.id, 0.0) + 1.0 / (RRF_K + rank + 1)
            by_id.setdefault(chunk.id, chunk)
    order = sorted(fused, key=lambda cid: (-fused[cid], -by_id[cid].score))
    return [by_id[cid] for cid in order[:k]]


def chroma_where(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not filters:
        return None
    clauses = [{key: {"$in": list(v)} if isinstance(v, (list, tuple, set)) else {"$eq": v}}
               for key, v in filters.items()]
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _matches(meta: dict[str, Any], filters: dict[str, Any] | None) -> bool:
    for key, wanted in (filters or {}).items():
        value = meta.get(key)
        if isinstance(wanted, (list, tuple, set)):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


def _metadata(chunk: Chunk, digest: str) -> dict[str, Any]:
    return {
        "doc_id": chunk.doc_id, "title": chunk.title, "section": chunk.section, "type": chunk.type,
        "product": chunk.product or "", "version": chunk.version, "effective_date": chunk.effective_date,
        "source": chunk.source, "doc_hash": digest,
    }


def _chunk(id_: str, text: str, meta: dict[str, Any], score: float = 0.0) -> Chunk:
    return Chunk(
        id=id_, text=text, doc_id=meta["doc_id"], title=meta["title"], section=meta.get("section", ""),
        type=meta["type"], product=meta.get("product") or None, version=meta.get("version", ""),
        effective_date=meta.get("effective_date", ""), source=meta.get("source", ""), score=score,
    )
