"""Marketing channels: which fields a piece of copy has, how each is measured, and its limits.

SMS is measured the way carriers bill it: GSM-7 (160 characters in one segment, 153 per segment
when concatenated; ^{}[]~|\\€ count twice) unless one character falls outside GSM-7, then UCS-2
(70 / 67 UTF-16 code units: every Chinese character, but also a curly quote or an en dash).
Other fields are measured in display width: a CJK character counts 2, as it takes two columns
in a notification or a subject line.

The duty to carry an opt-out line is a compliance rule (knowledge_base/rules/compliance.yaml,
`opt-out-missing`); what that line says on each channel is a channel convention and lives here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, Field

Channel = Literal["sms", "push", "email", "banner", "social"]
Language = Literal["en", "zh"]
Measure = Literal["sms", "width"]

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")
SMS_SINGLE = {"GSM-7": 160, "UCS-2": 70}
SMS_MULTI = {"GSM-7": 153, "UCS-2": 67}


class FieldSpec(BaseModel):
    name: str
    label: str  # how the field is written in plain-text copy ("Subject: ...")
    measure: Measure = "width"
    limit: int  # width units, or SMS segments when measure == "sms"
    required: bool = True


class ChannelSpec(BaseModel):
    name: Channel
    fields: list[FieldSpec]
    opt_out: dict[str, str] = Field(default_factory=dict)  # language -> the line to add
    plain_text: bool = False  # copy given as plain text (no field labels) is checked as one field

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    @property
    def body_field(self) -> str:
        return "body"


CHANNELS: dict[str, ChannelSpec] = {
    "sms": ChannelSpec(
        name="sms",
        fields=[FieldSpec(name="body", label="", measure="sms", limit=2)],
        opt_out={"en": "Reply TD to unsubscribe", "zh": "回复TD退订"},
    ),
    "push": ChannelSpec(
        name="push",
        fields=[FieldSpec(name="title", label="Title", limit=50), FieldSpec(name="body", label="", limit=150)],
        plain_text=True,
    ),
    "email": ChannelSpec(
        name="email",
        fields=[
            FieldSpec(name="subject", label="Subject", limit=60),
            FieldSpec(name="preheader", label="Preheader", limit=100, required=False),
            FieldSpec(name="body", label="", limit=3000),
        ],
        opt_out={"en": "To stop these e-mails, reply TD or click Unsubscribe.", "zh": "回复TD或点击“退订”即可退订此类邮件。"},
    ),
    "banner": ChannelSpec(
        name="banner",
        fields=[
            FieldSpec(name="headline", label="Headline", limit=40),
            FieldSpec(name="body", label="", limit=120),
            FieldSpec(name="cta", label="CTA", limit=20),
        ],
        plain_text=True,
    ),
    "social": ChannelSpec(name="social", fields=[FieldSpec(name="body", label="", limit=280)]),
}

# Chinese labels accepted when copy written by people is parsed.
# Push has a title, a banner a headline: either word names whichever the channel has.
LABEL_ALIASES = {
    "subject": ("subject",), "主题": ("subject",), "title": ("title", "headline"), "标题": ("title", "headline"),
    "headline": ("headline", "title"), "preheader": ("preheader",), "预览": ("preheader",),
    "cta": ("cta",), "按钮": ("cta",), "body": ("body",), "正文": ("body",),
}
_LABEL_LINE = re.compile(r"^\s*([A-Za-z\u4e00-\u9fff]+)\s*[:：]\s*(.*)$")


class LimitIssue(BaseModel):
    field: str
    measured: int
    limit: int
    unit: str  # "segments" or "width"
    detail: str


class FieldMetrics(BaseModel):
    field: str
    width: int
    limit: int
    unit: str
    encoding: str | None = None  # SMS only
    units: int | None = None  # SMS billing units (characters or UTF-16 code units)
    segments: int | None = None


def channel_spec(channel: str) -> ChannelSpec:
    try:
        return CHANNELS[channel]
    except KeyError:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}") from None


# --- measuring ------------------------------------------------------------------------------


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def sms_encoding(text: str) -> str:
    return "GSM-7" if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text) else "UCS-2"


def sms_units(text: str) -> int:
    """Characters as billed: GSM-7 septets (extension characters take two) or UTF-16 code units."""
    if sms_encoding(text) == "GSM-7":
        return sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> int:
    encoding = sms_encoding(text)
    units = sms_units(text)
    if units <= SMS_SINGLE[encoding]:
        return 1
    return math.ceil(units / SMS_MULTI[encoding])


def sms_capacity(segments: int, encoding: str) -> int:
    """How many billing units fit in that many segments."""
    return SMS_SINGLE[encoding] if segments == 1 else SMS_MULTI[encoding] * segments


# --- fields <-> plain text ------------------------------------------------------------------


def render_fields(fields: dict[str, str], channel: str) -> str:
    """Copy as one plain text, fields in the channel's order: "Subject: ..." lines, the body as is."""
    blocks = []
    for spec in channel_spec(channel).fields:
        value = fields.get(spec.name, "")
        if value:
            blocks.append(f"{spec.label}: {value}" if spec.label else value)
    return "\n\n".join(blocks)


