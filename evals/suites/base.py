"""What every suite shares: its options, data loading, row selection, a progress bar on stderr."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from assistant.config import PROJECT_ROOT
from assistant.public_data import resolve_datasets_dir

DATASETS = PROJECT_ROOT / "evals" / "datasets"
SHARED_DATA = resolve_datasets_dir()  # fetched copy (assistant data fetch), else ../shared/data


class SuiteUnavailable(RuntimeError):
    """The suite cannot run here (a module not built yet, a data file missing): the reason is reported."""


@dataclass
class SuiteOptions:
    data: Path | None = None  # --data suite=PATH: a file in the same format, swapped in
    limit: int | None = None
    baseline: bool = True
    progress: bool = True
    ci: bool = False  # the fast slice: smaller samples, no baseline generation
    judge: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def data_file(self, default: Path) -> Path:
        path = Path(self.data) if self.data else default
        if not path.exists():
            raise SuiteUnavailable(f"data file {path} not found")
        return path


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as handle:
        for n, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise SuiteUnavailable(f"{path}:{n}: not JSON ({exc})") from exc
    return rows


def select_rows(rows: Sequence[dict[str, Any]], limit: int | None, key: str = "category",
                quotas: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """A deterministic, stratified sample: `quotas` rows of the named groups first, then one row
    of each other group in turn (file order within a group) until `limit` rows are taken.
    The result keeps file order, so a slice of a slice is stable."""
    if limit is None or limit >= len(rows):
        return list(rows)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(str(row.get(key, "")), []).append(i)
    chosen: list[int] = []
    for group, n in (quotas or {}).items():
        chosen += groups.pop(group, [])[: min(n, limit - len(chosen))]
    queues = [list(ix) for ix in groups.values()]
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return [rows[i] for i in sorted(chosen)]


def progress(items: Iterable[Any], desc: str, total: int | None = None, enabled: bool = True) -> Iterator[Any]:
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, file=sys.stderr, disable=not enabled, unit="row",
                    dynamic_ncols=True, leave=False)
