"""assistant data fetch: files come from a mirror only with the right checksum; a clone without
../shared works once fetched. Real files in temp dirs; an http mirror is a real local server."""

import hashlib
import http.server
import json
import subprocess
import sys
import threading
from functools import partial

import pytest

from assistant.config import PROJECT_ROOT, Settings
from assistant.public_data import LOCAL_MIRROR, DataFile, fetch, load_manifest, resolve_datasets_dir


def _entry(tmp_path, name="a.csv", body=b"x,y\n1,2\n"):
    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    (mirror / name).write_bytes(body)
    return DataFile(path=name, sha256=hashlib.sha256(body).hexdigest(), bytes=len(body), source="s", license="l"), mirror


def test_fetch_copies_verifies_and_then_finds_it_present(tmp_path):
    entry, mirror = _entry(tmp_path)
    target = tmp_path / "datasets"
    (first,) = fetch([entry], target, [str(mirror)])
    assert first.status == "copied" and (target / "a.csv").read_bytes() == (mirror / "a.csv").read_bytes()
    (again,) = fetch([entry], target, [str(mirror)])
    assert again.status == "present"


def test_a_file_with_the_wrong_checksum_is_never_put_in_place(tmp_path):
    entry, mirror = _entry(tmp_path)
    (mirror / "a.csv").write_bytes(b"tampered\n")
    (result,) = fetch([entry], tmp_path / "datasets", [str(tmp_path / "nowhere"), str(mirror)])
    assert result.status == "checksum_mismatch" and "sha256" in result.detail
    assert not (tmp_path / "datasets" / "a.csv").exists()


def test_fetch_downloads_from_an_http_mirror(tmp_path):
    entry, mirror = _entry(tmp_path, "sub/b.csv".replace("/", "_"))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (result,) = fetch([entry], tmp_path / "datasets", [f"http://127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
    assert result.status == "downloaded"


def test_commands_read_the_fetched_copy_before_the_mirror(tmp_path):
    settings = Settings(data_dir=tmp_path)
    (tmp_path / "datasets").mkdir()
    # empty: the local mirror when there is one (a clone without ../shared has only this folder)
    assert resolve_datasets_dir(settings) == (LOCAL_MIRROR if LOCAL_MIRROR.is_dir() else tmp_path / "datasets")
    (tmp_path / "datasets" / "german_credit_train.csv").write_text("a\n")
    assert resolve_datasets_dir(settings) == tmp_path / "datasets"


def test_manifest_lists_every_shared_file_with_its_checksum():
    files = load_manifest()
    assert len(files) >= 17 and all(len(f.sha256) == 64 for f in files)
    mirror = PROJECT_ROOT.parent / "shared" / "data"
    if not mirror.is_dir():
        pytest.skip("no ../shared/data here to compare with")
    on_disk = {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file() and p.name != "README.md"}
    assert on_disk == {f.path for f in files}


def test_cli_fetch_json_and_bad_mirror(tmp_path):
    entry, mirror = _entry(tmp_path)
    env = {"ASSISTANT_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "assistant.cli", "data", "where", "--json"], env=env,
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 0 and "datasets_dir" in json.loads(done.stdout)
    done = subprocess.run([sys.executable, "-m", "assistant.cli", "data", "fetch", "--json", "--mirror",
                           str(tmp_path / "empty")], env=env, capture_output=True, text=True, cwd=PROJECT_ROOT,
                          timeout=300)
    payload = json.loads(done.stdout)
    if not (PROJECT_ROOT.parent / "shared" / "data").is_dir():
        assert done.returncode == 1 and not payload["ok"]
    else:
        assert done.returncode == 0 and payload["ok"], payload
