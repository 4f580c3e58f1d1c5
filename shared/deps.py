"""Process-wide singletons, built lazily on first use and reused across requests.

Cloud Functions keeps an instance warm between requests, so the settings, the HTTP
connection pool (with its cached application JWT) and the store client are built once.
Nothing here runs at import time: importing a function module never reads the
environment or opens a connection.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any

from shared.config import Settings
from shared.log import configure_logging, get_logger, register_secrets

if TYPE_CHECKING:
    from shared.events.base import EventBus
    from shared.queue.base import TaskQueue
    from shared.store.base import StateStore
    from shared.vonage.client import VonageClient

__all__ = ["get_bus", "get_queue", "get_queue_pacer", "get_settings", "get_settings_or_none", "get_store", "get_vonage", "reset"]

_lock = threading.Lock()


@functools.cache
def get_settings() -> Settings:
    """The validated settings of this process (ConfigError names every bad variable)."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    register_secrets(
        [settings.api_secret, settings.private_key, settings.signature_secret, settings.webhook_token, *settings.api_tokens]
    )
    if settings.database_url:
        # DATABASE_URL carries a password: the URL and the password never reach a log line.
        from shared.store.postgres import database_secrets

        register_secrets(database_secrets(settings.database_url))
    register_secrets([settings.verify_captcha_secret, settings.deliver_secret])
    _warn_about_ip_source(settings)
    return settings


def _warn_about_ip_source(settings: Settings) -> None:
    """Public verify mode leans on the per-IP limit: say at start when its address source is a guess."""
    from shared.web import has_trusted_ip_source

    if settings.verify_public and not has_trusted_ip_source(settings):
        get_logger("shared.deps").warning(
            "public verify mode without TRUSTED_PROXY_HOPS or TRUSTED_PROXIES: the per-IP limit uses the "
            "connection's peer address, which behind a proxy or load balancer is the proxy's (set "
            "TRUSTED_PROXY_HOPS=1 on Cloud Run / Cloud Functions; see docs/money-safety.md)"
        )


def get_settings_or_none() -> Settings | None:
    """The settings if they load, else None (for best-effort uses such as log decoration)."""
    try:
        return get_settings()
    except Exception:
        return None


@functools.cache
def get_store() -> StateStore:
    """The state store chosen by STATE_BACKEND (or the environment), logged once."""
    from shared.store import open_store

    settings = get_settings()
    with _lock:
        store = open_store(settings)
    get_logger("shared.deps").info(
        "state store ready", extra={"backend": store.name, "why": settings.state_backend_reason}
    )
    return store


@functools.cache
def get_bus() -> EventBus | None:
    """The event bus chosen by EVENTS_BACKEND (or the environment), logged once; None for ``none``."""
    from shared.events import open_bus
    from shared.events.outbox import sweep

    settings = get_settings()
    with _lock:
        bus = open_bus(settings, sweep=lambda b: sweep(get_store(), b))
    get_logger("shared.deps").info(
        "event bus ready",
        extra={
            "backend": bus.name if bus is not None else "none",
            "why": settings.events_backend_reason,
            "inbound_dispatch": settings.inbound_dispatch,
        },
    )
    return bus


@functools.cache
def get_vonage() -> VonageClient:
    """The one Vonage client of this process (keep-alive pool, cached application JWT)."""
    from shared.vonage.client import VonageClient

    return VonageClient(get_settings())


@functools.cache
def get_queue() -> TaskQueue | None:
    """The task queue chosen by QUEUE_BACKEND (or the environment), logged once; None for ``none``."""
    from shared.queue import open_queue

    settings = get_settings()
    queue = open_queue(settings, get_store())
    get_logger("shared.deps").info(
        "task queue ready", extra={"backend": settings.queue_backend, "why": settings.queue_backend_reason}
    )
    return queue


@functools.cache
def get_queue_pacer() -> Any:
    """The pacer queued sends use: on the embedded queue, one budget shared through the store by
    every process; with Cloud Tasks the queue's own rate limit paces, and the process pacer
    only smooths what one instance sends."""
    settings = get_settings()
    if settings.queue_backend == "embedded":
        from shared.queue.embedded import StorePacer

        return StorePacer(get_store(), settings.max_rps, hold=settings.queue_lease_seconds)
    from shared.messages.pacing import get_pacer

    return get_pacer(settings.max_rps)


def reset() -> None:
    """Forget every singleton (tests, and the local runner when it rewires the environment)."""
    import sys

    worker = sys.modules.get("shared.queue.worker")
    if worker is not None:
        worker.stop_worker()  # it holds the old store and settings
    for getter in (get_bus, get_vonage, get_store):
        if getter.cache_info().currsize:
            try:
                getter().close()  # type: ignore[union-attr]
            except Exception:
                pass
        getter.cache_clear()
    get_queue.cache_clear()
    get_queue_pacer.cache_clear()
    get_settings.cache_clear()
