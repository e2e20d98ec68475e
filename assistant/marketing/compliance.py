"""Compliance checking of marketing copy against a rule pack kept as data.

The rules live in `knowledge_base/rules/compliance.yaml` (a compliance officer edits them, no code);
this module only knows the rule *kinds* (banned phrase, trigger term -> disclosure, required mention,
product figures, channel limits, ungrounded figure) and how to apply a deterministic fix for each.
Product figures come from `knowledge_base/products/terms.yaml`, never from Python.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.marketing.channels import CHANNELS, FieldMetrics, check_limits, measure_fields, parse_fields, render_fields
from assistant.knowledge.terms import ProductTerms, Terms, normalise_number

Severity = Literal["critical", "major", "minor"]
Kind = Literal["banned_phrase", "trigger_disclosure", "required_mention", "product_figures",
               "channel_limits", "ungrounded_figure"]
ChannelName = Literal["sms", "push", "email", "banner", "social"]

_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")
NUMBER = r"\d[\d,]*(?:\.\d+)?"
SLOTS = {  # placeholder -> what it stands for when no product is known (any product)
    "lender_name", "lender_short", "hotline", "product_name", "apr_min", "apr_max", "number",
}
# Full-width forms that Chinese copy uses for ASCII ones: mapped 1:1 so offsets stay true.
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)} | {
    ord("\u2019"): "'", ord("\u2018"): "'", ord("\u201c"): '"', ord("\u201d"): '"', ord("\u3000"): " ",
    ord("\u2013"): "-", ord("\u2014"): "-",
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


class RulePackError(ValueError):
    """The rule file cannot be used; the message names the file, the line and the rule."""


# --- the rule pack's schema ---------------------------------------------------------------------


def _check_regex(pattern: str) -> str:
    unknown = set(_SLOT.findall(pattern)) - SLOTS
    if unknown:
        raise ValueError(f"pattern '{pattern}' uses unknown placeholder(s) {sorted(unknown)}; "
                         f"known: {', '.join(sorted(SLOTS))}")
    try:
        re.compile(_SLOT.sub("0", pattern))
    except re.error as exc:
        raise ValueError(f"pattern '{pattern}' is not a valid regex: {exc}") from None
    return pattern


Regex = Annotated[str, AfterValidator(_check_regex)]


class Patterns(BaseModel):
    """Regular expressions (case-insensitive), by language; all of them are applied to every copy."""

    model_config = ConfigDict(extra="forbid")
    en: list[Regex] = Field(default_factory=list)
    zh: list[Regex] = Field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.en, *self.zh]

    def __bool__(self) -> bool:
        return bool(self.en or self.zh)


class Fix(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suggestion: str = Field(min_length=1)
    action: Literal["remove", "insert", "insert_disclosure", "replace_nearest", "none"] = "none"
    insert: dict[str, str] = Field(default_factory=dict)  # language -> text (placeholders allowed)
    position: Literal["start", "end"] = "end"


class Requirement(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    patterns: Patterns


class FigureCheck(BaseModel):
    """Numbers a pattern captures (groups v, v2, or a list) must be values of the product's fields."""

    model_config = ConfigDict(extra="forbid")
    name: str
    patterns: Patterns
    fields: list[str] = Field(default_factory=list)
    value: float | None = None  # the figure a phrase implies ("no fees" -> 0)
    requires_field: str | None = None  # the claim is only true when this field is set
    zero_if: str | None = None  # 0 is also allowed when this field is set (0% APR promotions)
    unless: Patterns = Field(default_factory=Patterns)

    @model_validator(mode="after")
    def _has_a_target(self) -> "FigureCheck":
        if not self.fields and not self.requires_field:
            raise ValueError(f"figure check {self.name!r} needs `fields` or `requires_field`")
        return self


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
    description: str = Field(min_length=1)
    severity: Severity
    kind: Kind
    enabled: bool = True
    scope: Literal["all", "draft"] = "all"  # "draft": only for generated drafts (grounding checks)
    channels: list[ChannelName] | None = None  # None: every channel (and copy without a channel)
    patterns: Patterns = Field(default_factory=Patterns)
    unless: Patterns = Field(default_factory=Patterns)  # a match in the same sentence cancels
    triggers: Patterns = Field(default_factory=Patterns)
    requires: list[Requirement] = Field(default_factory=list)
    checks: list[FigureCheck] = Field(default_factory=list)
    ignore: Patterns = Field(default_factory=Patterns)
    fix: Fix

    @model_validator(mode="after")
    def _kind_needs(self) -> "Rule":
        needs = {
            "banned_phrase": ("patterns", bool(self.patterns)),
            "required_mention": ("patterns", bool(self.patterns)),
            "trigger_disclosure": ("triggers and requires", bool(self.triggers) and bool(self.requires)),
            "product_figures": ("checks", bool(self.checks)),
        }
        if self.kind in needs and not needs[self.kind][1]:
            raise ValueError(f"a {self.kind} rule needs {needs[self.kind][0]}")
        return self


