"""The state store: one contract (:class:`StateStore`), three backends (SQLite, Firestore, PostgreSQL).

Backend modules are imported only by :func:`open_store`, so importing this package never
pulls in ``google.cloud.firestore`` (~200 ms of cold start) or ``psycopg``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.errors import ConfigError
from shared.store.base import Charge, RateDecision, RateHit, StateStore, Update

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = ["Charge", "RateDecision", "RateHit", "StateStore", "Update", "open_store"]


def open_store(settings: Settings) -> StateStore:
    """The store ``settings.state_backend`` names ("sqlite", "firestore" or "postgres"), not yet connected."""
    if settings.state_backend == "sqlite":
        from shared.store.sqlite import SQLiteStateStore

        return SQLiteStateStore(settings.sqlite_path)
    if settings.state_backend == "firestore":
        from shared.store.firestore import FirestoreStateStore

        try:
            return FirestoreStateStore(
                project=settings.google_cloud_project, prefix=settings.firestore_collection_prefix
            )
        except ValueError as exc:
            raise ConfigError(f"FIRESTORE_COLLECTION_PREFIX is invalid: {exc}") from exc
    if settings.state_backend == "postgres":
        from shared.store.postgres import PostgresStateStore

        if not settings.database_url:
            raise ConfigError("DATABASE_URL is not set: STATE_BACKEND=postgres needs a PostgreSQL URL")
        return PostgresStateStore(settings.database_url, pool_size=settings.postgres_pool_size)
    raise ConfigError(f"STATE_BACKEND must be sqlite, firestore or postgres, not {settings.state_backend!r}")
