"""Events: every webhook outcome published once as a CloudEvent, and the consumers that react.

``EventBus`` (base.py) owns the rules; ``PubSubBus`` (pubsub.py) and ``EmbeddedBus``
(embedded.py) implement ``_publish``. ``open_bus`` picks one from the settings
(``EVENTS_BACKEND``); ``shared.deps.get_bus`` builds it once per process and logs the choice.
Adapters are imported only by ``open_bus``: importing this package never loads
``google.cloud.pubsub``. See docs/events.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError
from shared.events.base import (
    BALANCE_LOW,
    BATCH_COMPLETED,
    EVENT_TYPES,
    INBOUND,
    OPTOUT,
    STATUS,
    VERIFY_COMPLETED,
    EventBus,
    PublishError,
    build_event,
)
from shared.events.consumer import consume_once, consumer, unwrap

if TYPE_CHECKING:
    from shared.config import Settings

__all__ = [
    "BALANCE_LOW",
    "BATCH_COMPLETED",
    "EVENT_TYPES",
    "INBOUND",
    "OPTOUT",
    "STATUS",
    "VERIFY_COMPLETED",
    "EventBus",
    "PublishError",
    "build_event",
    "consume_once",
    "consumer",
    "open_bus",
    "unwrap",
]


def open_bus(settings: Settings, *, sweep: Callable[[EventBus], Any] | None = None) -> EventBus | None:
    """The bus ``settings.events_backend`` names, or None for ``none``; embedded consumers subscribed."""
    backend = settings.events_backend
    if backend == "none":
        return None
    if backend == "pubsub":
        from shared.events.pubsub import PubSubBus

        try:
            return PubSubBus(
                project=settings.google_cloud_project or "",
                topic=settings.pubsub_topic,
                prefix=settings.pubsub_topic_prefix,
            )
        except ValueError as exc:
            raise ConfigError(f"EVENTS_BACKEND=pubsub: {exc}") from exc
    if backend == "embedded":
        from shared.events.consumer import handled_types
        from shared.events.embedded import EmbeddedBus
        from shared.webhooks.inbound import load_handler

        bus = EmbeddedBus(sweep=sweep)
        specs = list(settings.events_consumers)
        if settings.inbound_dispatch == "bus":
            specs.insert(0, "shared.events.inbound:on_inbound")
        for spec in specs:
            try:
                fn = load_handler(spec)
            except ConfigError as exc:
                raise ConfigError(f"EVENTS_CONSUMERS: {spec!r} cannot be loaded ({exc.message})") from exc
            bus.subscribe(fn, handled_types(fn))
        return bus
    raise ConfigError(f"EVENTS_BACKEND must be pubsub, embedded or none, not {backend!r}")
