"""The same store tests (tests/store_cases.py) against a real PostgreSQL server.

The session starts its own cluster with Debian's `postgresql` binaries (initdb, pg_ctl) in a temp
dir on a free loopback port, runs the tests each in a fresh database, then stops and removes it.
initdb refuses to run as root: as root the cluster runs as the `postgres` system user. Skipped,
with the reason, where the binaries or psycopg are missing (CI installs them: see the README)."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from assistant.config import Settings

pytestmark = pytest.mark.postgres

_spec = importlib.util.spec_from_file_location("store_cases", Path(__file__).with_name("store_cases.py"))
store_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store_cases)
globals().update({name: value for name, value in vars(store_cases).items() if name.startswith("test_")})


def _pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pg_server():
    """(admin URL, URL template) of a PostgreSQL server that lives for the test session."""
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'psycopg[binary]')")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    as_root = os.geteuid() == 0
    if as_root and not shutil.which("runuser"):
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    base = Path(tempfile.mkdtemp(prefix="meadow-pg-"))
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(base, "postgres", "postgres")
    data, log, port = base / "data", base / "server.log", _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, text=True, timeout=120)

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "meadow", "--auth=trust", "-E", "UTF8", "--no-sync")
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
           f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr or exc.stdout}")
    try:
        yield f"postgresql+psycopg://meadow@127.0.0.1:{port}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def store_settings(pg_server, tmp_path) -> Settings:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{pg_server.replace('+psycopg', '')}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return Settings(data_dir=tmp_path / "data", database_url=f"{pg_server}/{name}", _env_file=None)


def test_the_store_really_is_postgres(store_settings):
    from sqlalchemy import text

    from assistant.store.tickets import TicketService

    service = TicketService(store_settings)
    with service.sessions() as session:
        assert session.execute(text("select version()")).scalar().startswith("PostgreSQL")
    assert not (store_settings.data_dir / "assistant.db").exists()
