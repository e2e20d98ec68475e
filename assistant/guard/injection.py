"""Prompt-injection and jailbreak detection: heuristics, encoded payloads and a small classifier.

User text and retrieved passages are data, never instructions; this module flags text that tries
to be instructions anyway. The classifier (character n-grams + logistic regression) is trained on
evals/datasets/injection_train.jsonl at first use (about a second); the held-out safety set is
never used for training."""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

_I = re.IGNORECASE
_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff\u00ad]")
_INSTRUCTION_WORDS = (r"instructions?|rules?|prompts?|directions?|guidelines?|polic(?:y|ies)|constraints?"
                      r"|programming|restrictions?|directives?|orders|settings|guardrails?|safety")

_REVEAL = (r"reveal|print|show|repeat|output|tell|display|leak|dump|spell out|quote|summari[sz]e|translate|list"
           r"|write|share|give|paste|copy|recite|describe|explain")
_SECRET_OBJECT = (r"(?:your|the) (?:system |hidden |secret |internal |original |initial |full |complete |exact )*"
                  r"(?:instructions|prompt|programming|configuration|context window|chain of thought|system message)")

# (reason, pattern): each aims at one attack shape, in English and Chinese (and a few other languages).
HEURISTICS: list[tuple[str, re.Pattern[str]]] = [
    ("ignore_instructions", re.compile(
        rf"\b(?:ignore|disregard|forget|override|bypass)\b(?![^.\n]{{0,20}}\bmy\b)[^.\n]{{0,40}}?"
        rf"\b(?:previous|prior|above|earlier|preceding|all|your|the|any|these|those|system|original|initial)\b"
        rf"[^.\n]{{0,30}}?\b(?:{_INSTRUCTION_WORDS}|training)\b"
        r"|\b(?:ignore|disregard|forget)\s+(?:everything|all of (?:that|this|the above)|the above|what you were told"
        r"|your training)\b(?![^.\n]{0,15}\b(?:I|my)\b)|\bignore the (?:question|above|text above)\b"
        r"|\b(?:skip|break|bend) (?:the|your) rules\b|\byou are (?:now )?(?:authori[sz]ed|allowed|permitted) to "
        r"(?:skip|ignore|bypass|break|reveal|approve|promise)\b"
        r"|\b(?:new|real|updated|actual) (?:rule|instruction|task|directive)s?\s*(?::|from\b|is\b)"
        r"|\binstructions (?:have|has) (?:been )?(?:updated|changed)\b", _I)),
    ("ignore_instructions", re.compile(
        r"(?:忽略|无视|不要理会|不用管)[^。！？\n]{0,8}?(?:指令|指示|规则|提示|设定|要求|限制|命令)"
        r"|(?:忘记|忘掉|抛开)(?:你的|所有|之前|以上|上面|前面)[^。！？\n]{0,6}?(?:指令|指示|规则|提示|设定|要求|限制|命令|训练)"
        r"|新(?:的)?指令[:：]|新规则[:：]")),
    ("ignore_instructions", re.compile(
        r"\b(?:ignora|olvida|oublie|oubliez|ignorez|vergiss|ignoriere)\b[^.\n]{0,30}"
        r"\b(?:instrucciones|instructions|anweisungen|règles|reglas|regeln)\b", _I)),
    ("role_play", re.compile(
        r"\b(?:you are now|you're now|you are no longer|from now on,? you(?:'re| are| will| must| answer| respond)"
        r"|(?:^|[.!?:]\s*|please\s+|\byou\s+(?:will\s+|must\s+|should\s+|to\s+|now\s+|can\s+)?)act (?:as|like)\b"
        # the "grandma exploit": a bedtime story from a late relative who "used to read me" the forbidden thing
        r"|\b(?:grand(?:ma|mother|pa|father)|granny|nana)\b[^\n]{0,160}?\b(?:to (?:put|get|help) me (?:to )?sleep"
        r"|fall asleep|bedtime|lullab\w*|(?:used to|would) (?:read|sing|recite|tell)(?: me)?)\b"
        r"|(?:^|[.!?:]\s*|please\s+|\blet's\s+|\bnow\s+|\byou\s+(?:will\s+|must\s+|should\s+|to\s+|can\s+)?)"
        r"pretend\b|role-?play|play the role of|let's play a game|imagine (?:that |if )?(?:you|meadow|there (?:is|are|were)|a world)\b"
        r"|\bin (?:this|an?|that) (?:imaginary|hypothetical|fictional|alternate|parallel) (?:world|universe|scenario)\b"
        r"|\bhypothetically,? (?:you|if)\b"
        r"|\b(?:write|tell|create|compose) (?:me )?(?:a |an )?(?:story|poem|novel|script|screenplay|dialogue|fiction|tale)"
        r"\b[^.?!]{0,40}\b(?:AI|chatbot|assistant|bot|language model|Meadow)\b"
        r"|you will now (?:act|behave|respond) as|stop being (?:a|an|the|meadow's)\b"
        r"|you are (?:the|an?|my) [^.\n]{0,25}?(?:officer|approver|underwriter|banker|admin(?:istrator)?|employee"
        r"|staff member)\b)", _I | re.MULTILINE)),
    ("role_play", re.compile(r"(?:你现在是|从现在(?:开始|起)[，,]?你|扮演|假装你是|假设你是|你的新身份|角色扮演|你不再是)")),
    ("system_prompt", re.compile(
        rf"\bsystem[\s_-]*(?:prompt|message|instructions?)\b|\binitial (?:prompt|instructions)\b"
        rf"|\bhidden (?:prompt|instructions|rules)\b|\b(?:{_REVEAL})\b(?: me)?[^.\n]{{0,30}}?\b{_SECRET_OBJECT}\b"
        rf"|\b{_SECRET_OBJECT} (?:above|verbatim|word for word)\b"
        r"|\b(?:repeat|print|output) (?:everything|all|the text|the words) (?:above|before)\b"
        r"|\bwhat (?:were|are) you (?:told|instructed|programmed)\b|\bwere you (?:programmed|instructed|told|trained)\b"
        r"|\b(?:instructions|rules|prompt) (?:you were|you've been|you have been) given\b|\bdeveloper message\b"
        r"|\b(?:not allowed|forbidden|prohibited|told not) to (?:say|tell|reveal|share)\b|\bcontext window\b"
        r"|\b(?:sentence|line|word|paragraph|part|section|letter)s? of (?:your|the) (?:system |hidden |secret |internal "
        r"|original |initial )*(?:instructions|prompt|guidelines|programming|configuration)\b", _I)),
    ("system_prompt", re.compile(r"(?:系统提示|提示词|系统指令|初始指令|你的指令|内部指令|你的设定|系统设定|原封不动"
                                 r"|被禁止(?:说|告诉)|不(?:能|允许)告诉我的)")),
    ("jailbreak", re.compile(
        r"(?:\bDAN\b|\bdo anything now\b|\bjailbr(?:ea|o)k|\bdeveloper mode\b|\bgod mode\b|\bno restrictions\b"
        r"|\bwithout (?:any |the |your )?(?:restrictions|filters|rules|limits|censorship|policy)\b|\bunfiltered\b"
        r"|\buncensored\b|\bunrestricted\b|\bwith no (?:limits|restrictions|rules|filters)\b"
        r"|\b(?:were not|weren't|not) bound by\b|\bSTAN\b|\bDUDE\b|\bAIM\b(?= ?[:,])|越狱|开发者模式|无限制模式|不受限制)")),
    ("jailbreak", re.compile(
        r"\b(?:bypass|disable|turn off|switch off|override|remove|deactivate|ignore)\b[^.\n]{0,20}?"
        r"\b(?:filters?|safety|guardrails?|restrictions|content policy|moderation)\b", _I)),
    ("fence_break", re.compile(
        r"(?:<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?INST\]|<</?SYS>>|^\s*#{2,}\s*(?:system|instruction)"
        r"|</?(?:system|passages?|question|context|instructions?|user|assistant)>|\bBEGIN (?:SYSTEM|NEW) (?:PROMPT|INSTRUCTIONS)"
        r"|\bEND OF (?:USER )?(?:INPUT|PROMPT|CONTEXT|MESSAGE|CONVERSATION)\b|^\s*\[?(?:system|assistant)\]?\s*:"
        r"|\[/?(?:SYSTEM|ASSISTANT|USER|INST|DEVELOPER)\])", _I | re.MULTILINE)),
    ("hidden_comment", re.compile(r"<!--|-->")),
    ("approver_override", re.compile(
        r"\b(?:(?:i am|i'm|speaking as|acting as|this is) (?:your|the) (?:system )?(?:admin|administrator|developer"
        r"|underwriter|loan officer|approver|supervisor|creator)\b|\bas your (?:creator|developer|admin|owner)\b"
        r"|(?:admin|developer|debug|maintenance|override) (?:mode|access|command|code)|\boverride\s*:|\bsudo\b"
        r"|\b(?:safety|mode|filter|approve_all|admin|debug|restrictions)\s*=\s*\w+"
        r"|(?:set|change|update|override) (?:my|the) (?:credit )?(?:score|status|decision|approval status|risk rating) to"
        r"|(?:mark|flag|set) (?:me|my (?:application|loan|account)) as approved|force (?:an? )?approv"
        r"|\byou (?:must|should|have to|are required to) (?:now )?approve\b)", _I)),
    ("approver_override", re.compile(r"(?:管理员模式|直接(?:给我)?批准|强制通过|我是(?:你的)?(?:管理员|开发者|审批员))")),
    ("encoding_request", re.compile(
        r"\b(?:base64|rot13|rot-13|hex(?:adecimal)?[- ]encoded|decode (?:this|the following|and (?:run|follow|execute))"
        r"|morse code|reversed? (?:this |the |that |following )?(?:text|string|words|message|letters|sentence)"
        r"|(?:read|write|spell)(?: it| this)? backwards|leetspeak"
        r"|first letter of each (?:word|line)|acrostic|url[- ]?(?:en|de)coded?)\b"
        r"|(?:解码|编码后的|base64)", _I)),
]

