"""Optional LLM-as-judge metrics (faithfulness, answer relevancy) through RAGAS.

Runs only when a judge endpoint is configured (ASSISTANT_JUDGE_BASE_URL, an OpenAI-compatible
server, e.g. `vllm serve Qwen/Qwen2.5-7B-Instruct`) and `ragas` is installed
(`pip install ragas`; not a default dependency: it is heavy). Otherwise the run notes why it
skipped, and every other metric stands on its own."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

MAX_JUDGED = 60  # judge calls are slow and cost tokens: a sample of the answered rows


class JudgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTANT_JUDGE_", env_file=".env", extra="ignore")

    base_url: str | None = None
    model: str = "judge"
    api_key: SecretStr = SecretStr("not-needed")
    timeout_s: float = 120.0


def judge_records(records: list[dict[str, Any]], settings: Any = None,
                  judge: JudgeSettings | None = None) -> tuple[dict[str, float | None], str]:
    """Judge metrics for the answered rows, and a note saying what was done or why not."""
    judge = judge or JudgeSettings()
    if not judge.base_url:
        return {}, "LLM-as-judge skipped: no judge endpoint configured (set ASSISTANT_JUDGE_BASE_URL)"
    try:
        import ragas  # noqa: F401
    except ImportError:
        return {}, "LLM-as-judge skipped: ASSISTANT_JUDGE_BASE_URL is set but ragas is not installed (pip install ragas)"
    rows = [r for r in records if r.get("states_facts") and r.get("answer") and r.get("contexts")][:MAX_JUDGED]
    if not rows:
        return {}, "LLM-as-judge skipped: no answered rows with passages to judge"
    try:
        scores = _ragas(rows, judge, settings)
    except Exception as exc:  # a judge failure must not sink the run
        log.exception("judge failed")
        return {}, f"LLM-as-judge failed: {type(exc).__name__}: {exc}"
    return scores, f"LLM-as-judge: RAGAS with {judge.model} at {judge.base_url} on {len(rows)} answered rows"


def _ragas(rows: list[dict[str, Any]], judge: JudgeSettings, settings: Any) -> dict[str, float | None]:
    from langchain_openai import ChatOpenAI
    from ragas import EvaluationDataset, evaluate
    from ragas.embeddings import LangchainEmbeddingsWrapper
    from ragas.llms import LangchainLLMWrapper
    from ragas.metrics import Faithfulness, ResponseRelevancy

    llm = ChatOpenAI(base_url=judge.base_url, api_key=judge.api_key.get_secret_value(), model=judge.model,
                     temperature=0, timeout=judge.timeout_s)
    dataset = EvaluationDataset.from_list([
        {"user_input": r["question"], "response": r["answer"], "retrieved_contexts": r["contexts"]} for r in rows
    ])
    result = evaluate(dataset, metrics=[Faithfulness(), ResponseRelevancy()], llm=LangchainLLMWrapper(llm),
                      embeddings=LangchainEmbeddingsWrapper(_LocalEmbeddings(settings)), show_progress=False)
    frame = result.to_pandas()
    out: dict[str, float | None] = {}
    for column, name in (("faithfulness", "judge_faithfulness"), ("answer_relevancy", "judge_answer_relevancy")):
        if column in frame:
            value = frame[column].mean()
            out[name] = None if value != value else float(value)  # NaN -> None
    return out


class _LocalEmbeddings:
    """The project's own sentence-transformers model as a LangChain Embeddings object
    (answer relevancy compares embeddings; no second embedding endpoint needed)."""

    def __init__(self, settings: Any):
        from assistant.knowledge.embeddings import load_embedder

        self._embedder = load_embedder(settings)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.encode(list(texts), normalize_embeddings=True).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)
