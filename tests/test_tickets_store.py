"""The store tests (tests/store_cases.py) on the default backend: a SQLite file in a temp dir."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from assistant.config import Settings

_spec = importlib.util.spec_from_file_location("store_cases", Path(__file__).with_name("store_cases.py"))
store_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store_cases)
globals().update({name: value for name, value in vars(store_cases).items() if name.startswith("test_")})


@pytest.fixture
def store_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)


def test_sqlite_runs_in_wal_mode_with_full_sync(store_settings):
    from sqlalchemy import text

    from assistant.store.tickets import TicketService

    service = TicketService(store_settings)
    with service.sessions() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
    assert (store_settings.data_dir / "assistant.db").is_file()
