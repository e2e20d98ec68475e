"""The public data sets the project trains and evaluates with (data_sources.yaml): where they are,
and fetching them from a mirror with their checksums, so a clone without ../shared still works."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel

from assistant.config import PROJECT_ROOT, Settings

MANIFEST = PROJECT_ROOT / "data_sources.yaml"
LOCAL_MIRROR = PROJECT_ROOT.parent / "shared" / "data"  # the team's shared copy, when this checkout has one
Status = Literal["present", "copied", "downloaded", "missing", "checksum_mismatch"]


class DataFile(BaseModel):
    path: str
    sha256: str
    bytes: int
    source: str
    license: str


class FetchResult(BaseModel):
    path: str
    status: Status
    origin: str = ""
    detail: str = ""


def load_manifest(path: Path = MANIFEST) -> list[DataFile]:
    return [DataFile(**row) for row in yaml.safe_load(path.read_text(encoding="utf-8"))["files"]]


def target_dir(settings: Settings) -> Path:
    return settings.datasets_dir or settings.data_dir / "datasets"


def resolve_datasets_dir(settings: Settings | None = None) -> Path:
    """Where commands read the data sets: the fetched copy if there is one, else the local mirror."""
    if settings is None:
        try:
            settings = Settings()
        except Exception:  # bad settings are reported by the command that needs them, not at import
            return LOCAL_MIRROR
    target = target_dir(settings)
    if target.is_dir() and any(target.glob("*.csv")):
        return target
    return LOCAL_MIRROR if LOCAL_MIRROR.is_dir() else target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(files: list[DataFile], target: Path, mirrors: list[str]) -> list[FetchResult]:
    """Each file that is not already in `target` with its checksum is taken from the first mirror that
    has it with the right checksum; a file is only ever moved into place once verified."""
    return [_fetch_one(entry, target, mirrors) for entry in files]


def _fetch_one(entry: DataFile, target: Path, mirrors: list[str]) -> FetchResult:
    final = target / entry.path
    if final.is_file() and sha256_of(final) == entry.sha256:
        return FetchResult(path=entry.path, status="present", origin=str(final))
    problems = []
    for mirror in mirrors:
        remote = mirror.startswith(("http://", "https://"))
        try:
            tmp = _download(f"{mirror.rstrip('/')}/{entry.path}") if remote else _copy(Path(mirror) / entry.path)
        except (OSError, ValueError) as exc:
            problems.append(f"{mirror}: {exc}")
            continue
        if tmp is None:
            continue
        got = sha256_of(tmp)
        if got != entry.sha256:
            tmp.unlink(missing_ok=True)
            problems.append(f"{mirror}: sha256 {got[:12]}… is not {entry.sha256[:12]}…")
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        return FetchResult(path=entry.path, status="downloaded" if remote else "copied", origin=mirror)
    status: Status = "checksum_mismatch" if any("sha256" in p for p in problems) else "missing"
    return FetchResult(path=entry.path, status=status, detail="; ".join(problems) or "no mirror has it")


def _copy(source: Path) -> Path | None:
    if not source.is_file():
        return None
    tmp = Path(tempfile.mkstemp(prefix="fetch-")[1])
    shutil.copyfile(source, tmp)
    return tmp


def _download(url: str) -> Path:
    tmp = Path(tempfile.mkstemp(prefix="fetch-")[1])
    with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as out:  # noqa: S310 (http(s) only)
        shutil.copyfileobj(response, out)
    return tmp
