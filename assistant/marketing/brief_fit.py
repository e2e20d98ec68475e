"""How well a variant serves its brief, in numbers a marketer can read: brief coverage (the occasion,
audience, key message, offer and goal words that reach the copy) and clarity (no filler claims, short
sentences, no repeated words). The ranking's total is stated in `SCORE_FORMULA`."""

from __future__ import annotations

import re
from typing import Any

SCORE_FORMULA = "total = 2 x compliance + brief coverage + clarity + 0.5 x length fit + 0.5 x diversity"
_WORD = re.compile(r"[a-z0-9%]+|[\u4e00-\u9fff]", re.IGNORECASE)


def content_words(text: str, stopwords: set[str]) -> set[str]:
    return {w.lower() for w in _WORD.findall(text or "") if w.lower() not in stopwords and len(w) > 1
            or re.fullmatch(r"[\u4e00-\u9fff]", w or "")}


def brief_elements(brief: Any) -> dict[str, str]:
    """The parts of a brief a variant should show, by name (empty ones left out)."""
    elements = {"occasion": brief.occasion, "audience": brief.audience, "message": brief.message,
                "goal": brief.goal, "offer": brief.offer.description if brief.offer else ""}
    return {k: v for k, v in elements.items() if v and v.strip()}


def brief_coverage(text: str, brief: Any, stopwords: set[str]) -> float:
    """Share of the brief's elements the copy reflects: an element counts when at least half of its
    content words (one, for the goal) appear in the copy."""
    elements = brief_elements(brief)
    if not elements:
        return 1.0
    copy = content_words(text, stopwords)
    hits = 0
    for name, value in elements.items():
        words = content_words(value, stopwords)
        if not words:
            hits += 1
            continue
        need = 1 if name == "goal" else max(1, len(words) // 2)
        hits += len(words & copy) >= need
    return round(hits / len(elements), 3)


def filler_found(text: str, filler: list[str]) -> list[str]:
    lowered = text.lower()
    return [f for f in filler if re.search(rf"(?<![a-z]){re.escape(f.lower())}(?![a-z])", lowered)]


def clarity(text: str, filler: list[str]) -> float:
    """1.0 for plain copy; minus 0.3 per filler claim, 0.2 per sentence over 25 words, 0.2 when a
    content word is used three times or more."""
    score = 1.0 - 0.3 * len(filler_found(text, filler))
    sentences = [s for s in re.split(r"(?<=[.!?。！？])\s*", text) if s.strip()]
    score -= 0.2 * sum(len(s.split()) > 25 for s in sentences)
    words = [w.lower() for w in re.findall(r"[a-z]{4,}", text, re.IGNORECASE)]
    if any(words.count(w) >= 3 for w in set(words) - {"meadow"}):
        score -= 0.2
    return round(max(0.0, score), 3)
