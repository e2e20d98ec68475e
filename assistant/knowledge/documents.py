"""Knowledge-base documents: Markdown files with YAML front matter, split into `##` sections.

Each `## ` heading starts one section (one retrieval chunk; in a FAQ file, one question).
Text between the `# ` title and the first `## ` heading, if any, becomes a section headed
by the document's title. Headings inside fenced code blocks are ignored. `README.md`
files describe the format and are not documents.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

DocType = Literal["product", "rule", "faq"]

ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
FENCE = re.compile(r"^\s*(```|~~~)")


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text, so a bad date is reported by field, not by YAML."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class KnowledgeBaseError(ValueError):
    """A document that cannot be loaded; the message names the file and what is wrong."""


class Section(BaseModel):
    heading: str
    text: str  # the section's body, without its heading line
    anchor: str  # slug of the heading, unique within its document

    @property
    def word_count(self) -> int:
        return len(self.text.split())


class Document(BaseModel):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1)
    type: DocType
    product: str | None = None
    effective_date: date
    version: str = Field(min_length=1)
    tags: list[str]
    path: Path
    source: str = ""  # path relative to the knowledge-base folder
    sections: list[Section] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)  # any other front-matter fields, kept as written

    @field_validator("effective_date", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> date:
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            return date.fromisoformat(value.strip())  # ValueError -> validation error
        raise ValueError("must be an ISO date such as 2026-07-01")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> str:
        # `version: 1.0` in YAML is a float; keep it as the text the author meant.
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_list(cls, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise ValueError("must be a list, e.g. [fees, late-payment]")
        # `tags: [12378]` is a YAML number; a tag is text.
        return [str(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else t for t in value]

    def section(self, heading_or_anchor: str) -> Section:
        for section in self.sections:
            if heading_or_anchor in (section.heading, section.anchor):
                return section
        raise KeyError(f"{self.source or self.path}: no section {heading_or_anchor!r}")


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """Return (front matter as a dict, Markdown body). Raises ValueError when absent or bad."""
    match = FRONT_MATTER.match(text.lstrip("\ufeff"))
    if not match:
        raise ValueError("no YAML front matter: the file must start with a '---' line and close it with '---'")
    try:
        meta = yaml.load(match.group(1), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError("front matter must be a YAML mapping (key: value lines)")
    return meta, text.lstrip("\ufeff")[match.end():]


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "section"


def split_sections(body: str, title: str) -> list[Section]:
    """Split a Markdown body at `## ` headings; drop the `# ` title line."""
    parts: list[tuple[str, list[str]]] = [(title, [])]
    in_fence = seen_title = False
    for line in body.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("## "):
            parts.append((line[3:].strip().rstrip("#").strip(), []))
            continue
        elif not in_fence and line.startswith("# ") and not seen_title and len(parts) == 1 \
                and not "".join(parts[0][1]).strip():
            seen_title = True  # the document title; the front matter's title is authoritative
            continue
        parts[-1][1].append(line)
    sections: list[Section] = []
    used: dict[str, int] = {}
    for index, (heading, lines) in enumerate(parts):
        text = "\n".join(lines).strip()
        if index == 0 and not text:
            continue  # no preamble before the first `##`
        if not heading:
            raise ValueError("a '## ' heading is empty")
        if not text:
            raise ValueError(f"section {heading!r} has no text")
        anchor = slugify(heading)
        used[anchor] = used.get(anchor, 0) + 1
        if used[anchor] > 1:
            anchor = f"{anchor}-{used[anchor]}"
        sections.append(Section(heading=heading, text=text, anchor=anchor))
    return sections


def parse_document(path: Path, kb_dir: Path | None = None) -> Document:
    """Read one document; raise KnowledgeBaseError naming the file on any problem."""
    path = Path(path)
    source = path.relative_to(kb_dir).as_posix() if kb_dir else path.name
    try:
        meta, body = split_front_matter(path.read_text(encoding="utf-8"))
        reserved = sorted({"path", "source", "sections", "meta"} & set(meta))
        if reserved:
            raise ValueError(f"front-matter field(s) reserved for the loader: {', '.join(reserved)}")
        known = {k: v for k, v in meta.items() if k in Document.model_fields}
        extra = {k: v for k, v in meta.items() if k not in Document.model_fields}
        title = str(meta.get("title") or "")
        return Document.model_validate({
            **known, "meta": extra, "path": path, "source": source,
            "sections": split_sections(body, title),
        })
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'document'}: {e['msg']}" for e in exc.errors())
        raise KnowledgeBaseError(f"{source}: {problems}") from exc
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise KnowledgeBaseError(f"{source}: {exc}") from exc


def document_paths(kb_dir: Path) -> list[Path]:
    return sorted(p for p in Path(kb_dir).rglob("*.md") if p.name.lower() != "readme.md")


def load_documents(kb_dir: Path, product_keys: set[str] | None = None) -> list[Document]:
    """Every document under kb_dir, sorted by path. Collects every problem (bad front matter,
    unknown product key when `product_keys` is given, duplicate ids) and raises them together."""
    kb_dir = Path(kb_dir)
    if not kb_dir.is_dir():
        raise KnowledgeBaseError(f"{kb_dir}: knowledge-base folder not found")
    documents: list[Document] = []
    problems: list[str] = []
    for path in document_paths(kb_dir):
        try:
            documents.append(parse_document(path, kb_dir))
        except KnowledgeBaseError as exc:
            problems.append(str(exc))
    first_seen: dict[str, str] = {}
    for doc in documents:
        if product_keys is not None and doc.product is not None and doc.product not in product_keys:
            problems.append(f"{doc.source}: product {doc.product!r} is not a key of terms.yaml "
                            f"({', '.join(sorted(product_keys))})")
        if doc.id in first_seen:
            problems.append(f"{doc.source}: id {doc.id!r} already used by {first_seen[doc.id]}")
        first_seen.setdefault(doc.id, doc.source)
    if problems:
        raise KnowledgeBaseError("\n".join(problems))
    return documents
