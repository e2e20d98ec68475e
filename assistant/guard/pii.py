"""PII detectors and redaction: validated patterns, no model, no network.

Kinds: phone (mainland mobile, international +CC), id_number (mainland resident ID, check digit
per GB 11643 / ISO 7064 MOD 11-2), card (13-19 digits, Luhn), email, code (verification codes),
password (typed into the chat). `redact` is for logs, stores and external LLM servers; `mask`
is for what the customer sees (their own data, e.g. "card ending 1234").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterable, Iterator

KINDS = ("password", "code", "email", "id_number", "card", "phone")
SECRET_KINDS = frozenset({"code", "password"})  # never needed by the model or a human reader
TOKENS = {
    "phone": "[PHONE]", "id_number": "[ID_NUMBER]", "card": "[CARD]",
    "email": "[EMAIL]", "code": "[CODE]", "password": "[PASSWORD]",
}


@dataclass(frozen=True)
class PiiMatch:
    kind: str
    start: int  # span of the sensitive value only (a code's keyword stays in the text)
    end: int
    value: str

    @property
    def digits(self) -> str:
        return re.sub(r"\D", "", self.value)

    def mask(self) -> str:
        """How the customer may see their own value echoed."""
        if self.kind == "card":
            return f"card ending {self.digits[-4:]}"
        if self.kind == "phone":
            d = self.digits
            local = d[-11:] if re.match(r"(?:\+|00)?86", self.value) or self.value[0].isdigit() else ""
            return f"{local[:3]}****{local[-4:]}" if local else f"phone ending {d[-4:]}"
        if self.kind == "id_number":
            return f"ID ending {self.value.replace(' ', '')[-4:].upper()}"
        if self.kind == "email":
            user, _, domain = self.value.partition("@")
            return f"{user[:1]}***@{domain}"
        return "[removed]"

    def key(self) -> str:
        """A short, non-reversible handle ("card:1234") to recognise the customer's own values."""
        return f"{self.kind}:{self.mask()}"


# --- validators --------------------------------------------------------------------------

