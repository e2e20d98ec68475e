"""Output policy and customer signals, as data: knowledge_base/rules/guard_policy.yaml.

A reply never promises approval or a specific limit before scoring, never reveals internal scores
or the system prompt, and gives no legal or tax advice beyond the knowledge base. A sentence that
breaks a rule is replaced by the safe sentence of the same name (prompts/guard_replies.yaml); when
nothing else is left, the whole reply is. Input signals (self-harm, hardship, abuse, requests for
other customers' data, demands for approval) are read from the same file."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, Field

from assistant.types import Reply

_FLAGS = re.IGNORECASE
_CLAUSE_BREAK = re.compile(r"[,;:]|\bbut\b|\bhowever\b|\bso\b|[，；：]|但是?|不过", re.IGNORECASE)
_SENTENCE = re.compile(r".*?(?:[.!?]+(?=\s|$)|[。！？]+|\n+|$)\s*", re.DOTALL)
PROMISE_RULES = ("approval_promise", "limit_promise")
NGRAM = 10  # this many consecutive words of a system prompt in a reply is a leak


class PolicyFile(BaseModel):
    id: str
    version: str
    vulnerable_rule_doc: str = "rule-vulnerable-customers"
    scoring_tools: list[str] = Field(default_factory=list)
    internal_fields: list[str] = Field(default_factory=list)
    hedges: list[str] = Field(default_factory=list)
    output: dict[str, list[str]]
    input: dict[str, list[str]]


@dataclass
class Review:
    text: str
    flags: list[str] = field(default_factory=list)  # rules that fired, e.g. "approval_promise"
    whole: bool = False  # nothing of the original reply was kept


def split_sentences(text: str) -> list[str]:
    """Sentences with their trailing punctuation and spaces: "".join(result) == text."""
    return [m.group(0) for m in _SENTENCE.finditer(text) if m.group(0)]


def _compile(patterns: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), _FLAGS)


def load_policy(path: Path) -> PolicyFile:
    return PolicyFile.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def prompt_ngrams(prompts_dir: Path, exclude: Iterable[str] = ()) -> set[tuple]:
    """Word n-grams of every prompt template the model sees (the text a leak would repeat).
    YAML files in prompts/ hold replies customers are meant to read, so they are not secret."""
    grams: set[tuple] = set()
    skip = set(exclude)
    for path in sorted(Path(prompts_dir).glob("*")):
        if path.suffix in {".md", ".txt", ".j2"} and path.name not in skip and path.is_file():
            grams |= _ngrams(path.read_text(encoding="utf-8"))
    return grams


def _ngrams(text: str, n: int = NGRAM) -> set[tuple]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class OutputPolicy:
    def __init__(self, policy: PolicyFile, replies: dict[str, str], system_ngrams: set[tuple] | None = None):
        self.policy = policy
        self.replies = replies  # rule name -> safe sentence (already rendered)
        self.output_rules = {name: _compile(p) for name, p in policy.output.items() if p}
        self.input_rules = {name: _compile(p) for name, p in policy.input.items() if p}
        self.hedge = _compile(policy.hedges) if policy.hedges else None
        self.system_ngrams = system_ngrams or set()

    # --- input ---------------------------------------------------------------------------

    def input_signals(self, text: str) -> dict[str, list[str]]:
        """Input rule name -> the phrases that matched it."""
        found = {}
        for name, rx in self.input_rules.items():
            hits = [m.group(0) for m in rx.finditer(text)]
            if hits:
                found[name] = hits
        return found

    # --- output --------------------------------------------------------------------------

    def scored(self, reply: Reply) -> bool:
        """The scoring tool ran in this turn, so a decision or a limit may be stated."""
        tools = set(self.policy.scoring_tools)
        return any(c.name in tools and c.result is not None and not c.error for c in reply.tool_calls)

    def review(self, reply: Reply) -> Review:
        if self.system_ngrams and _ngrams(reply.text) & self.system_ngrams:
            return Review(self.replies["system_prompt"], ["system_prompt"], whole=True)
        skip = set(PROMISE_RULES) if self.scored(reply) else set()
        secrets = _internal_values(reply, set(self.policy.internal_fields))
        grounding = " ".join(c.text for c in reply.chunks).lower()
        out, flags, kept = [], [], 0
        for sentence in split_sentences(reply.text):
            rule = self._violation(sentence, skip, secrets, grounding)
            if rule is None:
                out.append(sentence)
                kept += bool(sentence.strip())
            elif rule not in flags:
                flags.append(rule)
                out.append(self.replies[rule] + _trailing_space(sentence))
        if not flags:
            return Review(reply.text)
        if kept == 0:
            return Review(" ".join(self.replies[r] for r in flags), flags, whole=True)
        return Review("".join(out).strip(), flags)

    def _violation(self, sentence: str, skip: set[str], secrets: list[re.Pattern[str]],
                   grounding: str) -> str | None:
        for name, rx in self.output_rules.items():
            if name in skip:
                continue
            for m in rx.finditer(sentence):
                if name != "system_prompt" and self._hedged(sentence, m.start()):
                    continue
                if name == "legal_tax_advice" and m.group(0).lower() in grounding:
                    continue  # the knowledge base says so: quoting it is not advice
                return name
        if any(s.search(sentence) for s in secrets):
            return "internal_score"
        return None

    def _hedged(self, sentence: str, start: int) -> bool:
        if self.hedge is None:
            return False
        before = sentence[:start]
        clause = _CLAUSE_BREAK.split(before)[-1]
        return bool(self.hedge.search(clause))


def _trailing_space(sentence: str) -> str:
    return sentence[len(sentence.rstrip()):] or " "


def _internal_values(reply: Reply, fields: set[str]) -> list[re.Pattern[str]]:
    """Patterns for the internal numbers (probability of default, points) in this turn's tool results."""
    values: list[float] = []
    for call in reply.tool_calls:
        values += _numbers_under(call.result or {}, fields)
    patterns = []
    for v in values:
        forms = set()
        if 0 < v < 1:
            forms |= {f"{v:.2f}", f"{v:.3f}", f"{v:.4f}", f"{v * 100:.1f}%", f"{v * 100:.2f}%"}
        elif v == int(v) and abs(v) >= 10:
            forms.add(str(int(v)))
        else:
            forms |= {f"{v:.1f}", f"{v:.2f}"}
        patterns += [re.compile(rf"(?<![\d.]){re.escape(f)}(?![\d])") for f in forms]
    return patterns


def _numbers_under(value: Any, fields: set[str], inside: bool = False) -> list[float]:
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in _numbers_under(v, fields, inside or str(k).lower() in fields)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers_under(v, fields, inside)]
    if inside and isinstance(value, (int, float)) and not isinstance(value, bool):
        return [float(value)]
    return []
