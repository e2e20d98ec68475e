"""The guard: checks every message in and every reply out.

In: clean (empty, length, control characters) -> limits (per minute, conversation length) -> PII
(found, redacted for logs; codes and passwords never reach a skill) -> prompt injection -> signals
(self-harm, hardship, abuse, other customers' data, demands for approval or a fee waiver).
Out: the output policy (no promise before scoring, no internal score, no system prompt, no legal or
tax advice beyond the knowledge base) -> PII in the reply masked ("card ending 1234"), and a reply
holding someone else's data replaced. Every block is counted in metrics with its reason."""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

from assistant.guard import pii
from assistant.config import PROJECT_ROOT, Settings
from assistant.guard.injection import InjectionDetector
from assistant.metrics import GuardMetrics
from assistant.guard.output_policy import OutputPolicy, load_policy, prompt_ngrams
from assistant.llm.prompts import load_replies
from assistant.guard.ratelimit import RateLimiter, guard_state
from assistant.guard.vulnerability import detect_vulnerability, load_vulnerability_rules, vulnerability_rules_file
from assistant.types import Conversation, GuardVerdict, Reply

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_WORD = re.compile(r"[A-Za-z0-9']+|[\u4e00-\u9fff]")
GUARD_REPLIES = "guard_replies.yaml"


class InputError(ValueError):
    """A message the assistant cannot take, with a message for the customer."""

    def __init__(self, message: str, reason: str = "invalid_input"):
        super().__init__(message)
        self.reason = reason


class Guard:
    def __init__(self, settings: Settings, metrics: GuardMetrics | None = None,
                 limiter: RateLimiter | None = None):
        self.settings = settings
        self.metrics = metrics or GuardMetrics()
        self.limiter = limiter or RateLimiter(settings)
        self.policy_file = load_policy(_own_or_shipped(settings.knowledge_dir, "rules/guard_policy.yaml",
                                                        PROJECT_ROOT / "knowledge_base"))
        self.lender = _lender_details(settings)
        self.allow = [*self.lender.pop("allow"), *settings.pii_allow]
        replies_dir = _own_or_shipped(settings.prompts_dir, GUARD_REPLIES, PROJECT_ROOT / "prompts").parent
        self.replies = {k: v for k, v in load_replies(replies_dir, GUARD_REPLIES).items() if k != "version"}
        self.policy = OutputPolicy(self.policy_file, {k: self.say(k) for k in self.replies},
                                   prompt_ngrams(settings.prompts_dir))
        # every vulnerability signal list (self-harm, hardship, ...) is in rules/vulnerability.yaml
        self.vulnerability = load_vulnerability_rules(vulnerability_rules_file(settings))
        self.injection = InjectionDetector(settings.injection_train_file if settings.injection_classifier else None,
                                           settings.injection_threshold)

    @property
    def redact_pipeline_text(self) -> bool:
        return self.settings.redact_llm_input or self.settings.llm_backend == "openai"

    def say(self, name: str, **slots: object) -> str:
        """A reply from prompts/guard_replies.yaml with its {{slots}} filled."""
        values = {**self.lender, **slots}
        text = self.replies.get(name) or self.replies["fallback"]
        return _SLOT.sub(lambda m: str(values.get(m.group(1), m.group(0))), text).strip()

    # --- in ------------------------------------------------------------------------------

    def clean(self, message: str) -> str:
        text = unicodedata.normalize("NFKC", message or "")
        text = _CONTROL.sub("", text).strip()
        if not text:
            self.metrics.block("input", "empty")
            raise InputError(self.say("empty"), "empty")
        limit = self.settings.max_message_chars
        if len(text) > limit:
            # a long jailbreak (DAN and kin run to thousands of characters) is logged as the attack it is
            if self.injection.check(text[: 4 * limit]).flagged:
                log.warning("prompt injection flagged in an over-long message (%d characters)", len(text))
                self.metrics.block("input", "prompt_injection")
                raise InputError(self.say("prompt_injection"), "prompt_injection")
            self.metrics.block("input", "too_long")
            raise InputError(self.say("too_long", length=len(text), limit=limit), "too_long")
        return text

    def redact(self, text: str) -> str:
        return pii.redact(text, self.allow)

    def check_input(self, conversation: Conversation, message: str) -> GuardVerdict:
        text = self.clean(message)
        matches = pii.find_pii(text, self.allow)
        redacted = _tokens(text, matches)
        exceeded = self.limiter.check(conversation)
        if exceeded is not None:
            return self._blocked(exceeded.reason, redacted, [exceeded.reason], limit=exceeded.limit,
                                 retry_after_s=int(exceeded.retry_after_s + 0.999))
        self.limiter.record(conversation)
        self._remember_own_pii(conversation, matches)
        self.metrics.found_pii("input", [m.kind for m in matches])
        flags = [f"pii_{k}" for k in sorted({m.kind for m in matches})]

        signals = self.policy.input_signals(redacted)  # "[PHONE]" marks a number the rules may refer to
        signal = detect_vulnerability(redacted, self.vulnerability)
        signals.update(signal.by_kind if signal else {})
        vulnerable = list(signal.kinds) if signal else []
        if vulnerable:
            flags += ["vulnerable", *vulnerable]
        # a customer in difficulty goes to the vulnerable-customer path, never to a refusal
        policy_block = None if vulnerable else next(
            (r for r in ("other_customer_request", "approval_demand") if r in signals), None)

        attack = self.injection.check(text)
        question = text
        # the classifier alone does not outvote a clearer signal (abuse, hardship, a plain request)
        classifier_only = attack.reasons == ["injection_classifier"]
        if attack.flagged and not (classifier_only and (policy_block or signals)):
            log.warning("prompt injection flagged (%s) in conversation %s", ", ".join(attack.reasons), conversation.id)
            flags += ["prompt_injection", *attack.reasons]
            # "What's the APR? Also ignore your rules" is a customer; a page-long jailbreak is not
            strippable = not policy_block and len(text) <= self.settings.injection_strip_max_chars
            question = self.injection.strip(text) if strippable else None
            if question is None:
                return self._blocked("prompt_injection", redacted, flags)
            self.metrics.block("input", "prompt_injection_removed")  # answered without the injected part
            flags.append("injection_removed")
        elif policy_block:  # a plain request the guard answers itself, with its own polite reply
            return self._blocked(policy_block, redacted, [*flags, policy_block])

        notices = self._notices(question, signals, matches, flags)
        if "abusive" in flags and not vulnerable and not _has_substance(question, signals["abusive"]):
            return self._blocked("abusive", redacted, flags)
        kept = pii.find_pii(question, self.allow)
        pipeline_text = _tokens(question, kept) if self.redact_pipeline_text else pii.scrub_secrets(question, kept)
        self.metrics.flag("input", flags)
        return GuardVerdict(allowed=True, text=pipeline_text, redacted=redacted, flags=flags, notices=notices)

    def _notices(self, text: str, signals: dict, matches: list[pii.PiiMatch], flags: list[str]) -> list[str]:
        """What the customer is told before the answer; adds the matching flags."""
        notices = []
        if "self_harm" in signals:
            notices.append(self.say("self_harm_notice"))
        if "abusive" in signals or _shouting(text):
            flags.append("abusive" if "abusive" in signals else "shouting")
            notices.append(self.say("abusive_notice"))
        if "fee_demand" in signals:
            flags.append("fee_demand")
            notices.append(self.say("fee_demand_notice"))
        if any(m.kind in pii.SECRET_KINDS for m in matches):
            flags.append("secret_shared")
            notices.append(self.say("secret_notice"))
        return notices

    def _blocked(self, reason: str, redacted: str, flags: list[str], **slots: object) -> GuardVerdict:
        self.metrics.block("input", reason)
        self.metrics.flag("input", flags)
        return GuardVerdict(allowed=False, text="", redacted=redacted, flags=list(dict.fromkeys(flags)),
                            reply=self.say(reason, **slots))

    def _remember_own_pii(self, conversation: Conversation, matches: list[pii.PiiMatch]) -> None:
        """Masked handles ("card:card ending 1234") of what the customer told us, so a reply may echo
        their own data but no one else's. Never the values themselves."""
        keys = [m.key() for m in matches if m.kind not in pii.SECRET_KINDS]
        if keys:
            state = guard_state(conversation)
            state["own_pii"] = sorted(set(state.get("own_pii", [])) | set(keys))

    # --- out -----------------------------------------------------------------------------

    def check_output(self, conversation: Conversation, reply: Reply) -> Reply:
        review = self.policy.review(reply)
        text, flags = review.text, list(review.flags)
        matches = pii.find_pii(text, self.allow)
        own = set(guard_state(conversation).get("own_pii", []))
        if any(m.kind not in pii.SECRET_KINDS and m.key() not in own for m in matches):
            text, flags, review.whole = self.say("other_customer_data"), [*flags, "other_customer_data"], True
        elif matches:
            text = pii.mask(text, matches)
            flags.append("pii_masked")
        self.metrics.found_pii("output", [m.kind for m in matches])
        for flag in flags:
            if flag != "pii_masked":
                self.metrics.block("output", flag)
        if not flags:
            return reply
        update = {"text": text, "flags": sorted(set(reply.flags) | set(flags))}
        if review.whole:
            update |= {"path": "refused", "citations": [],
                       "meta": {**reply.meta, "replaced_reply": self.redact(reply.text)}}
        return reply.model_copy(update=update)