class Templates(BaseModel):
    """Text the fixes and the drafting studio insert, by language."""

    model_config = ConfigDict(extra="forbid")
    disclosure: dict[str, str]
    cost_fee: dict[str, str]
    cost_none: dict[str, str]


class RulePack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str
    effective_date: date
    fail_on: list[Severity] = Field(default_factory=lambda: ["critical", "major", "minor"])
    templates: Templates
    rules: list[Rule]

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)

    def active(self) -> list[Rule]:
        return [r for r in self.rules if r.enabled]


# --- loading with line numbers ------------------------------------------------------------------


def load_rule_pack(path: Path) -> RulePack:
    path = Path(path)
    name = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulePackError(f"{path}: cannot read the rule file: {exc}") from None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else "?"
        raise RulePackError(f"{name} line {line}: not valid YAML: {exc.problem or exc.context}") from None
    if not isinstance(data, dict):
        raise RulePackError(f"{name} line 1: expected a mapping with `version`, `templates` and `rules`")
    try:
        pack = RulePack.model_validate(data)
    except ValidationError as exc:
        raise RulePackError("\n".join(_explain(error, root, data, name) for error in exc.errors())) from None
    _check_unique_ids(pack, root, name)
    return pack


def _explain(error: dict[str, Any], root: yaml.Node, data: dict, name: str) -> str:
    loc = tuple(error["loc"])
    line = _line_of(root, loc)
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(str(p) for p in loc)
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        rules = data.get("rules") or []
        rule = rules[loc[1]] if loc[1] < len(rules) and isinstance(rules[loc[1]], dict) else {}
        label = f"rule {rule.get('id', '#' + str(loc[1] + 1))!r}"
        field = ".".join(str(p) for p in loc[2:])
        return f"{name} line {line}: {label}: {message}" + (f" (at {field})" if field and "pattern" not in message else "")
    return f"{name} line {line}: {where}: {message}"


