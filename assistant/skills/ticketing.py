"""What the complaint and hand-off skills share: the ticket service, a complaint classifier loaded
on first use (a hand-off with no complaint in it never pays for it), the product terms and the
skill's own replies file."""

from __future__ import annotations

from typing import Iterator

from assistant.complaints.classifier import ComplaintClassifier, load_taxonomy, taxonomy_file
from assistant.config import Settings
from assistant.llm.prompts import load_replies
from assistant.knowledge.terms import Terms, load_terms
from assistant.store.tickets import TicketService
from assistant.types import Delta, Reply, Turn


class TicketSkill:
    name = ""
    replies_file = ""

    def __init__(self, settings: Settings, tickets: TicketService, classifier: ComplaintClassifier | None = None,
                 terms: Terms | None = None):
        self.settings = settings
        self.tickets = tickets
        self.rules = tickets.rules
        self._classifier = classifier
        self.terms = terms or load_terms(settings.terms_file)
        self.replies = load_replies(settings.prompts_dir, self.replies_file)

    @property
    def classifier(self) -> ComplaintClassifier:
        if self._classifier is None:
            self._classifier = self.load_classifier()
        return self._classifier

    def load_classifier(self) -> ComplaintClassifier:
        return ComplaintClassifier(self.settings)

    def customer_team(self, team: str) -> str:
        """A team as the customer reads it ("Billing team"), never the internal taxonomy."""
        return load_taxonomy(taxonomy_file(self.settings)).customer_team(team)

    def stream(self, turn: Turn) -> Iterator[Delta | Reply]:
        yield self.respond(turn)

    def respond(self, turn: Turn) -> Reply:
        raise NotImplementedError
