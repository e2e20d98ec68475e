"""Marketing studio: campaign copy drafted from a brief, grounded in the product's terms, checked
against the compliance rule pack and revised until it passes (or returned marked as failing).

Two writers:
- template (the embedded model, which is small and unreliable with facts): the model writes one
  sentence of wording; code adds every figure, the disclosure, the lender's name and the opt-out
  line, from terms.yaml and the rule pack, and fits the channel's limits.
- free (a bigger model behind the openai backend): the model writes the whole copy; the checker
  and the revision loop keep it honest.
Either way each variant is re-checked after every revision; `passed` is the checker's verdict.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

import yaml
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field, field_validator

from assistant.marketing.channels import (
    CHANNELS, Channel, Language, channel_spec, check_limits, display_width, fit_width, measure_fields,
    parse_fields, render_fields, sms_capacity, sms_segments,
)
from assistant.guard.injection import InjectionDetector
from assistant.marketing.brief_check import brief_problems
from assistant.marketing.brief_fit import SCORE_FORMULA, brief_coverage, clarity, filler_found
from assistant.marketing.compliance import (
    ComplianceChecker, ComplianceReport, Finding, Rule, apply_fixes, detect_language, fill_slots, insert_texts,
    load_rule_pack, rules_path,
)
from assistant.config import Settings
from assistant.llm.prompts import load_prompt
from assistant.knowledge.terms import ProductTerms, Terms, load_terms, normalise_number
from assistant.types import Chunk, Citation

log = logging.getLogger(__name__)

Retrieve = Callable[..., list[Chunk]]
Strategy = Literal["draft", "llm", "fix", "fallback"]
COPY_FILE = "marketing_copy.yaml"
_META_TALK = re.compile(r"\b(?:as an ai|i'm an ai|i am an ai|language model|here is|here's|sure[,!]|i cannot|"
                        r"i can't|assistant)\b|HOOK|BODY", re.IGNORECASE)


class BriefError(ValueError):
    """The brief cannot be drafted as given; the message says what to change."""


# --- the brief ----------------------------------------------------------------------------------


class Offer(BaseModel):
    kind: Literal["coupon", "rate_discount", "fee_waiver", "cashback"]
    description: str = Field(min_length=3, max_length=120, description="as approved, e.g. '50 CNY off your first installment'")
    value: float = Field(gt=0)
    unit: Literal["CNY", "%"] = "CNY"
    months: int | None = Field(None, ge=1, le=36, description="how long a rate discount lasts")
    valid_until: date

    def figures(self) -> set[str]:
        """Numbers a draft may quote because of this offer."""
        found = {normalise_number(self.value), str(self.valid_until.year), str(self.valid_until.month),
                 str(self.valid_until.day), f"{self.valid_until.day:02d}", f"{self.valid_until.month:02d}"}
        if self.months:
            found.add(str(self.months))
        found |= {normalise_number(n) for n in re.findall(r"\d[\d,]*(?:\.\d+)?", self.description)}
        return found


class Brief(BaseModel):
    name: str = Field("campaign", min_length=1, max_length=80)
    product: str = Field(description="product key, id or name from terms.yaml: flex, cash, mall, business")
    audience: str = Field(min_length=2, max_length=120, description="e.g. new graduates, gig drivers")
    channel: Channel
    goal: str = Field("acquisition", max_length=200)
    tone: str = Field("friendly", max_length=60)
    language: Language = "en"
    variants: int = Field(3, ge=1, le=10)
    offer: Offer | None = None
    cta: str | None = Field(None, max_length=60)
    occasion: str = Field("", max_length=80, description="e.g. Spring Festival, back to school")
    message: str = Field("", max_length=120, description="the one thing every variant must say, in your words")
    sms_segments: int | None = Field(None, ge=1, le=2, description="SMS length in segments (default: the channel's 2)")
    notes: str = Field("", max_length=500, description="extra guidance for the writer")

    @field_validator("channel", mode="before")
    @classmethod
    def _channel_alias(cls, value: Any) -> Any:
        aliases = {"e-mail": "email", "mail": "email", "in-app banner": "banner", "in_app_banner": "banner",
                   "social post": "social", "text": "sms", "push notification": "push"}
        return aliases.get(str(value).strip().lower(), str(value).strip().lower())


# --- what the studio returns --------------------------------------------------------------------


class Fact(BaseModel):
    name: str
    value: str
    citation: Citation | None = None  # the retrieved chunk that states it, when one does


class Revision(BaseModel):
    attempt: int
    strategy: Strategy
    passed: bool
    rule_ids: list[str] = Field(default_factory=list)


class Score(BaseModel):
    total: float
    compliance: float
    length_fit: float
    diversity: float
    brief_coverage: float = 1.0
    clarity: float = 1.0
    formula: str = SCORE_FORMULA


class Variant(BaseModel):
    id: str
    rank: int = 0
    angle: str
    wording: Literal["llm", "fallback"]
    fields: dict[str, str]
    text: str
    passed: bool
    report: ComplianceReport
    revisions: int = 0
    history: list[Revision] = Field(default_factory=list)
    score: Score | None = None


class DraftSet(BaseModel):
    brief: Brief
    product: str
    writer: Literal["template", "free"]
    variants: list[Variant]
    facts: list[Fact] = Field(default_factory=list)
    sources: list[Citation] = Field(default_factory=list)
    rules_version: str = ""
    warnings: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def passed(self) -> list[Variant]:
        return [v for v in self.variants if v.passed]


class Angle(BaseModel):
    id: str
    idea: str
    hooks: dict[str, list[str]]
    when: dict[str, Any] = Field(default_factory=dict)

    def applies_to(self, product: ProductTerms) -> bool:
        return all(getattr(product, key, None) == value for key, value in self.when.items())


class CopyPieces(BaseModel):
    """prompts/marketing_copy.yaml, typed."""

    version: str
    angles: list[Angle]
    cta: dict[str, str]
    cta_short: dict[str, str]
    credit_notice: dict[str, str]
    greeting: dict[str, str]
    offer: dict[str, str]
    languages: dict[str, str]
    occasion_lead: dict[str, str] = Field(default_factory=dict)
    audience_lead: dict[str, str] = Field(default_factory=dict)
    filler: dict[str, list[str]] = Field(default_factory=dict)
    stopwords: dict[str, list[str]] = Field(default_factory=dict)


def load_copy_pieces(prompts_dir: Path) -> CopyPieces:
    return CopyPieces.model_validate(yaml.safe_load((Path(prompts_dir) / COPY_FILE).read_text(encoding="utf-8")))


# --- the studio ---------------------------------------------------------------------------------


class MarketingStudio:
    def __init__(self, settings: Settings, chat_model: Any | None, retrieve: Retrieve | None,
                 terms: Terms | None = None, checker: ComplianceChecker | None = None):
        self.settings = settings
        self.chat_model = chat_model
        self.retrieve = retrieve
        self.terms = terms or load_terms(settings.terms_file)
        self.checker = checker or ComplianceChecker(load_rule_pack(rules_path(settings)), self.terms)
        self.pieces = load_copy_pieces(settings.prompts_dir)
        self.max_revisions = settings.marketing_max_revisions
        self.injection = InjectionDetector(settings.injection_train_file if settings.injection_classifier else None,
                                           settings.injection_threshold)

    @property
    def writer(self) -> Literal["template", "free"]:
        mode = self.settings.marketing_writer
        if mode == "auto":
            return "free" if self.settings.llm_backend == "openai" and self.chat_model is not None else "template"
        return mode

    # public API ----------------------------------------------------------------------------------

    def check_copy(self, text: str, product: str | None = None, channel: str | None = None) -> ComplianceReport:
        return self.checker.check_copy(text, product=product, channel=channel)

    def check_draft_text(self, text: str, brief: Brief) -> ComplianceReport:
        """The check a generated draft gets: every rule, plus the grounding of every figure."""
        extra = brief.offer.figures() if brief.offer else set()
        return self.checker.check_copy(text, product=brief.product, channel=brief.channel, scope="draft",
                                       extra_figures=extra)

    def revise_copy(self, text: str, product: str | None = None, channel: str | None = None,
                    rounds: int | None = None) -> tuple[str, ComplianceReport]:
        """Deterministic fixes for copy written by people, re-checked after each round."""
        report = self.check_copy(text, product, channel)
        for _ in range(self.max_revisions if rounds is None else rounds):
            if report.passed:
                break
            fixed = apply_fixes(self.checker, text, report, product, channel)
            if fixed == text:
                break
            text, report = fixed, self.check_copy(fixed, product, channel)
        return text, report

    def draft(self, brief: Brief) -> DraftSet:
        product = self.validate_brief(brief)
        warnings: list[str] = []
        chunks = self._retrieve(brief, product, warnings)
        count = _candidate_count(brief.variants, with_model=self.chat_model is not None)
        candidates = [self._variant(brief, product, chunks, i) for i in range(count)]
        for v in candidates:
            v.score = Score(total=0.0, compliance=0.0, length_fit=0.0, diversity=1.0,
                            brief_coverage=brief_coverage(v.text, brief, set(self.pieces.stopwords.get(brief.language, []))),
                            clarity=clarity(v.text, self.pieces.filler.get(brief.language, [])))
        candidates = _distinct(candidates, brief, warnings)
        ranked = rank_variants(candidates, brief.variants)
        return DraftSet(
            brief=brief, product=product.key, writer=self.writer, variants=ranked,
            facts=self.facts(product, chunks), sources=_citations(chunks),
            rules_version=self.checker.pack.version, warnings=warnings,
        )

    def validate_brief(self, brief: Brief) -> ProductTerms:
        try:
            product = self.terms.product(brief.product)
        except KeyError as exc:
            raise BriefError(str(exc.args[0])) from None
        problems = offer_problems(brief.offer, product) if brief.offer else []
        fields = {"name": brief.name, "audience": brief.audience, "goal": brief.goal, "occasion": brief.occasion,
                  "message": brief.message, "tone": brief.tone, "notes": brief.notes, "cta": brief.cta or "",
                  "offer": brief.offer.description if brief.offer else ""}
        problems += brief_problems(fields, lambda text: self._banned_findings(text, product), self.injection)
        if problems:
            raise BriefError("; ".join(problems))
        return product

    def facts(self, product: ProductTerms, chunks: list[Chunk]) -> list[Fact]:
        figures = {
            "APR": f"{normalise_number(product.apr_min_pct)}%-{normalise_number(product.apr_max_pct)}%",
            "origination fee": f"{normalise_number(product.origination_fee_pct)}%",
            "loan amount": f"{normalise_number(product.limit_min)}-{normalise_number(product.limit_max)} "
                           f"{self.terms.lender.currency}",
            "terms (months)": ", ".join(str(t) for t in product.term_months),
            "cooling-off period (days)": str(product.cooling_off_days),
        }
        return [Fact(name=name, value=value, citation=_citing(chunks, value)) for name, value in figures.items()]

    # one variant: write, assemble, check, revise -------------------------------------------------

    def _variant(self, brief: Brief, product: ProductTerms, chunks: list[Chunk], index: int) -> Variant:
        angle, hook, alt = self._angle(product, brief.language, index, _title_limit(brief.channel))
        notes = _notes(chunks)
        free = self._free_text(brief, product, angle, notes) if self.writer == "free" and self.chat_model else None
        if free:
            text, wording, source = free, "", "llm"
        else:
            wording, source = self._wording(brief, product, angle, notes, hook)
            text = self.assemble(brief, product, hook, wording, alt)
        report = self.check_draft_text(text, brief)
        history = [Revision(attempt=0, strategy="draft", passed=report.passed, rule_ids=report.rule_ids)]
        strategies = self._strategies()
        for attempt in range(1, self.max_revisions + 1):
            if report.passed:
                break
            strategy = strategies[min(attempt - 1, len(strategies) - 1)]
            text, source = self._revise(strategy, text, report, brief, product, (hook, alt), source)
            report = self.check_draft_text(text, brief)
            history.append(Revision(attempt=attempt, strategy=strategy, passed=report.passed, rule_ids=report.rule_ids))
        return Variant(
            id=f"v{index + 1}", angle=angle.id, wording=source, fields=parse_fields(text, brief.channel), text=text,
            passed=report.passed, report=report, revisions=len(history) - 1, history=history,
        )

    def _strategies(self) -> list[Strategy]:
        return (["llm"] if self.chat_model is not None else []) + ["fix", "fallback"]

    def _revise(self, strategy: Strategy, text: str, report: ComplianceReport, brief: Brief,
                product: ProductTerms, hooks: tuple[str, str], source: str) -> tuple[str, str]:
        if strategy == "llm":
            rewritten = self._llm_rewrite(text, report, brief, product)
            if rewritten is None:
                return text, source
            if self.writer == "free":
                return rewritten, "llm"
            return self.assemble(brief, product, hooks[0], rewritten, hooks[1]), "llm"
        if strategy == "fix":
            return apply_fixes(self.checker, text, report, brief.product, brief.channel), source
        return self.assemble(brief, product, hooks[0], "", hooks[1]), "fallback"  # approved hooks only

    # the model's part ----------------------------------------------------------------------------

    def _wording(self, brief: Brief, product: ProductTerms, angle: Angle, notes: str,
                 hook: str) -> tuple[str, Literal["llm", "fallback"]]:
        if self.chat_model is None:
            return "", "fallback"
        budget = 90 if brief.channel in ("sms", "push", "banner") else 160
        prompt = load_prompt(self.settings.prompts_dir, "marketing_draft.md").render(
            product_name=product.name, product_kind=product.kind, product_notes=notes, goal=brief.goal,
            channel=brief.channel, angle=fill_slots(angle.idea, _term_values(product)), audience=brief.audience,
            sentences="one", max_chars=budget,
        )
        raw = self._ask(brief, prompt)
        wording = self.sanitize(raw, brief, product)
        return (wording, "llm") if wording else ("", "fallback")

    def _llm_rewrite(self, text: str, report: ComplianceReport, brief: Brief, product: ProductTerms) -> str | None:
        findings = "\n".join(f"- {f.rule_id}: {f.message} Fix: {f.fix}" for f in report.findings)
        prompt = load_prompt(self.settings.prompts_dir, "marketing_revise.md").render(
            product_name=product.name, findings=findings, copy=text, max_chars=300)
        raw = self._ask(brief, prompt).strip()
        if self.writer == "free":
            return render_fields(parse_fields(raw, brief.channel), brief.channel) if raw else None
        return self.sanitize(raw, brief, product) or None

    def _free_text(self, brief: Brief, product: ProductTerms, angle: Angle, notes: str) -> str | None:
        spec = channel_spec(brief.channel)
        language = brief.language
        opt_out = spec.opt_out.get(language)
        prompt = load_prompt(self.settings.prompts_dir, "marketing_free.md").render(
            channel=brief.channel, product_name=product.name, product_kind=product.kind,
            lender=self.terms.lender.name, audience=brief.audience, goal=brief.goal, tone=brief.tone,
            language_name=self.pieces.languages.get(language, language), angle=angle.idea, product_notes=notes,
            disclosure=self.checker.disclosure(product, language),
            offer_instruction=(f'Include the offer: "{self._offer_line(brief)}"' if brief.offer else "No offer."),
            opt_out_instruction=(f'End with: "{opt_out}"' if opt_out else ""),
            limits=", ".join(f"{f.name} {f.limit} {'segments' if f.measure == 'sms' else 'characters'}"
                             for f in spec.fields),
            format=" / ".join(f"{f.label}: ..." if f.label else "the message" for f in spec.fields),
        )
        raw = self._ask(brief, prompt).strip()
        if not raw:
            return None
        return render_fields(parse_fields(raw, brief.channel), brief.channel)

    def _ask(self, brief: Brief, prompt: str) -> str:
        system = load_prompt(self.settings.prompts_dir, "marketing_system.md").render(
            lender=self.terms.lender.name, language_name=self.pieces.languages.get(brief.language, brief.language),
            tone=brief.tone, audience=brief.audience)
        try:
            reply = self.chat_model.invoke([SystemMessage(content=system), HumanMessage(content=prompt)])
        except Exception as exc:  # a model failure must not lose the campaign: fall back to approved hooks
            log.warning("marketing: the model failed (%s); using approved hooks", exc)
            return ""
        return str(getattr(reply, "content", reply))

    def sanitize(self, raw: str, brief: Brief, product: ProductTerms) -> str:
        """Keep the model's wording only where it is safe to use: right language, no figures (code adds
        them), nothing a banned-phrase rule flags, no talk about itself. "" when nothing is left."""
        text = re.sub(r"[\U00010000-\U0010ffff]", "", raw)  # emoji would force SMS into UCS-2
        text = re.sub(r"^\s*(?:hook|body|copy|message|sms|title)\s*[:：]\s*", "", text, flags=re.IGNORECASE | re.MULTILINE)
        text = text.replace("*", "").replace("#", "").strip().strip('"“”\'')
        kept = []
        for sentence in _sentences(text):
            sentence = sentence.strip().strip('"“”\'')
            if (not sentence or re.search(r"\d", sentence) or _META_TALK.search(sentence)
                    or detect_language(sentence) != brief.language or _too_short(sentence, brief.language)):
                continue
            if brief.language == "en" and not re.fullmatch(r"[\x20-\x7e]+", sentence):
                continue
            if self._banned_findings(sentence, product) or _echo_or_noise(sentence, product):
                continue
            if filler_found(sentence, self.pieces.filler.get(brief.language, [])):
                continue
            kept.append(sentence)
            if len(kept) == 2:
                break
        return " ".join(kept) if brief.language == "en" else "".join(kept)

    def _banned_findings(self, text: str, product: ProductTerms) -> list[Finding]:
        rules = [r for r in self.checker.pack.active() if r.kind == "banned_phrase"]
        ctx = self.checker.context(text, product.key, None)
        return [f for r in rules for f in self.checker.check_rule(r, text, ctx)]

    # assembly: figures and mentions from data, fitted to the channel -----------------------------

    def assemble(self, brief: Brief, product: ProductTerms, hook: str, wording: str, alt: str = "") -> str:
        language = brief.language
        parts = {
            "hook": hook, "wording": wording if wording != hook else "", "alt": alt,
            "disclosure": self.checker.disclosure(product, language),
            "offer": self._offer_line(brief) if brief.offer else "",
            "cta": brief.cta or self.pieces.cta[language], "notice": self.pieces.credit_notice[language],
            "lender": self._lender_line(brief, product),
            "lead": self._lead(brief), "audience": self._audience_line(brief),
            "occasion": self._occasion_line(brief), "message": brief.message,
        }
        layout = _LAYOUTS[brief.channel]
        for dropped in _DROP_ORDER[brief.channel]:
            text = self._with_mentions(layout(parts, self.pieces, language), brief, product)
            if self._fits(text, brief):
                return text
            parts[dropped] = ""
        return self._shortened(parts, layout, brief, product)

    def _fits(self, text: str, brief: Brief) -> bool:
        """Within the channel's limits, and within the brief's SMS segments when it asks for fewer."""
        if check_limits(parse_fields(text, brief.channel), brief.channel):
            return False
        return not (brief.channel == "sms" and brief.sms_segments and sms_segments(text) > brief.sms_segments)

    def _lead(self, brief: Brief) -> str:
        """The brief's own words that open every variant: the occasion, then the key message."""
        occasion = self._occasion_line(brief)
        return _join(brief.language, occasion, brief.message) if (occasion or brief.message) else ""

    def _occasion_line(self, brief: Brief) -> str:
        template = self.pieces.occasion_lead.get(brief.language, "")
        return fill_slots(template, {"occasion": brief.occasion}) if template and brief.occasion else ""

    def _audience_line(self, brief: Brief) -> str:
        template = self.pieces.audience_lead.get(brief.language, "")
        return fill_slots(template, {"audience": brief.audience}) if template and brief.audience else ""

    def _shortened(self, parts: dict[str, str], layout: Callable, brief: Brief, product: ProductTerms) -> str:
        """Last resort: cut the hook until the copy fits (never the disclosure or the mentions)."""
        hook = parts["hook"]
        while True:
            parts["hook"] = hook
            text = self._with_mentions(layout(parts, self.pieces, brief.language), brief, product)
            if self._fits(text, brief) or not hook:
                return text
            hook = fit_width(hook, max(0, display_width(hook) - 8))

    def _with_mentions(self, text: str, brief: Brief, product: ProductTerms) -> str:
        """Add what a required_mention rule of the pack asks for (lender name, opt-out line) and is missing."""
        ctx = self.checker.context(text, product.key, brief.channel)
        ctx.language = brief.language
        inserts = []
        for rule in self._mention_rules(brief.channel):
            if self.checker.check_rule(rule, text, ctx):
                insert = self.checker.fix_insert_text(rule, ctx)
                if insert:
                    inserts.append((rule.fix.position, insert))
        return insert_texts(text, inserts, brief.channel, brief.language) if inserts else text

    def _lender_line(self, brief: Brief, product: ProductTerms) -> str:
        """The lender's name as the pack's lender fix writes it, without its punctuation (for sign-offs)."""
        for rule in self._mention_rules(brief.channel):
            if rule.fix.action == "insert" and "lender_name" in str(rule.patterns.en) + str(rule.fix.insert):
                ctx = self.checker.context("", product.key, brief.channel)
                ctx.language = brief.language
                return self.checker.fix_insert_text(rule, ctx).strip(" :：【】")
        return self.terms.lender.name

    def _mention_rules(self, channel: str) -> list[Rule]:
        return [r for r in self.checker.pack.active() if r.kind == "required_mention"
                and (r.channels is None or channel in r.channels)]

    def _offer_line(self, brief: Brief) -> str:
        offer = brief.offer
        when = (f"{offer.valid_until.day} {offer.valid_until:%b %Y}" if brief.language == "en"
                else f"{offer.valid_until.year}年{offer.valid_until.month}月{offer.valid_until.day}日")
        return fill_slots(self.pieces.offer[brief.language], {"description": offer.description, "valid_until": when})

    def _angle(self, product: ProductTerms, language: str, index: int, title_limit: int | None) -> tuple[Angle, str, str]:
        """The variant's angle, its hook (fitting the channel's title field) and the angle's other hook."""
        angles = [a for a in self.pieces.angles if a.applies_to(product)]
        angles.sort(key=lambda a: not a.when)  # product-specific angles first: they say the most
        angle = angles[index % len(angles)]
        values = _term_values(product)
        hooks = [fill_slots(h, values) for h in (angle.hooks.get(language) or angle.hooks["en"])]
        start = (index // len(angles)) % len(hooks)
        ordered = hooks[start:] + hooks[:start]
        if title_limit:
            fitting = [h for h in ordered if display_width(h.rstrip(".。")) <= title_limit]
            ordered = fitting + [h for h in ordered if h not in fitting]
            if not fitting:
                ordered[0] = fit_width(ordered[0], title_limit)
        return angle, ordered[0], (ordered[1] if len(ordered) > 1 else "")

    def _retrieve(self, brief: Brief, product: ProductTerms, warnings: list[str]) -> list[Chunk]:
        if self.retrieve is None:
            warnings.append("no knowledge base: facts come from terms.yaml only, without citations")
            return []
        query = f"{product.name} {product.kind} APR fees {brief.audience} {brief.goal}"
        try:
            return list(self.retrieve(query, self.settings.retrieval_k, filters={"product": product.key}))
        except Exception as exc:  # e.g. the index is not built yet: draft without citations, say so
            warnings.append(f"retrieval failed ({exc}); facts come from terms.yaml only")
            return []


# --- channel layouts ----------------------------------------------------------------------------


def _join(language: str, *pieces: str) -> str:
    pieces = tuple(p.strip() for p in pieces if p and p.strip())
    if language == "zh":
        return "".join(p if p.endswith(("。", "！", "？", "】")) else p + "。" for p in pieces)
    return " ".join(p if p.endswith((".", "!", "?", ":")) else p + "." for p in pieces)


def _sms(p: dict[str, str], pieces: CopyPieces, lang: str) -> str:
    return _join(lang, p["audience"], p["occasion"], p["message"], p["hook"], p["wording"], p["disclosure"], p["offer"],
                 p["cta"])


def _push(p: dict[str, str], pieces: CopyPieces, lang: str) -> str:
    limit = CHANNELS["push"].field("title").limit
    title = _title(p, limit)
    lead = _rest_of_lead(p, title, lang)
    body = _join(lang, p["audience"], lead, p["wording"] or p["alt"], p["disclosure"], p["offer"])
    return render_fields({"title": title, "body": body}, "push")


def _title(p: dict[str, str], limit: int) -> str:
    """The brief's lead (or its occasion, or its message) when it fits the title, else the angle's hook."""
    for candidate in (p["lead"], p["occasion"], p["message"], p["hook"]):
        candidate = candidate.rstrip(".。")
        if candidate and display_width(candidate) <= limit:
            return candidate
    return fit_width(p["hook"].rstrip(".。"), limit)


def _email(p: dict[str, str], pieces: CopyPieces, lang: str) -> str:
    subject = _title(p, CHANNELS["email"].field("subject").limit)
    lead = _rest_of_lead(p, subject, lang)
    paragraphs = [pieces.greeting[lang], _join(lang, p["audience"], lead), _join(lang, p["wording"] or p["hook"], p["alt"]),
                  _join(lang, p["disclosure"], p["notice"]), _join(lang, p["offer"]), _join(lang, p["cta"]),
                  p["lender"]]
    return render_fields({"subject": subject, "body": "\n".join(x for x in paragraphs if x)}, "email")


def _banner(p: dict[str, str], pieces: CopyPieces, lang: str) -> str:
    headline = _title(p, CHANNELS["banner"].field("headline").limit)
    lead = _rest_of_lead(p, headline, lang)
    return render_fields({"headline": headline, "body": _join(lang, lead, p["disclosure"], p["offer"]),
                          "cta": pieces.cta_short[lang]}, "banner")


def _rest_of_lead(p: dict[str, str], title: str, lang: str) -> str:
    """What of the brief's lead the title did not already say."""
    same = lambda x: x.rstrip(".。?？") == title.rstrip(".。?？")  # noqa: E731
    if same(p["lead"]):
        return ""
    return _join(lang, *(x for x in (p["occasion"], p["message"]) if x and not same(x)))


def _social(p: dict[str, str], pieces: CopyPieces, lang: str) -> str:
    return _join(lang, p["audience"], p["lead"], p["hook"], p["wording"], p["alt"], p["disclosure"], p["notice"], p["offer"], p["cta"])


_LAYOUTS: dict[str, Callable[[dict[str, str], CopyPieces, str], str]] = {
    "sms": _sms, "push": _push, "email": _email, "banner": _banner, "social": _social,
}
# What goes first when the copy is too long (never the disclosure, the offer or a required mention).
_DROP_ORDER = {
    "sms": ["wording", "audience", "cta", "occasion", "hook"], "push": ["wording", "audience", "alt"],
    "email": ["wording", "alt"], "banner": ["wording", "alt", "message", "occasion"], "social": ["alt", "notice", "wording", "cta", "audience", "hook"],
}


# --- ranking ------------------------------------------------------------------------------------


def _distinct(variants: list[Variant], brief: Brief, warnings: list[str]) -> list[Variant]:
    """Identical texts are one variant; say so when fewer distinct ones fit than were asked for."""
    seen: dict[str, Variant] = {}
    for v in variants:
        seen.setdefault(v.text, v)
    if len(seen) < brief.variants:
        warnings.append(f"only {len(seen)} distinct variant(s) fit the {brief.channel} limits"
                        + (f" of {brief.sms_segments} segment(s)" if brief.channel == "sms" and brief.sms_segments else ""))
    return list(seen.values())


def rank_variants(variants: list[Variant], keep: int, diversity_weight: float = 0.5) -> list[Variant]:
    """Passing first; then length fit; then greedy diversity (maximal marginal relevance)."""
    for v in variants:
        compliance = 1.0 if v.passed else max(0.0, 0.5 - 0.1 * len(v.report.findings))
        fit = v.score or Score(total=0.0, compliance=0.0, length_fit=0.0, diversity=1.0)
        v.score = fit.model_copy(update={"compliance": compliance, "length_fit": length_fit(v)})
    pool = list(variants)
    chosen: list[Variant] = []
    while pool and len(chosen) < keep:
        def value(v: Variant) -> float:
            overlap = max((jaccard(v.text, c.text) for c in chosen), default=0.0)
            v.score.diversity = round(1.0 - overlap, 3)
            s = v.score
            s.total = round(2.0 * s.compliance + s.brief_coverage + s.clarity + 0.5 * s.length_fit
                            + diversity_weight * s.diversity, 3)
            return v.score.total
        best = max(pool, key=lambda v: (v.passed, value(v)))
        chosen.append(best)
        pool.remove(best)
    for rank, v in enumerate(chosen, 1):
        v.rank = rank
    return chosen


def length_fit(variant: Variant) -> float:
    """1.0 when every field uses at least 60% of its room and none overflows; less when copy is thin."""
    metrics = variant.report.metrics or measure_fields(variant.fields, variant.report.channel or "social")
    scores = []
    for m in metrics:
        if m.unit == "width" and m.limit > 300:  # a long e-mail body has no length to fit
            continue
        if m.unit == "segments":
            capacity = sms_capacity(m.limit, m.encoding or "GSM-7")
            used = (m.units or 0) / capacity
        else:
            used = m.width / m.limit if m.limit else 0.0
        scores.append(0.0 if used > 1 else min(1.0, used / 0.6))
    return round(sum(scores) / len(scores), 3) if scores else 1.0


# --- offers -------------------------------------------------------------------------------------


def offer_problems(offer: Offer, product: ProductTerms) -> list[str]:
    """An offer must be possible for the product (terms.yaml), or it would put a false figure in the copy."""
    problems = []
    if offer.kind == "fee_waiver" and not product.origination_fee_pct:
        problems.append(f"{product.name} has no origination fee to waive")
    if offer.kind == "rate_discount":
        if offer.unit != "%" or offer.value >= 100:
            problems.append("a rate discount is a percentage below 100")
        if offer.months and offer.months > max(product.term_months):
            problems.append(f"a {offer.months}-month discount is longer than {product.name}'s longest term")
    if offer.kind in ("coupon", "cashback") and offer.unit != "CNY":
        problems.append(f"a {offer.kind} is an amount in CNY")
    if offer.kind in ("coupon", "cashback") and offer.value >= product.limit_min:
        problems.append(f"a {offer.value:g} CNY {offer.kind} is not smaller than {product.name}'s smallest loan")
    return problems


# --- exports ------------------------------------------------------------------------------------


def export_draft_set(draft_set: DraftSet, out_dir: Path) -> dict[str, Path]:
    """drafts.json (everything), drafts.csv (one row per variant), drafts.md (for review)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "drafts.json", "csv": out_dir / "drafts.csv", "markdown": out_dir / "drafts.md"}
    paths["json"].write_text(draft_set.model_dump_json(indent=2), encoding="utf-8")
    paths["csv"].write_text(to_csv(draft_set), encoding="utf-8")
    paths["markdown"].write_text(to_markdown(draft_set), encoding="utf-8")
    return paths


def to_csv(draft_set: DraftSet) -> str:
    field_names = [f.name for f in channel_spec(draft_set.brief.channel).fields]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["rank", "id", "passed", "score", "angle", "wording", "revisions", *field_names, "text", "findings"])
    for v in draft_set.variants:
        findings = "; ".join(f"{f.rule_id}: {f.message}" for f in v.report.findings)
        writer.writerow([v.rank, v.id, v.passed, v.score.total if v.score else "", v.angle, v.wording, v.revisions,
                         *[v.fields.get(n, "") for n in field_names], v.text, findings])
    return buffer.getvalue()


def to_markdown(draft_set: DraftSet) -> str:
    b = draft_set.brief
    lines = [f"# {b.name}: {b.channel} drafts for {draft_set.product}", "",
             f"Audience: {b.audience} · goal: {b.goal} · tone: {b.tone} · language: {b.language} · "
             f"writer: {draft_set.writer} · rules {draft_set.rules_version}", ""]
    for w in draft_set.warnings:
        lines.append(f"> warning: {w}")
    for v in draft_set.variants:
        verdict = "PASSES" if v.passed else "FAILS - do not send"
        lines += ["", f"## {v.rank}. {v.id} ({v.angle}) - {verdict}", "", "```", v.text, "```", "",
                  f"score {v.score.total if v.score else '-'} · revisions {v.revisions} · wording {v.wording}"]
        for f in v.report.findings:
            where = f" at {f.span.text!r}" if f.span else ""
            lines.append(f"- **{f.rule_id}** ({f.severity}){where}: {f.message}. Fix: {f.fix}")
    lines += ["", "## Facts and sources", ""]
    for fact in draft_set.facts:
        cite = f" ({fact.citation.doc_id}, {fact.citation.section})" if fact.citation else ""
        lines.append(f"- {fact.name}: {fact.value}{cite}")
    for c in draft_set.sources:
        lines.append(f"- source: {c.title} - {c.section} (`{c.chunk_id}`)")
    return "\n".join(lines) + "\n"


# --- helpers ------------------------------------------------------------------------------------


def _title_limit(channel: str) -> int | None:
    """The width of the field a hook becomes on this channel (push title, e-mail subject, banner headline)."""
    spec = channel_spec(channel)
    titles = [f.limit for f in spec.fields if f.name in ("title", "subject", "headline")]
    return titles[0] if titles else None


def _candidate_count(wanted: int, with_model: bool) -> int:
    """Spare candidates let ranking choose; each costs a model call, so one spare with a model."""
    return wanted + (1 if with_model else min(2, wanted))


def _term_values(product: ProductTerms) -> dict[str, str]:
    return {k: normalise_number(v) for k, v in product.model_dump().items() if isinstance(v, (int, float))
            and not isinstance(v, bool)}


def _notes(chunks: list[Chunk], limit: int = 400) -> str:
    if not chunks:
        return "(none)"
    body = chunks[0].text.split("\n", 1)[-1]
    return body[:limit].rsplit(" ", 1)[0] if len(body) > limit else body


def _citations(chunks: list[Chunk]) -> list[Citation]:
    return [Citation.of(c) for c in chunks]


def _citing(chunks: list[Chunk], value: str) -> Citation | None:
    needles = [n for n in re.split(r"[-, ]+", value) if re.search(r"\d", n)]
    for chunk in chunks:
        if needles and all(n in chunk.text.replace(",", "") for n in needles):
            return Citation.of(chunk)
    return None


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?。！？])\s*|\n+", text) if s and s.strip()]


def _echo_or_noise(sentence: str, product: ProductTerms) -> bool:
    """The small model often repeats the prompt ("Meadow Cash, a cash installment loan") or writes
    Title Case Slogans; neither is copy a marketer would send."""
    words = sentence.split()
    capitalised = sum(w[:1].isupper() for w in words)
    return (product.kind.lower() in sentence.lower() or len(sentence) > 200
            or (len(words) >= 4 and capitalised / len(words) > 0.6))


def _too_short(sentence: str, language: str) -> bool:
    return len(re.findall(r"[\u4e00-\u9fff]", sentence)) < 4 if language == "zh" else len(sentence.split()) < 3


_TOKENS = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*%?", re.IGNORECASE)


def tokens(text: str) -> set[str]:
    """Word tokens; Chinese as character bigrams."""
    cjk = "".join(re.findall(r"[\u4e00-\u9fff]", text))
    return {t.lower() for t in _TOKENS.findall(text)} | {cjk[i:i + 2] for i in range(len(cjk) - 1)}


def jaccard(a: str, b: str) -> float:
    ta, tb = tokens(a), tokens(b)
    return len(ta & tb) / len(ta | tb) if ta | tb else 1.0