def _line_of(node: yaml.Node | None, loc: tuple) -> int:
    """The line of the deepest node the error's path reaches (1-based)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _check_unique_ids(pack: RulePack, root: yaml.Node, name: str) -> None:
    seen: set[str] = set()
    for index, rule in enumerate(pack.rules):
        if rule.id in seen:
            raise RulePackError(f"{name} line {_line_of(root, ('rules', index, 'id'))}: rule {rule.id!r}: "
                                "duplicate rule id")
        seen.add(rule.id)


# --- results ------------------------------------------------------------------------------------


class Span(BaseModel):
    start: int
    end: int
    text: str


class Finding(BaseModel):
    rule_id: str
    severity: Severity
    span: Span | None = None  # None: something the copy lacks (a disclosure, the lender's name)
    message: str
    fix: str


class ComplianceReport(BaseModel):
    passed: bool
    findings: list[Finding] = Field(default_factory=list)
    product: str | None = None
    channel: str | None = None
    language: str = "en"
    rules_version: str = ""
    metrics: list[FieldMetrics] = Field(default_factory=list)

    @property
    def rule_ids(self) -> list[str]:
        return sorted({f.rule_id for f in self.findings})

    def blocking(self, fail_on: Iterable[str]) -> list[Finding]:
        return [f for f in self.findings if f.severity in set(fail_on)]


class CheckContext(BaseModel):
    product: ProductTerms | None = None
    channel: str | None = None
    language: str = "en"
    scope: Literal["all", "draft"] = "all"
    extra_figures: set[str] = Field(default_factory=set)  # e.g. an offer's figures in a draft


# --- the checker --------------------------------------------------------------------------------


class ComplianceChecker:
    def __init__(self, pack: RulePack, terms: Terms):
        self.pack = pack
        self.terms = terms
        self._compiled: dict[tuple[str, str | None], re.Pattern] = {}

    @classmethod
    def from_files(cls, rules_path: Path, terms: Terms) -> "ComplianceChecker":
        return cls(load_rule_pack(rules_path), terms)

    # public ------------------------------------------------------------------------------------

    def check_copy(self, text: str, product: str | None = None, channel: str | None = None,
                   scope: Literal["all", "draft"] = "all", extra_figures: Iterable[str] = ()) -> ComplianceReport:
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
        ctx = self.context(text, product, channel, scope, extra_figures)
        findings: list[Finding] = []
        for rule in self.pack.active():
            if rule.scope == "draft" and scope != "draft":
                continue
            if rule.channels is not None and channel not in rule.channels:
                continue
            findings += self.check_rule(rule, text, ctx)
        findings.sort(key=lambda f: (f.span.start if f.span else -1, f.rule_id))
        metrics = measure_fields(parse_fields(text, channel), channel) if channel else []
        return ComplianceReport(
            passed=not any(f.severity in self.pack.fail_on for f in findings), findings=findings,
            product=ctx.product.key if ctx.product else None, channel=channel, language=ctx.language,
            rules_version=self.pack.version, metrics=metrics,
        )

    def context(self, text: str, product: str | None, channel: str | None,
                scope: Literal["all", "draft"] = "all", extra_figures: Iterable[str] = ()) -> CheckContext:
        if product:
            terms = self.terms.product(product)
        else:
            named = self.products_named(text)
            terms = self.terms.products[named[0]] if len(named) == 1 else None
        return CheckContext(product=terms, channel=channel, language=detect_language(text), scope=scope,
                            extra_figures={normalise_number(f) for f in extra_figures})

    def products_named(self, text: str) -> list[str]:
        found = []
        for key, product in self.terms.products.items():
            if any(re.search(rf"(?<![a-z]){re.escape(n)}(?![a-z])", text, re.IGNORECASE) for n in product_names(product)):
                found.append(key)
        return found

    def disclosure(self, product: ProductTerms, language: str) -> str:
        t = self.pack.templates
        cost = t.cost_fee if product.origination_fee_pct else t.cost_none
        values = self._slot_values(product) | {"origination_fee": normalise_number(product.origination_fee_pct)}
        values["cost"] = fill_slots(_pick(cost, language), values)
        return fill_slots(_pick(t.disclosure, language), values)

    def fix_insert_text(self, rule: Rule, ctx: CheckContext) -> str:
        """What an `insert` fix adds; "" when it cannot be known (no product, no channel)."""
        if rule.fix.action == "insert_disclosure":
            return self.disclosure(ctx.product, ctx.language) if ctx.product else ""
        template = _pick(rule.fix.insert, ctx.language)
        needed = set(_SLOT.findall(template))
        if ("product_name" in needed and ctx.product is None) or ("opt_out" in needed and not ctx.channel):
            return ""
        opt_out = CHANNELS[ctx.channel].opt_out.get(ctx.language, "") if ctx.channel else ""
        return fill_slots(template, self._slot_values(ctx.product) | {"opt_out": opt_out})

    def check_rule(self, rule: Rule, text: str, ctx: CheckContext) -> list[Finding]:
        """One rule's findings (no channel or scope filtering: the caller chose the rule)."""
        return getattr(self, f"_check_{rule.kind}")(rule, text, ctx)

    # rule kinds ----------------------------------------------------------------------------------

    def _check_banned_phrase(self, rule: Rule, text: str, ctx: CheckContext) -> list[Finding]:
        return [self._finding(rule, span, f"{rule.description.split('.')[0]}: {span.text!r}")
                for span in self._matches(rule.patterns, rule.unless, text, ctx)]

    def _check_trigger_disclosure(self, rule: Rule, text: str, ctx: CheckContext) -> list[Finding]:
        triggers = self._matches(rule.triggers, rule.unless, text, ctx)
        if not triggers:
            return []
        missing = [r.name for r in rule.requires if not self._matches(r.patterns, Patterns(), text, ctx)]
        if not missing:
            return []
        first = triggers[0]
        return [self._finding(rule, first, f"{first.text!r} is a trigger term, but the copy does not state "
                                           f"{' and '.join(missing)}")]

    def _check_required_mention(self, rule: Rule, text: str, ctx: CheckContext) -> list[Finding]:
        if self._matches(rule.patterns, Patterns(), text, ctx):
            return []
        return [self._finding(rule, None, rule.description.split(".")[0])]

    def _check_product_figures(self, rule: Rule, text: str, ctx: CheckContext) -> list[Finding]:
        findings = []
        products = [ctx.product] if ctx.product else list(self.terms.products.values())
        for check in rule.checks:
            for match in self._regex_matches(check.patterns, check.unless, text, ctx):
                findings += self._figure_findings(rule, check, match, products)
        return _dedupe(findings)

    def _check_channel_limits(self, rule: Rule, text: str, ctx: CheckContext) -> list[Finding]:
        if not ctx.channel:
            return []
        fields = parse_fields(text, ctx.channel)
        findings = []
        for issue in check_limits(fields, ctx.channel):
            value = fields.get(issue.field, "")
            start = text.find(value) if value else -1
            span = Span(start=start, end=start + len(value), text=value) if value and start >= 0 else None
            findings.append(self._finding(rule, span, issue.detail))
        return findings

    def _check_ungrounded_figure(self, rule: Rule, text: str, ctx: CheckContext) -> list[Finding]:
        allowed = set(ctx.product.figures()) if ctx.product else set()
        allowed |= ctx.extra_figures
        ignored = [s for s in self._matches(rule.ignore, Patterns(), text, ctx)]
        findings = []
        for match in re.finditer(r"\d[\d,]*(?:\.\d+)?", text):
            if any(s.start <= match.start() < s.end for s in ignored):
                continue
            if normalise_number(match.group()) not in allowed:
                span = Span(start=match.start(), end=match.end(), text=match.group())
                findings.append(self._finding(rule, span, f"the figure {match.group()} is not a product figure "
                                                          "or part of the offer"))
        return findings

    # matching helpers ----------------------------------------------------------------------------

    def _matches(self, patterns: Patterns, unless: Patterns, text: str, ctx: CheckContext) -> list[Span]:
        spans = [Span(start=m.start(), end=m.end(), text=text[m.start():m.end()])
                 for m in self._regex_matches(patterns, unless, text, ctx)]
        return _non_overlapping(spans)

    def _regex_matches(self, patterns: Patterns, unless: Patterns, text: str, ctx: CheckContext) -> list[re.Match]:
        normalised = normalise_for_match(text)
        found = []
        for pattern in patterns.all():
            for match in self._compile(pattern, ctx.product).finditer(normalised):
                if match.end() > match.start() and not self._cancelled(match, unless, normalised, ctx):
                    found.append(match)
        return found

    def _cancelled(self, match: re.Match, unless: Patterns, text: str, ctx: CheckContext) -> bool:
        if not unless:
            return False
        start, end = sentence_bounds(text, match.start(), match.end())
        sentence = text[start:end]
        return any(self._compile(p, ctx.product).search(sentence) for p in unless.all())

    def _compile(self, pattern: str, product: ProductTerms | None) -> re.Pattern:
        key = (pattern, product.key if product else None)
        if key not in self._compiled:
            values = {k: _as_regex(k, v) for k, v in self._slot_values(product).items()}
            self._compiled[key] = re.compile(_SLOT.sub(lambda m: values[m.group(1)], pattern), re.IGNORECASE)
        return self._compiled[key]

    def _slot_values(self, product: ProductTerms | None) -> dict[str, Any]:
        lender = self.terms.lender
        values: dict[str, Any] = {"lender_name": lender.name, "lender_short": lender.short_name,
                                  "hotline": lender.hotline, "number": None}
        if product is None:
            values |= {"product_name": [n for p in self.terms.products.values() for n in product_names(p)],
                       "apr_min": None, "apr_max": None}
        else:
            values |= {"product_name": product_names(product), "apr_min": normalise_number(product.apr_min_pct),
                       "apr_max": normalise_number(product.apr_max_pct)}
        return values

    def _figure_findings(self, rule: Rule, check: FigureCheck, match: re.Match,
                         products: list[ProductTerms]) -> list[Finding]:
        whole = Span(start=match.start(), end=match.end(), text=match.group())
        if check.requires_field and not any(_field_values(p, check.requires_field) for p in products):
            who = products[0].name if len(products) == 1 else "no Meadow product"
            return [self._finding(rule, whole, f"{match.group()!r}: {who} has no such offer "
                                               f"({check.requires_field} is not set)")]
        allowed = set()
        for p in products:
            allowed |= {normalise_number(v) for f in check.fields for v in _field_values(p, f)}
            if check.zero_if and _field_values(p, check.zero_if):
                allowed.add("0")
        if not check.fields:
            return []
        findings = []
        for value, (start, end) in _captured_values(match, check.value):
            if value not in allowed:
                span = Span(start=start, end=end, text=match.string[start:end]) if end > start else whole
                name = products[0].name if len(products) == 1 else "any Meadow product"
                shown = ", ".join(sorted(allowed, key=float)) or "none"
                findings.append(self._finding(
                    rule, span, f"{check.name}: {value} does not match {name} (terms.yaml: {shown})",
                    nearest=_nearest(value, allowed)))
        return findings

    def _finding(self, rule: Rule, span: Span | None, message: str, nearest: str | None = None) -> Finding:
        fix = rule.fix.suggestion + (f" (use {nearest})" if nearest is not None else "")
        return Finding(rule_id=rule.id, severity=rule.severity, span=span, message=message, fix=fix)