_B64 = re.compile(r"(?<![A-Za-z0-9+/=])(?=[A-Za-z0-9+/]*[A-Za-z])(?=[A-Za-z0-9+/]*\d)[A-Za-z0-9+/]{20,}={0,2}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNICODE_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]?){12,}(?![0-9A-Fa-f])")
# Instructions aimed at the model inside a knowledge-base document (checked at ingest).
_DOC_ONLY = [
    re.compile(r"\b(?:note|message|instruction)s? (?:to|for) (?:the )?(?:AI|assistant|model|chatbot|LLM|language model)\b", _I),
    re.compile(r"\bif you are an? (?:AI|language model|assistant|chatbot|LLM|bot)\b", _I),
    re.compile(r"\b(?:AI|assistant|chatbot|LLM|model),? (?:ignore|disregard|forget|you must now|from now on)\b", _I),
]


def normalise(text: str) -> str:
    return _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))


_SPACED = re.compile(r"\b(?:\w ){3,}\w\b")


def heuristic_hits(text: str) -> list[tuple[str, str]]:
    """(reason, matched text) for every heuristic that fires; "i g n o r e" is read as "ignore"."""
    text = normalise(text)
    if _SPACED.search(text):
        text += "\n" + _SPACED.sub(lambda m: m.group(0).replace(" ", ""), text).replace("  ", " ")
    hits = [(reason, m.group(0)) for reason, rx in HEURISTICS for m in [rx.search(text)] if m]
    return list(dict.fromkeys(hits))


