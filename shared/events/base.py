"""Events: the rules every bus shares, and the one way an event is built.

Each outcome of a webhook becomes one CloudEvent (spec 1.0, structured JSON mode). The producer
side builds and checks the JSON object itself (the spec's few attribute rules, below): the
``cloudevents`` library cost a webhook more CPU than its store writes, and its import a cold start
~100 ms, for objects this module writes by construction. Consumers still receive the library's
``CloudEvent`` (``shared.events.consumer``), and the tests read every event back with the
library. The rules live here, in the
shape of ``shared.store.base``: :class:`EventBus` checks and encodes an event once and hands an
:class:`Envelope` to its adapter, which implements only ``_publish`` (and ``_close``).

- ``id`` is derived from the webhook's dedupe key (a UUIDv5), so a Vonage retry of the same
  webhook yields the same id and a consumer can deduplicate on it.
- Phone numbers are E.164 (``+`` and digits), as the webhook parsers normalise them.
- No secrets: events carry what the stored records hold minus raw payloads; never an OTP code,
  a signature or a token (:func:`build_event` refuses the field names the log refuses).
- The ordering key is the conversation (our number + theirs), so one conversation's events are
  delivered in order where the bus supports it (Pub/Sub ``enable_message_ordering``).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from shared.errors import ServiceError
from shared.log import FORBIDDEN_FIELDS

SPEC_VERSION = "1.0"
_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]{1,20}")
_DATA_MEMBERS = frozenset({"data", "data_base64"})  # the event's payload, not attributes

__all__ = [
    "BALANCE_LOW",
    "BATCH_COMPLETED",
    "EVENT_SOURCE",
    "EVENT_TYPES",
    "INBOUND",
    "OPTOUT",
    "STATUS",
    "VERIFY_COMPLETED",
    "Envelope",
    "EventBus",
    "PublishError",
    "build_event",
    "check_attributes",
    "conversation_key",
    "event_id",
    "parse_event",
    "topic_suffix",
]

INBOUND = "com.vonage.message.inbound.v1"
STATUS = "com.vonage.message.status.v1"
VERIFY_COMPLETED = "com.vonage.verify.completed.v1"
OPTOUT = "com.vonage.optout.v1"
BATCH_COMPLETED = "com.vonage.batch.completed.v1"
BALANCE_LOW = "com.vonage.account.balance_low.v1"
EVENT_TYPES = (INBOUND, STATUS, VERIFY_COMPLETED, OPTOUT, BATCH_COMPLETED, BALANCE_LOW)
EVENT_SOURCE = "//vonage-functions"

# A fixed namespace: the same dedupe key gives the same event id in every process, forever.
_ID_NAMESPACE = uuid.UUID("6f0c2f7e-2f5b-5a57-9c1e-7b6b8a1e0d13")
# The extension attribute that carries the ordering key inside the event (lowercase alnum, per spec).
CONVERSATION_ATTRIBUTE = "conversation"


class PublishError(ServiceError):
    """The bus did not take the event. It stays in the outbox: a retry or the sweep publishes it."""

    status = 503
    code = "events_unavailable"


def event_id(event_type: str, dedupe_key: str) -> str:
    """The id of the event of ``event_type`` for the webhook delivery keyed ``dedupe_key``."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{event_type}\n{dedupe_key}"))


def topic_suffix(event_type: str) -> str:
    """``com.vonage.message.inbound.v1`` -> ``message-inbound`` (the per-type topic name's tail)."""
    parts = event_type.split(".")
    return "-".join(parts[2:-1])


def conversation_key(ours: str | None, theirs: str | None) -> str | None:
    """The ordering key of a conversation: our number and theirs, or None when one is unknown."""
    if not ours or not theirs:
        return None
    return f"{ours}:{theirs}"