# --- deterministic fixes ------------------------------------------------------------------------


def apply_fixes(checker: ComplianceChecker, text: str, report: ComplianceReport, product: str | None = None,
                channel: str | None = None) -> str:
    """One round of deterministic fixes: remove banned clauses, correct figures, insert what is missing.
    Returns the new text (the caller re-checks it: a fix is never assumed to work)."""
    ctx = checker.context(text, product or report.product, channel)
    replacements: list[tuple[int, int, str]] = []
    removals: list[Span] = []
    inserts: list[tuple[str, str]] = []  # (position, text)
    disclosure_inserts: list[tuple[str, str]] = []
    for finding in report.findings:
        rule = checker.pack.rule(finding.rule_id)
        action = rule.fix.action
        if action == "remove" and finding.span:
            removals.append(finding.span)
        elif action == "replace_nearest" and finding.span:
            nearest = re.search(r"\(use ([\d.]+)\)$", finding.fix)
            core = finding.span.text.strip()
            if nearest and re.fullmatch(NUMBER, core):
                new = finding.span.text.replace(core, _same_style(core, nearest.group(1)))
                replacements.append((finding.span.start, finding.span.end, new))
            else:
                removals.append(finding.span)
        elif action in ("insert", "insert_disclosure"):
            insert = checker.fix_insert_text(rule, ctx)
            if insert and (rule.fix.position, insert) not in inserts:
                inserts.append((rule.fix.position, insert))
                if action == "insert_disclosure":
                    disclosure_inserts.append((rule.fix.position, insert))
    # the disclosure goes before other lines added at the end (the opt-out line closes the copy)
    inserts.sort(key=lambda item: (item[0] == "end", item not in disclosure_inserts))
    for start, end, new in sorted(replacements, reverse=True):
        text = text[:start] + new + text[end:]
    text = remove_clauses(text, [s for s in removals if not any(r[0] <= s.start < r[1] for r in replacements)])
    return insert_texts(text, inserts, channel, ctx.language)


