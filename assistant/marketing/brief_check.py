"""What a brief must pass before anything is drafted: the rule pack's banned phrases (fair lending,
vulnerable targeting, promises...) on every free-text field, read as written and with the usual
disguises undone ("m.a.l.e", "w o m e n", "h3nan", zero-width characters), and the chat guard's
prompt-injection check, since a brief's text reaches the model."""

from __future__ import annotations

import re
from typing import Callable, Iterable

from assistant.guard.injection import InjectionDetector, normalise

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
# letters split by dots, dashes, underscores, stars or single spaces: "m.a.l.e", "w o m e n"
_SPLIT_WORD = re.compile(r"\b(?:[A-Za-z][.\-_*\s]){2,}[A-Za-z]\b")


def undisguised(text: str) -> str:
    """The text with common obfuscations undone; used for matching only, never shown."""
    text = normalise(text)
    text = _SPLIT_WORD.sub(lambda m: re.sub(r"[.\-_*\s]", "", m.group()), text)
    return re.sub(r"[A-Za-z0-9@$]+", lambda m: m.group().translate(_LEET) if re.search(r"[A-Za-z]", m.group())
                  else m.group(), text)


def brief_problems(fields: dict[str, str], banned: Callable[[str], Iterable], injection: InjectionDetector | None
                   ) -> list[str]:
    """One line per problem, naming the field and the rule: "audience: fair-lending: 'male ... only' (...)"."""
    problems: list[str] = []
    for name, value in fields.items():
        if not value:
            continue
        seen: set[str] = set()
        for variant in dict.fromkeys([value, undisguised(value)]):
            for finding in banned(variant):
                key = f"{finding.rule_id}:{finding.span.text.lower() if finding.span else ''}"
                if key not in seen:
                    seen.add(key)
                    problems.append(f"{name}: {finding.rule_id}: {finding.span.text!r} ({finding.fix})")
        if injection is not None:
            result = injection.check(value)
            if result.flagged:
                problems.append(f"{name}: prompt-injection: the text gives the writer instructions "
                                f"({', '.join(result.reasons)}); describe the campaign instead")
    return problems