def parse_fields(text: str, channel: str | None) -> dict[str, str]:
    """The inverse of render_fields, tolerant of copy written by people (Chinese labels too)."""
    if channel is None or len(channel_spec(channel).fields) == 1:
        return {"body": text.strip()}
    names = {f.name for f in channel_spec(channel).fields}
    fields: dict[str, str] = {}
    body: list[str] = []
    for line in text.splitlines():
        match = _LABEL_LINE.match(line)
        candidates = LABEL_ALIASES.get(match.group(1).lower(), ()) if match else ()
        name = next((n for n in candidates if n in names), None)
        if name == "body":
            body.append(match.group(2))
        elif name in names and name not in fields:
            fields[name] = match.group(2).strip()
        else:
            body.append(line)
    fields["body"] = "\n".join(body).strip()
    return fields


# --- limits ---------------------------------------------------------------------------------


def measure_fields(fields: dict[str, str], channel: str) -> list[FieldMetrics]:
    metrics = []
    for spec in channel_spec(channel).fields:
        value = fields.get(spec.name, "")
        if spec.measure == "sms":
            metrics.append(FieldMetrics(field=spec.name, width=display_width(value), limit=spec.limit,
                                        unit="segments", encoding=sms_encoding(value),
                                        units=sms_units(value), segments=sms_segments(value)))
        else:
            metrics.append(FieldMetrics(field=spec.name, width=display_width(value), limit=spec.limit, unit="width"))
    return metrics


def is_plain_text(fields: dict[str, str], channel: str) -> bool:
    """Push or banner copy written without field labels: one text, as a person pastes it."""
    spec = channel_spec(channel)
    return spec.plain_text and not any(v.strip() for k, v in fields.items() if k != "body")


def plain_text_limit(channel: str) -> int:
    return sum(f.limit for f in channel_spec(channel).fields if f.measure == "width")


def check_limits(fields: dict[str, str], channel: str) -> list[LimitIssue]:
    spec = channel_spec(channel)
    if is_plain_text(fields, channel):
        width, limit = display_width(fields.get("body", "")), plain_text_limit(channel)
        if width <= limit:
            return []
        return [LimitIssue(field="body", measured=width, limit=limit, unit="width",
                           detail=f"{channel} text is {width} wide; at most {limit} for the whole {channel} "
                                  "(a Chinese character counts 2)")]
    issues = []
    for metric in measure_fields(fields, channel):
        field_spec = spec.field(metric.field)
        if field_spec.required and not fields.get(metric.field, "").strip():
            issues.append(LimitIssue(field=metric.field, measured=0, limit=metric.limit, unit=metric.unit,
                                     detail=f"{channel} {metric.field} is missing"))
        elif metric.unit == "segments" and metric.segments > metric.limit:
            capacity = sms_capacity(metric.limit, metric.encoding)
            issues.append(LimitIssue(
                field=metric.field, measured=metric.segments, limit=metric.limit, unit="segments",
                detail=(f"SMS is {metric.units} {metric.encoding} characters = {metric.segments} segments; "
                        f"at most {metric.limit} segments ({capacity} characters in {metric.encoding})"),
            ))
        elif metric.unit == "width" and metric.width > metric.limit:
            issues.append(LimitIssue(field=metric.field, measured=metric.width, limit=metric.limit, unit="width",
                                     detail=f"{channel} {metric.field} is {metric.width} wide; at most {metric.limit}"
                                            " (a Chinese character counts 2)"))
    return issues


def fit_width(text: str, limit: int) -> str:
    """Cut text to a display width at a word boundary (CJK: at any character), adding nothing."""
    if display_width(text) <= limit:
        return text
    kept, width = [], 0
    for ch in text:
        w = display_width(ch)
        if width + w > limit:
            break
        kept.append(ch)
        width += w
    cut = "".join(kept)
    if cut and not _is_cjk(cut[-1]) and " " in cut and len(cut) < len(text) and not text[len(cut)].isspace():
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:-—，；：")


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")
