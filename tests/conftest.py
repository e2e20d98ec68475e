"""Shared fixtures: real parts in temp directories, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant.config import PROJECT_ROOT, Settings, apply_offline_env

apply_offline_env()

REPO = PROJECT_ROOT
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """One converted copy of the shipped LLM for the whole test session (conversion ~15 s)."""
    return tmp_path_factory.mktemp("models")


def make_settings(data_dir: Path, model_cache: Path | None = None, **overrides) -> Settings:
    settings = Settings(data_dir=data_dir, _env_file=None, **overrides)
    if model_cache is not None:
        (data_dir / "models").parent.mkdir(parents=True, exist_ok=True)
        link = data_dir / "models"
        if not link.exists():
            link.symlink_to(model_cache, target_is_directory=True)
    return settings


@pytest.fixture
def tmp_settings(tmp_path, model_cache) -> Settings:
    return make_settings(tmp_path / "data", model_cache)


@pytest.fixture
def mini_kb(tmp_path) -> Path:
    """A small copy of the real knowledge base: two products, one FAQ file, terms.yaml."""
    kb = tmp_path / "kb"
    (kb / "products").mkdir(parents=True)
    (kb / "faqs").mkdir()
    src = REPO / "knowledge_base"
    for name in ["terms.yaml", "meadow-cash.md", "meadow-flex.md"]:
        shutil.copy(src / "products" / name, kb / "products" / name)
    shutil.copy(src / "faqs" / "faq-fees-and-rates.md", kb / "faqs" / "faq-fees-and-rates.md")
    return kb
