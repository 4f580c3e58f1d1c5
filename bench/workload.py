"""Webhook traffic as Vonage sends it: signed inbound messages and status events, some delivered twice.

Half the events are inbound messages, half status events, each half split between the SMS API
(form or JSON fields signed with ``sig``) and the Messages API (JSON with an HS256 JWT). Status
events belong to messages written to the store beforehand (as the send function would have),
several statuses per message, shuffled. A share of the deliveries repeats an earlier event, as
Vonage's at-least-once delivery does: half of them right next to the original (so both copies
are in flight together), half later. Each delivery is signed when it is sent, so a long run
never trips the signature freshness check.

:meth:`WebhookWorkload.check` reads the store afterwards: every event applied exactly once.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from bench.stack import BRAND_NUMBER, Credentials

__all__ = ["Delivery", "WebhookWorkload"]

MESSAGES_STATUSES = ("submitted", "delivered", "read")
SMS_STATUSES = ("accepted", "delivered")


@dataclass(frozen=True)
class Delivery:
    """One webhook request to send; :meth:`render` signs it for now."""

    kind: str  # "inbound" or "status"
    api: str  # "sms" or "messages"
    event: str  # the event's identity: Vonage id (inbound) or "id|status" (status)
    fields: dict[str, Any]
    form: bool = False  # SMS API only: a form body instead of JSON
    duplicate: bool = False

    @property
    def path(self) -> str:
        """Where the one-process app serves this webhook."""
        return "/inbound" if self.kind == "inbound" else "/status"

    def render(self, creds: Credentials) -> tuple[bytes, dict[str, str]]:
        """The body and headers, signed as Vonage signs them, with a fresh timestamp."""
        if self.api == "messages":
            from shared.vonage.signatures import sign_webhook_jwt

            body = json.dumps(self.fields, separators=(",", ":")).encode()
            token = sign_webhook_jwt(
                body, secret=creds.signature_secret, api_key=creds.api_key, application_id=creds.application_id
            )
            return body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        from shared.vonage.signatures import sign_sms_params

        params = {**self.fields, "nonce": str(uuid.uuid4())}
        signed = sign_sms_params(params, secret=creds.signature_secret, method=creds.signature_method)
        if self.form:
            return urlencode(signed).encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        return json.dumps(signed).encode(), {"Content-Type": "application/json"}


@dataclass
class _SentMessage:
    message_id: str
    api: str
    vonage_id: str
    statuses: tuple[str, ...]


@dataclass
class WebhookWorkload:
    """``count`` deliveries (``duplicate_share`` of them repeats) and the state they must leave."""

    creds: Credentials
    count: int
    duplicate_share: float = 0.1
    seed: int = 7
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    deliveries: list[Delivery] = field(init=False)
    messages: list[_SentMessage] = field(init=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        duplicates = int(self.count * self.duplicate_share)
        unique = self.count - duplicates
        inbound_count = unique // 2
        status_count = unique - inbound_count
        events: list[Delivery] = [self._inbound(i) for i in range(inbound_count)]
        self.messages = []
        statuses: list[Delivery] = []
        i = 0
        while len(statuses) < status_count:
            message = self._message(i)
            self.messages.append(message)
            for status in message.statuses:
                if len(statuses) == status_count:
                    message.statuses = message.statuses[: message.statuses.index(status)]
                    break
                statuses.append(self._status(message, status))
            i += 1
        events += statuses
        rng.shuffle(events)
        # Duplicates: half right after their original (both in flight at once), half later on.
        placed: list[tuple[float, int, Delivery]] = [(float(i), 0, d) for i, d in enumerate(events)]
        for n in range(duplicates):
            index = rng.randrange(len(events))
            original = events[index]
            copy = Delivery(original.kind, original.api, original.event, original.fields, original.form, duplicate=True)
            position = index + 0.5 if n % 2 == 0 else rng.uniform(index + 1, len(events))
            placed.append((position, n + 1, copy))
        self.deliveries = [d for _, _, d in sorted(placed, key=lambda item: (item[0], item[1]))]

    # ---- building -------------------------------------------------------------------

    def _inbound(self, i: int) -> Delivery:
        text = f"Benchmark message {i} - hello there"
        sender = f"447700{300000 + i % 100000:06d}"
        if i % 2 == 0:
            vonage_id = str(uuid.uuid4())
            fields = {
                "channel": "whatsapp" if i % 4 == 0 else "sms",
                "message_uuid": vonage_id,
                "to": BRAND_NUMBER,
                "from": sender,
                "timestamp": "2026-01-30T12:00:00Z",
                "message_type": "text",
                "text": text,
            }
            return Delivery("inbound", "messages", vonage_id, fields)
        vonage_id = f"1{self.tag[:7]}{i:08X}".upper()
        fields = {
            "msisdn": sender,
            "to": BRAND_NUMBER,
            "messageId": vonage_id,
            "text": text,
            "type": "text",
            "keyword": "BENCHMARK",
            "message-timestamp": "2026-01-30 12:00:00",
            "api-key": self.creds.api_key,
        }
        return Delivery("inbound", "sms", vonage_id, fields, form=i % 4 == 1)

    def _message(self, i: int) -> _SentMessage:
        message_id = f"msg_{self.tag}{i:024x}"
        if i % 2 == 0:
            return _SentMessage(message_id, "messages", str(uuid.uuid4()), MESSAGES_STATUSES)
        return _SentMessage(message_id, "sms", f"2{self.tag[:7]}{i:08X}".upper(), SMS_STATUSES)

    def _status(self, message: _SentMessage, status: str) -> Delivery:
        step = MESSAGES_STATUSES.index(status) if message.api == "messages" else SMS_STATUSES.index(status)
        if message.api == "messages":
            fields = {
                "message_uuid": message.vonage_id,
                "to": "447700100123",
                "from": BRAND_NUMBER,
                "timestamp": f"2026-01-30T12:00:0{step + 1}Z",
                "status": status,
                "channel": "whatsapp",
                "usage": {"currency": "EUR", "price": "0.0100"},
            }
            return Delivery("status", "messages", f"{message.vonage_id}|{status}", fields)
        fields = {
            "msisdn": "447700100123",
            "to": "ACME",
            "network-code": "23410",
            "messageId": message.vonage_id,
            "price": "0.03330000",
            "status": status,
            "scts": "2601301200",
            "err-code": "0",
            "api-key": self.creds.api_key,
            "message-timestamp": f"2026-01-30 12:00:0{step + 1}",
        }
        return Delivery("status", "sms", f"{message.vonage_id}|{status}", fields, form=step == 0)

    # ---- the store ------------------------------------------------------------------

    def prepare(self, store: Any) -> None:
        """Write the sent messages the status events refer to, as the send function does."""
        from shared.messages.records import MESSAGES, attach_vonage_ids, new_message_record

        for message in self.messages:
            store.create(
                MESSAGES,
                message.message_id,
                new_message_record(
                    message.message_id,
                    channel="whatsapp" if message.api == "messages" else "sms",
                    api=message.api,
                    to="+447700100123",
                    sender=BRAND_NUMBER,
                ),
            )
            attach_vonage_ids(store, message.message_id, [{"vonage_id": message.vonage_id}])

    def check(self, store: Any) -> dict[str, Any]:
        """Every event stored exactly once? ``{events, lost, doubled, examples}`` from the store."""
        from shared.messages.records import MESSAGES
        from shared.webhooks.inbound import INBOUND

        lost: list[str] = []
        doubled: list[str] = []
        inbound = {d.event for d in self.deliveries if d.kind == "inbound"}
        for vonage_id in sorted(inbound):
            record = store.get(INBOUND, vonage_id)
            if record is None:
                lost.append(f"inbound {vonage_id}: no record")
            elif (record.get("handoff") or {}).get("state") != "done":
                lost.append(f"inbound {vonage_id}: hand-off {record.get('handoff')}")
        for message in self.messages:
            record = store.get(MESSAGES, message.message_id) or {}
            seen = Counter(
                entry.get("status")
                for entry in record.get("history") or []
                if entry.get("vonage_id") == message.vonage_id
            )
            for status in message.statuses:
                if seen[status] == 0:
                    lost.append(f"status {message.vonage_id}|{status}: not in the history")
                elif seen[status] > 1:
                    doubled.append(f"status {message.vonage_id}|{status}: {seen[status]} times in the history")
            for status, times in seen.items():
                if status not in message.statuses:
                    doubled.append(f"status {message.vonage_id}|{status}: never sent, found {times} times")
        unique = len(inbound) + sum(len(m.statuses) for m in self.messages)
        return {
            "events": unique,
            "deliveries": len(self.deliveries),
            "duplicates": sum(1 for d in self.deliveries if d.duplicate),
            "lost": len(lost),
            "doubled": len(doubled),
            "examples": (lost + doubled)[:5],
        }

    def __iter__(self) -> Iterator[Delivery]:
        return iter(self.deliveries)