def remove_clauses(text: str, spans: list[Span]) -> str:
    """Delete each span's clause (between punctuation), keeping the rest of the sentence."""
    for span in sorted(spans, key=lambda s: s.start, reverse=True):
        start, end = clause_bounds(text, span.start, span.end)
        text = text[:start] + text[end:]
    return tidy(text)


def insert_texts(text: str, inserts: list[tuple[str, str]], channel: str | None, language: str) -> str:
    fields = parse_fields(text, channel)
    body = fields.get("body", "")
    for position, insert in inserts:
        if position == "start":
            body = insert + body if insert.endswith((" ", "】")) else f"{insert} {body}"
        else:
            body = _insert_at_end(body, insert, channel, language)
    fields["body"] = tidy(body)
    return render_fields(fields, channel) if channel else fields["body"]


def _insert_at_end(body: str, insert: str, channel: str | None, language: str) -> str:
    """At the end, but before the channel's opt-out line when the copy already closes with it."""
    opt_out = CHANNELS[channel].opt_out.get(language, "") if channel else ""
    stripped = body.rstrip().rstrip(".。")
    if opt_out and stripped.endswith(opt_out.rstrip(".。")) and insert != opt_out:
        head = stripped[: len(stripped) - len(opt_out.rstrip(".。"))]
        return _insert_at_end(head, insert, None, language).rstrip() + _gap(head, language) + opt_out
    if "\n" in body.strip():  # a multi-line body (e-mail): its own line
        return body.rstrip() + "\n" + insert
    return _join_sentences(body, insert, language)


