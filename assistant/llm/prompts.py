"""Prompt templates and fixed replies, loaded from prompts/ (versioned files, never Python strings)."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from assistant.knowledge.documents import split_front_matter

_SLOT = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class PromptError(ValueError):
    pass


class Prompt(BaseModel):
    name: str
    text: str
    version: str  # front-matter version + content hash, recorded in the audit log

    def render(self, **values: Any) -> str:
        missing = sorted(set(_SLOT.findall(self.text)) - set(values))
        if missing:
            raise PromptError(f"prompt {self.name}: no value for {', '.join(missing)}")
        return _SLOT.sub(lambda m: str(values[m.group(1)]), self.text)


@lru_cache(maxsize=64)
def load_prompt(prompts_dir: Path, name: str) -> Prompt:
    path = Path(prompts_dir) / name
    if not path.exists():
        raise PromptError(f"prompt file {path} not found")
    raw = path.read_text(encoding="utf-8")
    try:
        meta, body = split_front_matter(raw)
    except ValueError:
        meta, body = {}, raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    return Prompt(name=name, text=body.strip() + "\n", version=f"{meta.get('version', '0')}+{digest}")


@lru_cache(maxsize=16)
def load_replies(prompts_dir: Path, name: str = "replies.yaml") -> dict[str, str]:
    path = Path(prompts_dir) / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping of reply names to texts")
    return {str(k): str(v) for k, v in data.items()}
