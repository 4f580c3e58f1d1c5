"""Google Cloud Pub/Sub adapter (``google-cloud-pubsub``, imported on first use).

- Topic: ``PUBSUB_TOPIC`` takes every event; otherwise ``PUBSUB_TOPIC_PREFIX`` + ``-`` + the
  type's tail (``vonage-message-inbound``, ``vonage-message-status``, ``vonage-verify-completed``,
  ``vonage-optout``, ``vonage-batch-completed``), one topic per type, which is what deploy.sh creates.
- Message: the structured-mode CloudEvent JSON as data; ``ce-id``, ``ce-type``, ``ce-source``
  as attributes (for subscription filters); the conversation as ordering key, with
  ``enable_message_ordering`` on the publisher (deploy.sh enables it on the subscriptions).
- ``_publish`` waits for the server's acknowledgement (bounded by ``timeout``): the outbox is
  marked published only for an event Pub/Sub has. A failed publish pauses its ordering key in
  the client; it is resumed at once so the next attempt (a retry, the sweep) can go through.
- ``PUBSUB_EMULATOR_HOST`` points the client at the emulator (the library reads it itself).
"""

from __future__ import annotations

import threading
from typing import Any

from shared.events.base import Envelope, EventBus

__all__ = ["PubSubBus"]

DEFAULT_TIMEOUT = 10.0  # seconds to wait for Pub/Sub's acknowledgement of one publish


class PubSubBus(EventBus):
    """Publish to Pub/Sub topics of ``project``."""

    name = "pubsub"

    def __init__(
        self,
        *,
        project: str,
        topic: str | None = None,
        prefix: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        publisher: Any = None,
    ) -> None:
        if not project:
            raise ValueError("a Google Cloud project is needed for Pub/Sub (GOOGLE_CLOUD_PROJECT)")
        if not topic and not prefix:
            raise ValueError("PUBSUB_TOPIC or PUBSUB_TOPIC_PREFIX is needed for Pub/Sub")
        self.project = project
        self.topic = topic
        self.prefix = prefix
        self.timeout = timeout
        self._publisher = publisher
        self._lock = threading.Lock()

    def topic_for(self, envelope: Envelope) -> str:
        """The topic id an event goes to."""
        return self.topic or f"{self.prefix}-{envelope.topic_suffix}"

    def _client(self) -> Any:
        with self._lock:
            if self._publisher is None:
                from google.cloud import pubsub_v1

                self._publisher = pubsub_v1.PublisherClient(
                    publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
                )
            return self._publisher

    def _publish(self, envelope: Envelope) -> None:
        client = self._client()
        path = client.topic_path(self.project, self.topic_for(envelope))
        try:
            future = client.publish(path, envelope.body, ordering_key=envelope.ordering_key, **envelope.attributes)
            future.result(timeout=self.timeout)
        except Exception:
            if envelope.ordering_key:
                try:
                    client.resume_publish(path, envelope.ordering_key)
                except Exception:
                    pass
            raise

    def _close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                publisher.stop()
            except Exception:
                pass