def _gap(head: str, language: str) -> str:
    return "\n" if head.rstrip(" ").endswith("\n") or "\n" in head.strip() else ("" if language == "zh" else " ")


def _join_sentences(body: str, insert: str, language: str) -> str:
    body = body.rstrip()
    if not body:
        return insert
    if language == "zh":
        return body + ("" if body.endswith(("。", "！", "？", "】")) else "。") + insert
    return body + ("" if body.endswith((".", "!", "?")) else ".") + " " + insert


# --- text helpers -------------------------------------------------------------------------------


def normalise_for_match(text: str) -> str:
    return text.translate(_FULLWIDTH)


def detect_language(text: str) -> str:
    return "zh" if len(_CJK.findall(text)) >= 4 else "en"


def product_names(product: ProductTerms) -> list[str]:
    """The product's full name, its brand name (its first two words: 'Meadow Mall') and the descriptions
    its documents use ('small-business loan'): an ad from the lender that says any of them names it."""
    words = product.name.split()
    return list(dict.fromkeys([product.name, " ".join(words[:2]), *product.descriptions]))


# ASCII punctuation ends a sentence before a space or a Chinese character (full-width forms are
# mapped to ASCII before matching); "9.9" and "1,000" do not.
_SENTENCE_END = re.compile(r"[.!?](?=\s|$|[\u4e00-\u9fff])|[。！？\n]")
_CLAUSE_END = re.compile(r"[.!?;,:](?=\s|$|[\u4e00-\u9fff])|[。！？；，、：\n]|\s[-|]\s|[｜|]")


def sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    return _bounds(_SENTENCE_END, text, start, end)


def clause_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """The clause around a span, with its closing punctuation (its opening one if it is the last)."""
    left, right = _bounds(_CLAUSE_END, text, start, end)
    if right < len(text) and text[right] != "\n":
        right += 1
    elif left > 0 and text[left - 1] != "\n":
        left -= 1
    return left, right


def _bounds(pattern: re.Pattern, text: str, start: int, end: int) -> tuple[int, int]:
    left = 0
    for m in pattern.finditer(text, 0, start):
        left = m.end()
    m = pattern.search(text, end)
    return left, (m.start() if m else len(text))


def tidy(text: str) -> str:
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\s+([,.;!?])", r"\1", text)
    text = re.sub(r"([,;])\s*([.!?])", r"\2", text)
    text = re.sub(r"^[\s,;.!?，。；！？]+", "", text)
    text = re.sub(r"([。！？，；])[，；]+", r"\1", text)
    text = re.sub(r"\n[ \t]+", "\n", text)
    return text.strip()


