"""The textbook LangChain RAG chain, as the yardstick for the assistant.

Same retriever (KnowledgeBase.retrieve, hybrid as configured), same chat model, one prompt
(prompts/baseline_rag.md, LangChain's classic RAG prompt); no FAQ path, no follow-up
resolution, no product filter, no verify step, no tools:

    {"context": retriever, "question": passthrough} | prompt | llm | StrOutputParser

(the "returning sources" form, so the eval sees which passages the answer was given)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableParallel, RunnablePassthrough
from pydantic import ConfigDict

from assistant.llm.prompts import load_prompt

PROMPT_FILE = "baseline_rag.md"
_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class KnowledgeBaseRetriever(BaseRetriever):
    """The assistant's own retriever as a LangChain retriever."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kb: Any
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [
            Document(page_content=c.text, metadata={"doc_id": c.doc_id, "chunk_id": c.id, "title": c.title,
                                                    "section": c.section, "score": c.score})
            for c in self.kb.retrieve(query, self.k)
        ]


def format_docs(docs: list[Document]) -> str:
    return "\n\n".join(d.page_content for d in docs)


def chat_prompt(prompts_dir: Path) -> ChatPromptTemplate:
    """prompts/*.md use {{slot}}; LangChain templates use {slot} (other braces escaped)."""
    text = load_prompt(Path(prompts_dir), PROMPT_FILE).text
    parts = _SLOT.split(text)
    template = "".join(p.replace("{", "{{").replace("}", "}}") if i % 2 == 0 else "{" + p + "}"
                       for i, p in enumerate(parts))
    return ChatPromptTemplate.from_messages([("human", template)])


def build_chain(kb: Any, chat_model: Any, prompts_dir: Path, k: int = 5) -> Runnable:
    retriever = KnowledgeBaseRetriever(kb=kb, k=k)
    answer = (RunnablePassthrough.assign(context=lambda x: format_docs(x["context"]))
              | chat_prompt(prompts_dir) | chat_model | StrOutputParser())
    return RunnableParallel(context=retriever, question=RunnablePassthrough()).assign(answer=answer)


class BaselineRAG:
    name = "langchain_rag"

    def __init__(self, kb: Any, chat_model: Any, prompts_dir: Path, k: int = 5):
        self.chain = build_chain(kb, chat_model, prompts_dir, k)

    def answer(self, question: str) -> dict[str, Any]:
        """{"answer": text, "context": [Document], "latency_ms": float}"""
        started = time.perf_counter()
        result = self.chain.invoke(question)
        return {**result, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