def _own_or_shipped(folder: Path, name: str, shipped: Path) -> Path:
    """A deployment's own policy or replies file if it has one, else the one shipped with the code
    (a knowledge base or prompt folder of its own need not copy the guard's files)."""
    own = Path(folder) / name
    return own if own.exists() else shipped / name


def _tokens(text: str, matches: list[pii.PiiMatch]) -> str:
    return pii.replace_spans(text, matches, lambda m: pii.TOKENS[m.kind])


def _shouting(text: str) -> bool:
    letters = [c for c in text if c.isascii() and c.isalpha()]
    return len(letters) >= 15 and sum(c.isupper() for c in letters) >= 0.8 * len(letters)


def _has_substance(text: str, abuse: list[str]) -> bool:
    """Is there a question or a request beside the insults? Then it deserves a real (calm) answer."""
    rest = text
    for phrase in abuse:
        rest = rest.replace(phrase, " ")
    return "?" in rest or "？" in rest or len(_WORD.findall(rest)) >= 6


def _lender_details(settings: Settings) -> dict:
    """Slots for the replies and the lender's own (non-personal) addresses, from terms.yaml."""
    from assistant.knowledge.terms import load_terms

    try:
        lender = load_terms(settings.terms_file).lender
    except (OSError, ValueError) as exc:  # replies still work; the slots stay visible in tests
        log.warning("guard: cannot read %s: %s", settings.terms_file, exc)
        return {"allow": []}
    extra = lender.model_extra or {}
    emails = [str(v) for k, v in extra.items() if "email" in k]
    return {"hotline": lender.hotline, "hotline_hours": extra.get("hotline_hours", ""), "lender": lender.name,
            "allow": [*emails, *[e.partition("@")[2] for e in emails]]}
