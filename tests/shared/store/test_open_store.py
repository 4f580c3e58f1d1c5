"""open_store(): choosing the backend from Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Settings
from shared.errors import ConfigError
from shared.store import StateStore, open_store


def test_sqlite_backend_uses_the_configured_path(tmp_path: Path) -> None:
    from shared.store.sqlite import SQLiteStateStore

    path = tmp_path / "dir" / "state.sqlite3"
    store = open_store(Settings(state_backend="sqlite", sqlite_path=str(path)))
    try:
        assert isinstance(store, SQLiteStateStore) and isinstance(store, StateStore)
        assert store.name == "sqlite"
        store.create("things", "k", {"v": 1})
        assert path.is_file()
    finally:
        store.close()


def test_firestore_backend_gets_project_and_prefix_without_connecting() -> None:
    from shared.store.firestore import FirestoreStateStore

    store = open_store(
        Settings(state_backend="firestore", google_cloud_project="proj-1", firestore_collection_prefix="dev_")
    )
    assert isinstance(store, FirestoreStateStore)
    assert (store.name, store.project, store.prefix) == ("firestore", "proj-1", "dev_")
    assert store._client is None  # built on first use, not at startup


def test_bad_prefix_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        open_store(Settings(state_backend="firestore", firestore_collection_prefix="a/b"))


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        open_store(Settings(state_backend="redis"))
