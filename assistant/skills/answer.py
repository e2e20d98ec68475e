"""The answer skill: FAQ fast path, or retrieve -> prompt -> generate (streamed) -> verify,
with an extractive or "I don't know" fallback. Correct without trusting the model."""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Iterator

from langchain_core.messages import HumanMessage, SystemMessage

from assistant.config import Settings
from assistant.knowledge.index import IndexMissing, KnowledgeBase
from assistant.llm.prompts import load_prompt, load_replies
from assistant.knowledge.terms import Terms
from assistant.types import Chunk, Citation, Conversation, Delta, Reply, ToolCall, Turn
from assistant.knowledge.extract import extract_answer, strip_bare_answer
from assistant.knowledge.verify import figures, sentences, verify_answer

LoanAnswerer = Callable[[str], "tuple[str, ToolCall] | None"]

# A question a bare "Yes."/"No." can answer ("is the APR capped?", "so can I repay early?").
_YES_NO_QUESTION = re.compile(r"^\W*((hi|hello|hey|ok(ay)?|so|and|also|sorry|thanks)\W+)*(is|are|am|was|were|can|could|do|"
                              r"does|did|will|would|should|shall|may|might|must|have|has|had|isnt|arent|cant|dont|"
                              r"doesnt|wont)\b", re.I)
_FOLLOW_UP = re.compile(r"^\s*(and|also|what about|how about|what if|same for|then)\b", re.I)
_REFERENCE = re.compile(r"\b(it|its|that|this|those|them|they|there)\b", re.I)


class AnswerSkill:
    name = "answer"

    def __init__(self, settings: Settings, kb: KnowledgeBase, chat_model: Any, terms: Terms,
                 loan_answerer: LoanAnswerer | None = None):
        self.settings = settings
        self.kb = kb
        self.chat_model = chat_model
        self.terms = terms
        self.loan_answerer = loan_answerer
        self.system_prompt = load_prompt(settings.prompts_dir, "answer_system.md")
        self.user_prompt = load_prompt(settings.prompts_dir, "answer_user.md")
        self.replies = load_replies(settings.prompts_dir)

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        timings: dict[str, float] = {}
        t = time.perf_counter()
        query, products = resolve_query(turn.conversation, turn.message, self.terms)
        timings["resolve"] = _ms(t)

        if self.loan_answerer is not None:
            # The raw message: a follow-up merged with an earlier loan question is not a new quote.
            tool_answer = self.loan_answerer(turn.message)
            if tool_answer is not None:
                text, call = tool_answer
                yield Reply(text=text, path="tool", tool_calls=[call], timings_ms=timings, meta=self._meta())
                return

        t = time.perf_counter()
        try:
            chunks = self.kb.retrieve(query, self.settings.retrieval_k, filters=product_filter(products))
        except IndexMissing:
            yield Reply(text=self.replies["index_missing"], path="no_answer", flags=["index_missing"])
            return
        timings["retrieve"] = _ms(t)

        # Chosen on similarity, not on the fused rank: BM25 can put a passage that shares words
        # with the question above the FAQ entry that asks the same thing. RRF still orders the
        # passages the model sees and cites.
        best = most_similar(chunks)
        if best is not None and best.type == "faq" and best.score >= self.settings.faq_threshold \
                and lead_over_rest(best, chunks) >= self.settings.faq_margin:
            yield self._reply(faq_answer(best, query), "faq", [best], chunks, timings)
        elif best is None or best.score < self.settings.answer_min_score:
            yield self._reply(self.replies["no_answer"], "no_answer", [], chunks, timings)
        else:
            yield from self._generate(turn, query, chunks, timings)

    def _embed(self, texts: list[str]) -> Any:
        return self.kb.embedder.encode(texts, normalize_embeddings=True, convert_to_numpy=True,
                                       show_progress_bar=False)

    def _generate(self, turn: Turn, query: str, chunks: list[Chunk],
                  timings: dict[str, float]) -> Iterator[Delta | Reply]:
        context = chunks[: self.settings.retrieval_k]
        messages = self.build_messages(turn, context)
        t = time.perf_counter()
        text, tokens = "", 0
        streamer = SentenceStreamer([c.text for c in context])
        for piece in self.chat_model.stream(messages):
            if piece.content:
                if not text:
                    timings["first_token"] = _ms(t)
                text += piece.content
                for sentence in streamer.feed(piece.content):
                    yield Delta(text=sentence)
            usage = getattr(piece, "usage_metadata", None)
            if usage:
                tokens = usage.get("output_tokens", tokens)
        timings["generate"] = _ms(t)

        t = time.perf_counter()
        checked = verify_answer(text, [c.text for c in context])
        timings["verify"] = _ms(t)
        meta = {"dropped": [s for s, _ in checked.dropped], "raw_answer": text}
        if checked.supported:
            reply = self._reply(checked.text, "generated", cite(checked.text, context), chunks, timings, meta)
        else:
            t = time.perf_counter()
            extract = extract_answer(query, context[0], self._embed)
            timings["extract"] = _ms(t)
            reply = self._reply(extract, "extractive", [context[0]], chunks, timings, meta)
        reply.tokens = tokens
        yield reply

    def build_messages(self, turn: Turn, context: list[Chunk]) -> list[Any]:
        passages = "\n\n".join(f"[{i}] {c.title} - {c.section}\n{c.text}" for i, c in enumerate(context, 1))
        earlier = turn.conversation.user_turns()[-2:]
        history = (self.replies["history_intro"] + "\n" + "\n".join(f"- {q}" for q in earlier) + "\n") if earlier else ""
        system = self.system_prompt.render(lender=self.terms.lender.name)
        user = self.user_prompt.render(passages=passages, history=history, question=turn.message)
        return [SystemMessage(content=system), HumanMessage(content=user)]

    def _reply(self, text: str, path: str, cited: list[Chunk], retrieved: list[Chunk],
               timings: dict[str, float], meta: dict[str, Any] | None = None) -> Reply:
        return Reply(text=text, path=path, citations=[Citation.of(c) for c in cited], chunks=retrieved,
                     timings_ms=timings, meta={**self._meta(), **(meta or {})})

    def _meta(self) -> dict[str, Any]:
        model = self.settings.llm_served_model if self.settings.llm_backend == "openai" else self.settings.llm_model
        return {"model": f"{self.settings.llm_backend}:{model}",
                "prompt_version": f"{self.system_prompt.version}/{self.user_prompt.version}"}