def _as_regex(name: str, value: Any) -> str:
    if value is None:
        return NUMBER if name in {"apr_min", "apr_max", "number"} else r"(?!)"
    if isinstance(value, list):
        return "(?:" + "|".join(_as_regex(name, v) for v in sorted(value, key=len, reverse=True)) + ")"
    text = str(value)
    if re.fullmatch(r"\d+(\.\d+)?", text):  # 9.9 also matches 9.90; 24 matches 24.0
        whole, _, frac = text.partition(".")
        return rf"(?<![\d.]){re.escape(whole)}(?:\.{frac}0*)?" if frac else rf"(?<![\d.]){whole}(?:\.0+)?(?![\d])"
    return r"\s+".join(re.escape(w) for w in text.split())


def fill_slots(template: str, values: dict[str, Any]) -> str:
    """Replace {{name}} with values[name] (the first item of a list)."""
    def one(m: re.Match) -> str:
        value = values.get(m.group(1), "")
        return value[0] if isinstance(value, list) else str(value)
    return _SLOT.sub(one, template)


def _pick(by_language: dict[str, str], language: str) -> str:
    return by_language.get(language) or by_language.get("en") or next(iter(by_language.values()), "")


def _field_values(product: ProductTerms, dotted: str) -> list[float]:
    value: Any = product
    for part in dotted.split("."):
        value = getattr(value, part, None) if not isinstance(value, dict) else value.get(part)
        if value is None:
            return []
    values = value if isinstance(value, list) else [value]
    return [v for v in values if v is not None and v != []]


_MULTIPLIER = {"万": 10_000, "k": 1_000, "K": 1_000}


def parse_amount(text: str) -> str:
    """'50,000' -> '50000'; '5万' -> '50000'; '7.2' -> '7.2'."""
    cleaned = text.replace(",", "").replace(" ", "")
    factor = 1
    if cleaned and cleaned[-1] in _MULTIPLIER:
        factor, cleaned = _MULTIPLIER[cleaned[-1]], cleaned[:-1]
    return normalise_number(float(cleaned) * factor)


def _captured_values(match: re.Match, constant: float | None) -> list[tuple[str, tuple[int, int]]]:
    groups = match.groupdict()
    values = []
    for name in ("v", "v2"):
        if groups.get(name):
            values.append((parse_amount(groups[name]), match.span(name)))
    if groups.get("list"):
        offset = match.start("list")
        for number in re.finditer(r"\d+(?:\.\d+)?", groups["list"]):
            values.append((normalise_number(number.group()), (offset + number.start(), offset + number.end())))
    if not values and constant is not None:
        values.append((normalise_number(constant), match.span()))
    return values


def _nearest(value: str, allowed: set[str]) -> str | None:
    try:
        target = float(value)
        return min(allowed, key=lambda a: (abs(float(a) - target), float(a))) if allowed else None
    except ValueError:
        return None


def _same_style(old: str, new: str) -> str:
    """Keep thousands separators when the copy used them."""
    if "," in old and float(new) >= 1000:
        return f"{float(new):,.0f}" if float(new) == int(float(new)) else new
    return new


def _non_overlapping(spans: list[Span]) -> list[Span]:
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return kept


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen, kept = set(), []
    for f in findings:
        key = (f.rule_id, f.span.start if f.span else None, f.span.end if f.span else None)
        if key not in seen:
            seen.add(key)
            kept.append(f)
    return kept


def default_rules_path(knowledge_dir: Path) -> Path:
    return Path(knowledge_dir) / "rules" / "compliance.yaml"


def check_copy(text: str, product: str | None = None, channel: str | None = None,
               settings: Any = None) -> ComplianceReport:
    """Convenience for scripts: build a checker from Settings (the web app keeps one checker instead)."""
    from assistant.config import Settings
    from assistant.knowledge.terms import load_terms

    settings = settings or Settings()
    checker = ComplianceChecker(load_rule_pack(rules_path(settings)), load_terms(settings.terms_file))
    return checker.check_copy(text, product=product, channel=channel)


def rules_path(settings: Any) -> Path:
    return getattr(settings, "compliance_rules", None) or default_rules_path(settings.knowledge_dir)