def build_event(
    event_type: str,
    *,
    key: str,
    data: Mapping[str, Any],
    subject: str | None = None,
    conversation: str | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """One CloudEvent as its structured-mode JSON object (what the outbox stores and the bus sends).

    ``key`` is the webhook's dedupe key (the id is derived from it); ``conversation`` the ordering
    key (see :func:`conversation_key`). Raises ValueError for an unknown type or a secret field.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    _refuse_secrets(data, "data")
    attributes: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "type": event_type,
        "source": EVENT_SOURCE,
        "id": event_id(event_type, key),
        "time": datetime.fromtimestamp(time.time() if at is None else at, tz=timezone.utc).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
    }
    if subject:
        attributes["subject"] = subject
    if conversation:
        attributes[CONVERSATION_ATTRIBUTE] = conversation
    return {**attributes, "data": dict(data)}


def parse_event(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """A structured-mode CloudEvent (bytes, text or dict) checked by the library; the dict form."""
    from cloudevents.conversion import to_dict
    from cloudevents.http import from_dict, from_json

    event = from_dict(dict(body)) if isinstance(body, Mapping) else from_json(body)
    return to_dict(event)


def check_attributes(event: Mapping[str, Any]) -> None:
    """CloudEvents 1.0's rules for a structured-mode event's attributes; ValueError names the first
    broken one. Required: specversion "1.0", and id, source, type as non-empty strings; every
    attribute name is 1-20 lower-case letters or digits; attribute values are strings, numbers
    or booleans (the JSON format's context attribute types)."""
    missing = [name for name in ("specversion", "id", "source", "type") if not event.get(name)]
    if missing:
        # An event without its own id cannot be deduplicated (a library would invent one).
        raise ValueError(f"an event needs {', '.join(missing)}")
    if event["specversion"] != SPEC_VERSION:
        raise ValueError(f"specversion {event['specversion']!r} is not {SPEC_VERSION!r}")
    for name, value in event.items():
        if name in _DATA_MEMBERS:
            continue
        if not _ATTRIBUTE_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a CloudEvents attribute name (1-20 of a-z, 0-9)")
        if name in ("id", "source", "type", "subject", "time", "datacontenttype") and not isinstance(value, str):
            raise ValueError(f"the {name} attribute must be a string")
        if not isinstance(value, (str, int, float, bool)):
            raise ValueError(f"the {name} attribute must be a string, a number or a boolean")


def _refuse_secrets(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for name, item in value.items():
            if str(name).lower() in FORBIDDEN_FIELDS:
                raise ValueError(f"an event may not carry a {name!r} field ({path})")
            _refuse_secrets(item, f"{path}.{name}")
    elif isinstance(value, list):
        for item in value:
            _refuse_secrets(item, path)


@dataclass(frozen=True)
class Envelope:
    """An event ready for a bus: its JSON body, its attributes and where it goes."""

    event: dict[str, Any]  # the structured-mode object
    body: bytes  # its JSON encoding (the Pub/Sub message data)
    attributes: dict[str, str]  # ce-id, ce-type, ce-source (Pub/Sub filters and push headers)
    ordering_key: str  # "" when the event belongs to no conversation
    topic_suffix: str  # e.g. "message-inbound"

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])


class EventBus(ABC):
    """Publish CloudEvents. The rules live here; adapters implement ``_publish`` and ``_close``.

    ``publish`` raises :class:`PublishError` when the adapter could not hand the event over:
    callers keep it in the outbox (``shared.events.outbox``) and publish it again later.
    """

    name: str  # "pubsub", "embedded"

    def envelope(self, event: Mapping[str, Any]) -> Envelope:
        """Check and encode one event (the same bytes on every bus)."""
        check_attributes(event)
        if event["type"] not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event['type']!r}")
        checked = dict(event)
        checked["data"] = event.get("data")
        body = json.dumps(checked, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        attributes = {"ce-id": str(checked["id"]), "ce-type": str(checked["type"]), "ce-source": str(checked["source"])}
        if checked.get("subject"):
            attributes["ce-subject"] = str(checked["subject"])
        return Envelope(
            event=checked,
            body=body,
            attributes=attributes,
            ordering_key=str(checked.get(CONVERSATION_ATTRIBUTE) or ""),
            topic_suffix=topic_suffix(str(checked["type"])),
        )

    def publish(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Publish each event in order; PublishError when one was not taken (the rest are not tried)."""
        for event in events:
            envelope = self.envelope(event)
            try:
                self._publish(envelope)
            except PublishError:
                raise
            except Exception as exc:
                raise PublishError(
                    f"the {self.name} event bus did not take the event ({type(exc).__name__}); it stays in the outbox"
                ) from exc

    def close(self) -> None:
        """Flush and release what the adapter holds."""
        self._close()

    @abstractmethod
    def _publish(self, envelope: Envelope) -> None:
        """Hand one event to the bus; return once the bus has it (raise otherwise)."""

    def _close(self) -> None:  # noqa: B027 - optional for adapters
        """Release resources."""