def decoded_payloads(text: str) -> list[str]:
    """Readable text hidden in base64 or hex blobs."""
    found = []
    for m in _B64.finditer(text):
        blob = m.group(0)
        try:
            raw = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        found += [s for s in [_readable(raw)] if s]
    if len(_PERCENT.findall(text)) >= 4:
        found += [s for s in [_readable(urllib.parse.unquote_to_bytes(text))] if s]
    if len(_UNICODE_ESCAPE.findall(text)) >= 3:
        found.append(_UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
    for m in _HEX.finditer(text):
        try:
            raw = bytes.fromhex(re.sub(r"[ :]", "", m.group(0)))
        except ValueError:
            continue
        found += [s for s in [_readable(raw)] if s]
    return found


def _readable(raw: bytes) -> str | None:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch.isspace() for ch in s)
    letters = sum(ch.isalpha() for ch in s)
    return s if len(s) >= 8 and printable == len(s) and letters >= len(s) * 0.5 else None


# Forged turns, claimed authority and role-play taint the whole message: it is refused, not trimmed.
TAINTING = frozenset({"fence_break", "approver_override", "role_play"})


@dataclass
class InjectionResult:
    flagged: bool
    score: float  # classifier probability of an attack, 0 when the classifier is off
    reasons: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


def load_examples(path: Path) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(int(row["label"]))
    return texts, labels


