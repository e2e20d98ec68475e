"""Build the assistant's parts from Settings. Tests call the same function with a temp data dir."""

from __future__ import annotations

from assistant.config import Settings, apply_offline_env
from assistant.guard import Guard
from assistant.knowledge import KnowledgeBase
from assistant.llm import make_chat_model
from assistant.pipeline import Assistant
from assistant.router import Router
from assistant.skills.answer import AnswerSkill
from assistant.terms import load_terms


def build_knowledge(settings: Settings) -> KnowledgeBase:
    apply_offline_env()
    return KnowledgeBase(settings)


def build_assistant(settings: Settings, kb: KnowledgeBase | None = None, chat_model=None) -> Assistant:
    apply_offline_env()
    kb = kb or build_knowledge(settings)
    chat_model = chat_model or make_chat_model(settings)
    terms = load_terms(settings.terms_file)
    guard = Guard(settings)
    answer = AnswerSkill(settings, kb, chat_model, terms)
    skills = {"answer": answer}
    return Assistant(settings, guard=guard, router=Router(settings), skills=skills)