_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, ...
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """GB 11643-1999 check character (ISO 7064 MOD 11-2) for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS))
    return _ID_CHECK[total % 11]


def valid_cn_id(value: str) -> bool:
    s = value.replace(" ", "").upper()
    if not re.fullmatch(r"[1-9]\d{16}[\dX]", s):
        return False
    try:
        date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return id_check_digit(s[:17]) == s[17]


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = int(ch)
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def valid_card(value: str) -> bool:
    d = re.sub(r"[ -]", "", value)
    return 13 <= len(d) <= 19 and d[0] in "23456" and luhn_valid(d)


def valid_intl_phone(value: str) -> bool:
    return 8 <= len(re.sub(r"\D", "", value)) <= 15


# --- patterns ----------------------------------------------------------------------------

_I = re.IGNORECASE
_ID_RE = re.compile(
    r"(?<![0-9])[1-9]\d{5} ?(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]) ?\d{3}[\dXx](?![0-9A-Za-z])")
_CARD_RE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_CN_MOBILE_RE = re.compile(r"(?<![\d+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_INTL_PHONE_RE = re.compile(r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?!\d)")
_EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")

_CODE_WORDS = (r"(?:verification|verify|security|sms|text|one[- ]time|otp|auth(?:entication)?|confirmation"
               r"|login|log-in|2fa|access|activation|dynamic)\s*(?:code|number|pin)|\botp\b|\bpin\b"
               r"|验证码|动态码|校验码|短信码|确认码|动态密码")
_CODE_RE = re.compile(
    rf"(?:{_CODE_WORDS})[^\d\n]{{0,24}}?(?<![\d])(?P<v>\d{{4,8}}|(?=[A-Za-z]*\d)[A-Za-z0-9]{{4,8}})(?![\dA-Za-z])", _I)
_BARE_CODE_RE = re.compile(r"\b(?P<kw>codes?)\s*(?:is|was|:|=|-|：)?\s*[\"'“]?(?P<v>\d{4,8})(?!\d)", _I)
_CODE_AFTER_RE = re.compile(
    r"(?<![\d])(?P<v>\d{4,8})(?!\d)\s*(?:is|was)\s+(?:my|the|your)\s+(?:\w+\s+)?(?:code|otp|pin)\b"
    r"|(?<![\d])(?P<v2>\d{4,8})(?!\d)\s*(?:是|为)?(?:我的)?(?:验证码|动态码|校验码)", _I)
_NOT_SECRET_CODE = re.compile(r"(?:\bu\.?s\.?|\b(?:zip|postal|post|area|country|promo|promotion|product|error|reference"
                              r"|ref|coupon|discount|branch|swift|bank|sort|tracking|invite|referral|civil|penal|tax"
                              r"|commercial|criminal|legal|labou?r|building|dress|source|qr|bar|country))[\s.-]*$", _I)

_PASSWORD_RE = re.compile(
    r"(?:pass\s?word|passcode|pwd|pass\s?phrase)\s*(?:is|was|:|=|-|：)\s*(?:now\s+)?[\"'“‘]?(?P<v>[^\s\"'”’]{3,64})"
    r"|(?:pass\s?word|passcode|pwd)\s+[\"'“‘]?(?P<v3>(?=[^\s\"'”’]*\d)[^\s\"'”’]{3,64})"  # "password meadow2024!"
    r"|(?:登录|支付|交易|取款|银行卡|查询|账户|账号)?密码\s*(?:是|为|:|：|=)?\s*[\"'“‘]?"
    r"(?P<v2>[A-Za-z0-9!@#$%^&*._+\-=?~]{3,64})", _I)
_NOT_A_PASSWORD = frozenset(
    "wrong incorrect invalid expired locked blocked not too the a an correct right forgotten reset changed same"
    " different working very still being also required needed missing lost empty weak strong ok fine"
    " case-sensitive unknown rejected accepted updated stolen compromised".split())


# --- detection ---------------------------------------------------------------------------

def _spans(regex: re.Pattern[str], text: str, kind: str, ok: Callable[[str], bool] = lambda _: True,
           groups: tuple[str, ...] = ()) -> Iterator[PiiMatch]:
    for m in regex.finditer(text):
        name = next((g for g in groups if m.group(g)), None)
        start, end = (m.start(name), m.end(name)) if name else m.span()
        value = text[start:end]
        if ok(value):
            yield PiiMatch(kind, start, end, value)


def _password_ok(value: str) -> bool:
    # "[PASSWORD]" is our own token: redacting twice changes nothing
    return value.rstrip(".,;!?").lower() not in _NOT_A_PASSWORD and not value.startswith("[")


def _passwords(text: str) -> Iterator[PiiMatch]:
    # a trailing full stop is kept in the span: over-redacting one character is harmless
    yield from _spans(_PASSWORD_RE, text, "password", _password_ok, ("v", "v2", "v3"))


def _codes(text: str) -> Iterator[PiiMatch]:
    yield from _spans(_CODE_RE, text, "code", groups=("v",))
    yield from _spans(_CODE_AFTER_RE, text, "code", groups=("v", "v2"))
    for m in _BARE_CODE_RE.finditer(text):
        if not _NOT_SECRET_CODE.search(text[max(0, m.start("kw") - 16):m.start("kw")]):
            yield PiiMatch("code", m.start("v"), m.end("v"), m.group("v"))


def _candidates(text: str) -> Iterator[PiiMatch]:
    """In priority order: an earlier detector wins an overlapping span."""
    yield from _passwords(text)
    yield from _codes(text)
    yield from _spans(_EMAIL_RE, text, "email")
    yield from _spans(_ID_RE, text, "id_number", valid_cn_id)
    yield from _spans(_CN_MOBILE_RE, text, "phone")
    yield from _spans(_INTL_PHONE_RE, text, "phone", valid_intl_phone)
    yield from _spans(_CARD_RE, text, "card", valid_card)


_MAYBE_PII = re.compile(r"\d|@|password|passcode|pwd|密码|pin\b|code|otp|验证码|动态码|校验码", _I)


def find_pii(text: str, allow: Iterable[str] = ()) -> list[PiiMatch]:
    """Non-overlapping PII spans, sorted by position. `allow`: values or e-mail domains that are
    not personal (the lender's own address)."""
    if not text or not _MAYBE_PII.search(text):
        return []
    allowed = {a.lower() for a in allow}
    taken: list[PiiMatch] = []
    for m in _candidates(text):
        if m.kind == "email" and (m.value.lower() in allowed or m.value.partition("@")[2].lower() in allowed):
            continue
        if all(m.end <= t.start or m.start >= t.end for t in taken):
            taken.append(m)
    return sorted(taken, key=lambda m: m.start)


def replace_spans(text: str, matches: list[PiiMatch], how: Callable[[PiiMatch], str]) -> str:
    out, pos = [], 0
    for m in matches:
        out += [text[pos:m.start], how(m)]
        pos = m.end
    out.append(text[pos:])
    return "".join(out)


def redact(text: str, allow: Iterable[str] = ()) -> str:
    """Every PII value replaced by a token such as [CARD]: for logs, stores and external LLMs."""
    matches = find_pii(text, allow)
    return replace_spans(text, matches, lambda m: TOKENS[m.kind]) if matches else text


def scrub_secrets(text: str, matches: list[PiiMatch]) -> str:
    """Verification codes and passwords removed; other PII kept (the in-process model may use it)."""
    return replace_spans(text, [m for m in matches if m.kind in SECRET_KINDS], lambda m: TOKENS[m.kind])


def mask(text: str, matches: list[PiiMatch]) -> str:
    """The customer-facing form: "card ending 1234", "138****5678"; secrets removed."""
    def how(m: PiiMatch) -> str:
        masked = m.mask()
        before = text[max(0, m.start - 12):m.start].lower()
        if m.kind == "card" and "card" in before:
            return masked.removeprefix("card ")  # "your card ending 1234", not "card card ending"
        return masked
    return replace_spans(text, matches, how)


def redact_value(value: object, allow: Iterable[str] = ()) -> object:
    """Redact every string inside a JSON-like value (tool arguments and results)."""
    if isinstance(value, str):
        return redact(value, allow)
    if isinstance(value, dict):
        return {k: redact_value(v, allow) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, allow) for v in value]
    return value