class SentenceStreamer:
    """Streams a generated answer sentence by sentence, and only the sentences that pass
    verification: the customer never sees a figure that the final reply would drop."""

    def __init__(self, passages: list[str]):
        self.passages = passages
        self.buffer = ""
        self.sent: list[str] = []

    def feed(self, piece: str) -> list[str]:
        self.buffer += piece
        parts = sentences(self.buffer)
        if len(parts) < 2:
            return []
        complete, self.buffer = parts[:-1], parts[-1]
        out = []
        for sentence in complete:
            kept = verify_answer(" ".join([*self.sent, sentence]), self.passages).kept
            if len(kept) > len(self.sent) and kept[-1] == sentence:
                out.append(("" if not self.sent else " ") + sentence)
                self.sent.append(sentence)
        return out


def resolve_query(conversation: Conversation, message: str, terms: Terms) -> tuple[str, list[str]]:
    """Make a follow-up stand alone: "and early repayment?" after a question about Meadow Cash
    becomes "and early repayment? Meadow Cash". Returns the query and the products it is about."""
    products = terms.products_mentioned(message)
    if products:
        return message, products
    earlier = conversation.user_turns()
    cued = bool(_FOLLOW_UP.match(message))
    refers_back = bool(_REFERENCE.search(message)) and len(message.split()) <= 8
    if not earlier or not (cued or refers_back):
        return message, []
    for previous in reversed(earlier[-3:]):
        previous_products = terms.products_mentioned(previous)
        if previous_products:
            names = " ".join(terms.products[p].name for p in previous_products)
            return f"{message} {names}", previous_products
    return (f"{message} {earlier[-1]}", []) if cued else (message, [])


def product_filter(products: list[str]) -> dict[str, Any] | None:
    # Documents about no single product (rules, general FAQs) always stay searchable.
    return {"product": [*products, ""]} if products else None


def faq_answer(chunk: Chunk, question: str = "") -> str:
    """The entry's answer. A leading "Yes."/"No." answers the entry's own question: quoted to a
    customer who asked one ("is the APR capped?"), dropped for "what"/"how" ("what's the maximum APR?")."""
    _question, _, answer = chunk.text.partition("\n")
    answer = answer.strip() or chunk.text
    if question and not _YES_NO_QUESTION.search(question):
        answer = strip_bare_answer(answer) or answer
    return answer


def most_similar(chunks: list[Chunk]) -> Chunk | None:
    """The passage most similar to the question (dense cosine); the earlier one on a tie."""
    return max(chunks, key=lambda c: c.score) if chunks else None


def lead_over_rest(best: Chunk, chunks: list[Chunk]) -> float:
    """How far the best passage is ahead of the next one. A short follow-up ("and the late fee?
    Meadow Flex") sits almost as close to several entries; a curated answer then risks being the
    wrong entry's, so the passages are read instead."""
    rest = [c.score for c in chunks if c is not best]
    return best.score - max(rest) if rest else 1.0


def cite(answer: str, context: list[Chunk]) -> list[Chunk]:
    """The passages that back the answer's figures; the best passage when it quotes none."""
    needed = figures(answer)
    if not needed:
        return context[:1]
    cited = [c for c in context if figures(c.text) & needed]
    return cited or context[:1]


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)
