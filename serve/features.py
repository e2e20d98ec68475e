"""The parts each feature issue adds (scoring tool, tickets, marketing studio, compliance
checker), built on first use. A part whose module is not installed is None, and its
endpoints answer 404 "feature not available" (nothing else breaks)."""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from assistant.config import Settings
from assistant.pipeline import Assistant

log = logging.getLogger("serve.features")


class FeatureMissing(LookupError):
    def __init__(self, name: str):
        super().__init__(f"{name} is not available in this installation")
        self.name = name


class Features:
    def __init__(self, settings: Settings, assistant: Assistant):
        self.settings = settings
        self.assistant = assistant
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()  # a builder may ask for another part

    @classmethod
    def build(cls, settings: Settings, assistant: Assistant) -> "Features":
        return cls(settings, assistant)

    def get(self, name: str) -> Any:
        """The named part, or FeatureMissing."""
        with self._lock:
            if name not in self._built:
                self._built[name] = _BUILDERS[name](self)
        part = self._built[name]
        if part is None:
            raise FeatureMissing(name)
        return part

    def available(self, name: str) -> bool:
        try:
            self.get(name)
        except FeatureMissing:
            return False
        return True

    def form_fields(self) -> list[Any]:
        """The scorecard's applicant fields (empty without the scoring tool)."""
        if not self.available("scoring"):
            return []
        if "fields" not in self._built:
            self._built["fields"] = self.get("scoring").info().fields
        return self._built["fields"]

    def _terms(self):
        from assistant.knowledge.terms import load_terms

        return load_terms(self.settings.terms_file)


def _scoring(f: Features) -> Any:
    try:
        from assistant.scoring.client import make_scoring_client
    except ImportError:
        return None
    return make_scoring_client(f.settings)


def _compliance(f: Features) -> Any:
    try:
        from assistant.marketing.compliance import ComplianceChecker, rules_path
    except ImportError:
        return None
    return ComplianceChecker.from_files(rules_path(f.settings), f._terms())


def _studio(f: Features) -> Any:
    try:
        from assistant.marketing.drafting import MarketingStudio
    except ImportError:
        return None
    answer = f.assistant.skills["answer"]  # the same model and index the chat uses
    return MarketingStudio(f.settings, answer.chat_model, answer.kb.retrieve, terms=f._terms(),
                           checker=f.get("compliance"))


def _tickets(f: Features) -> Any:
    skill = f.assistant.skills.get("complaint")
    if skill is not None and hasattr(skill, "tickets"):
        return skill.tickets  # the store the chat's complaint skill writes to
    try:
        from assistant.store.tickets import TicketService
    except ImportError:
        return None
    return TicketService(f.settings, redact=f.assistant.guard.redact)


def _complaints(f: Features) -> Any:
    """The complaint skill: the chat's own, or one on the same ticket store."""
    skill = f.assistant.skills.get("complaint")
    if skill is not None:
        return skill
    try:
        from assistant.skills.complaints import ComplaintSkill
    except ImportError:
        return None
    return ComplaintSkill(f.settings, f.get("tickets"), terms=f._terms())


_BUILDERS: dict[str, Callable[[Features], Any]] = {
    "scoring": _scoring, "compliance": _compliance, "marketing": _studio, "tickets": _tickets,
    "complaints": _complaints,
}
