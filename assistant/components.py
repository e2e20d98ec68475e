"""Build the assistant's parts from Settings. Tests call the same function with a temp data dir."""

from __future__ import annotations

from typing import Any

from assistant.store.audit import AuditLog
from assistant.config import Settings, apply_offline_env
from assistant.guard.core import Guard
from assistant.guard.injection import find_instructions_in_document
from assistant.knowledge.index import KnowledgeBase
from assistant.llm.chat_models import make_chat_model
from assistant.loans import load_loan_replies, make_loan_answerer
from assistant.pipeline import Assistant
from assistant.routing.router import Router
from assistant.scoring.client import make_scoring_client
from assistant.complaints.classifier import ComplaintClassifier
from assistant.knowledge.embeddings import load_embedder
from assistant.skills.answer import AnswerSkill
from assistant.skills.complaints import ComplaintSkill
from assistant.skills.eligibility import EligibilitySkill
from assistant.skills.handoff import HandoffSkill
from assistant.skills.smalltalk import ClarifySkill, SmalltalkSkill
from assistant.skills.support import SupportSkill
from assistant.knowledge.terms import load_terms
from assistant.store.tickets import TicketService


def build_knowledge(settings: Settings) -> KnowledgeBase:
    apply_offline_env()
    # A document holding instructions aimed at the model is not indexed (see guard docs).
    return KnowledgeBase(settings, document_check=find_instructions_in_document)


def build_assistant(settings: Settings, kb: KnowledgeBase | None = None, chat_model: Any = None,
                    audit: bool = True) -> Assistant:
    apply_offline_env()
    kb = kb or build_knowledge(settings)
    chat_model = chat_model or make_chat_model(settings)
    terms = load_terms(settings.terms_file)
    guard = Guard(settings)
    embedder = load_embedder(settings)
    tickets = TicketService(settings, redact=guard.redact)
    classifier = ComplaintClassifier(settings, embedder=embedder)
    loan_answerer = make_loan_answerer(terms, load_loan_replies(settings.prompts_dir),
                                       default_product=settings.eligibility_product)
    skills = {
        "answer": AnswerSkill(settings, kb, chat_model, terms, loan_answerer=loan_answerer),
        "eligibility": EligibilitySkill(settings, make_scoring_client(settings), terms,
                                        chat_model=chat_model if settings.llm_backend == "openai" else None),
        "complaint": ComplaintSkill(settings, tickets, classifier, terms),
        "handoff": HandoffSkill(settings, tickets, classifier, terms),
        "smalltalk": SmalltalkSkill(settings, terms),
        "out_of_scope": SmalltalkSkill(settings, terms),
        "clarify": ClarifySkill(settings, terms),
        "support": SupportSkill(settings, tickets, terms),
    }
    recorder = AuditLog(settings, redact=guard.redact) if audit else None
    return Assistant(settings, guard=guard, router=Router(settings, embedder), skills=skills, audit=recorder)