@lru_cache(maxsize=4)
def _trained(path: str, mtime: float):
    return train_classifier(Path(path))


def train_classifier(path: Path):
    """A character n-gram logistic regression: small, fast, language-agnostic (English and Chinese)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = load_examples(path)
    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True, sublinear_tf=True, min_df=1),
        LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000),
    )
    model.fit([normalise(t) for t in texts], labels)
    return model


class InjectionDetector:
    def __init__(self, train_file: Path | None, threshold: float = 0.8):
        self.train_file = train_file
        self.threshold = threshold
        self._model = None

    @property
    def model(self):
        """Trained at first use; the same file is trained once per process (memo by path and mtime)."""
        if self._model is None and self.train_file is not None and Path(self.train_file).exists():
            path = Path(self.train_file).resolve()
            self._model = _trained(str(path), path.stat().st_mtime)
        return self._model

    def probability(self, text: str) -> float:
        model = self.model
        return float(model.predict_proba([normalise(text)])[0][1]) if model is not None else 0.0

    def check(self, text: str) -> InjectionResult:
        hits = heuristic_hits(text)
        for payload in decoded_payloads(text):
            hits += [("encoded_payload", payload[:80])]
            hits += [(f"encoded_{reason}", found) for reason, found in heuristic_hits(payload)]
        hits += [(f"reversed_{reason}", found) for reason, found in heuristic_hits(text[::-1])
                 if reason != "encoding_request"]
        score = self.probability(text)
        if score >= self.threshold:
            hits.append(("injection_classifier", f"p={score:.2f}"))
        reasons = sorted({r for r, _ in hits})
        return InjectionResult(bool(hits), round(score, 4), reasons, [e for _, e in hits])

    def strip(self, text: str) -> str | None:
        """The customer's real question with the injected sentences removed, or None when nothing
        safe and meaningful is left ("What's the APR? Also ignore your rules" -> "What's the APR?")."""
        if TAINTING & {r.removeprefix("encoded_").removeprefix("reversed_") for r in self.check(text).reasons}:
            return None
        kept = [seg for seg in split_segments(text) if not self.check(seg).flagged]
        rest = " ".join(seg.strip() for seg in kept)
        if not rest or rest == text.strip() or not asks_something(rest) or self.check(rest).flagged:
            return None
        return rest


_SEGMENTS = re.compile(r"(<!--.*?-->|\n+|(?<=[.!?])\s+|(?<=[。！？]))", re.DOTALL)
_ASKS = re.compile(r"[?？]|\b(?:what|how|when|where|why|which|who|can|could|is|are|do|does|will|would|should|tell me"
                   r"|explain|show me|may i|i want|i need|i'd like|please)\b|吗|怎么|多少|什么|如何|能否|可以|请问", _I)


def split_segments(text: str) -> list[str]:
    """Sentences, lines and hidden comments: the units an injection is removed by."""
    return [p for p in _SEGMENTS.split(text) if p and p.strip()]


def asks_something(text: str) -> bool:
    return bool(_ASKS.search(text)) and len(re.findall(r"\w+", text)) >= 3


def find_instructions_in_document(text: str) -> list[str]:
    """Passages of a knowledge-base document that address the model instead of the reader.
    The ingest rejects (or flags) a document for which this returns anything."""
    found: list[str] = []
    for line in normalise(text).splitlines():
        for reason, rx in HEURISTICS:
            if reason == "encoding_request":
                continue
            found += [f"{reason}: {m.group(0).strip()}" for m in rx.finditer(line)]
        found += [f"addressed_to_model: {m.group(0).strip()}" for rx in _DOC_ONLY for m in rx.finditer(line)]
        found += [f"encoded_payload: {p[:60]}" for p in decoded_payloads(line) if heuristic_hits(p)]
    return list(dict.fromkeys(found))
