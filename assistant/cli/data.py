"""`assistant data`: the public data sets (data_sources.yaml) — list them, fetch them with checksums."""

from __future__ import annotations

import typer
from rich.table import Table

from assistant.cli.common import emit_json, err, fail, load_settings
from assistant.public_data import LOCAL_MIRROR, fetch, load_manifest, resolve_datasets_dir, target_dir

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("fetch")
def fetch_command(
    mirror: list[str] = typer.Option([], "--mirror", help="a folder or http(s) base URL holding the files "
                                     "(repeatable; ../shared/data is tried last when it exists)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
) -> None:
    """Copy or download every data set into the data dir, checking each file's sha256."""
    settings = load_settings(as_json=as_json)
    mirrors = [*mirror, *([str(LOCAL_MIRROR)] if LOCAL_MIRROR.is_dir() else [])]
    if not mirrors:
        fail("no mirror: pass --mirror FOLDER_OR_URL (a copy of the files listed in data_sources.yaml)",
             as_json=as_json)
    target = target_dir(settings)
    results = fetch(load_manifest(), target, mirrors)
    bad = [r for r in results if r.status in ("missing", "checksum_mismatch")]
    if as_json:
        emit_json({"target": str(target), "files": [r.model_dump() for r in results], "ok": not bad})
    else:
        table = Table("file", "status", "from")
        for r in results:
            table.add_row(r.path, r.status, r.origin or r.detail)
        err.print(table)
        err.print(f"{len(results) - len(bad)} of {len(results)} files in {target}")
    if bad:
        raise typer.Exit(1)


@app.command("where")
def where_command(as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout")) -> None:
    """Print the folder training and evaluation commands read the data sets from."""
    settings = load_settings(as_json=as_json)
    folder = resolve_datasets_dir(settings)
    if as_json:
        emit_json({"datasets_dir": str(folder), "exists": folder.is_dir()})
    else:
        print(folder)
