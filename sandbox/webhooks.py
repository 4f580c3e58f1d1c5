"""The webhook delivery worker: sends receipts, inbound messages and Verify callbacks like Vonage.

Deliveries are queued with a due time and sent by one background thread, in due order
(so a test sees a reproducible order). A delivery answered with 429 or 5xx, or not
answered at all, is retried after each of ``retry_delays`` in turn, as Vonage does
(vonage-api.md §10.2); any other 4xx ends it. Every attempt renders the request afresh,
so signatures and their timestamps are as new as Vonage's would be on a retry.

By default a webhook may only go to a loopback address: the sandbox never talks to the
network (``allow_remote_webhooks`` lifts this).
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from sandbox.config import SandboxConfig
from sandbox.state import iso_time

__all__ = ["Delivery", "OutgoingRequest", "WebhookDispatcher", "safe_url"]

log = logging.getLogger("sandbox.webhooks")

CONNECT_TIMEOUT = 3.0  # Vonage gives a webhook about 3 s to connect (field-notes.md)
_SECRET_QUERY_WORDS = ("token", "secret", "password", "auth")


@dataclass(frozen=True)
class OutgoingRequest:
    """One rendered webhook request; ``fields`` is the decoded payload, kept for the delivery log."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes
    fields: dict[str, Any]


@dataclass
class Delivery:
    """A webhook to deliver and what happened to it."""

    kind: str  # sms-dlr | message-status | sms-inbound | message-inbound | verify-event | verify-summary
    url: str
    render: Callable[[], OutgoingRequest]
    ref: dict[str, Any] = field(default_factory=dict)  # ids that tie it to a message or request
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    duplicate_of: str | None = None
    state: str = "pending"  # pending | delivered | retrying | failed | refused | cancelled
    attempts: list[dict[str, Any]] = field(default_factory=list)
    fields: dict[str, Any] | None = None
    format: str | None = None

    def copy(self) -> Delivery:
        """A duplicate of this delivery (same payload source, its own id and log)."""
        return Delivery(self.kind, self.url, self.render, dict(self.ref), duplicate_of=self.id, format=self.format)

    def to_dict(self) -> dict[str, Any]:
        """The log entry: where it went, what was sent, each attempt and the final state."""
        return {
            "id": self.id,
            "kind": self.kind,
            "url": safe_url(self.url),
            "format": self.format,
            "ref": dict(self.ref),
            "duplicate_of": self.duplicate_of,
            "state": self.state,
            "attempts": [dict(a) for a in self.attempts],
            "status": self.attempts[-1]["status"] if self.attempts else None,
            "fields": self.fields,
        }


class WebhookDispatcher:
    """Queues deliveries and sends them from one worker thread, with Vonage's retry rule."""

    def __init__(self, config: Callable[[], SandboxConfig], *, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, Delivery]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._log: list[Delivery] = []
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None

    # ---- lifecycle ------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread."""
        # trust_env=False: a proxy from the environment must never see a local webhook.
        self._client = httpx.Client(trust_env=False, follow_redirects=False)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker; deliveries still queued are marked cancelled."""
        with self._cond:
            self._stopping = True
            for _, _, delivery in self._queue:
                delivery.state = "cancelled"
            self._queue.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- queueing -------------------------------------------------------

    def submit(
        self,
        deliveries: list[Delivery],
        *,
        delay: float | None = None,
        duplicate: bool = False,
        reorder: bool = False,
        early: bool = False,
    ) -> list[Delivery]:
        """Queue ``deliveries`` (in order) and return every delivery created, duplicates included.

        ``reorder`` reverses them, ``duplicate`` sends each twice, ``early`` attempts each one
        now, in the caller's thread, before returning (retries still go through the queue).
        """
        ordered = list(reversed(deliveries)) if reorder else list(deliveries)
        if duplicate:
            ordered = [item for delivery in ordered for item in (delivery, delivery.copy())]
        with self._cond:
            self._log.extend(ordered)
        if early:
            for delivery in ordered:
                self._attempt_now(delivery)
            return ordered
        wait = self._config().delivery_delay if delay is None else delay
        due = time.monotonic() + wait
        with self._cond:
            for delivery in ordered:
                if self._stopping:
                    delivery.state = "cancelled"
                    continue
                heapq.heappush(self._queue, (due, next(self._seq), delivery))
            self._cond.notify_all()
        return ordered

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is queued or in flight; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def deliveries(self) -> list[dict[str, Any]]:
        """The delivery log, oldest first."""
        with self._cond:
            return [delivery.to_dict() for delivery in self._log]

    def reset(self) -> None:
        """Drop queued deliveries and forget the log."""
        with self._cond:
            for _, _, delivery in self._queue:
                delivery.state = "cancelled"
            self._queue.clear()
            self._log.clear()
            self._cond.notify_all()

    # ---- worker ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                _, _, delivery = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _attempt_now(self, delivery: Delivery) -> None:
        with self._cond:
            self._in_flight += 1
        try:
            self._attempt(delivery)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _attempt(self, delivery: Delivery) -> None:
        config = self._config()
        attempt: dict[str, Any] = {"at": iso_time(self._clock()), "status": None, "error": None}
        if not config.allow_remote_webhooks and not _is_loopback(delivery.url):
            attempt["error"] = "refused: not a loopback URL (allow_remote_webhooks is off)"
            self._finish(delivery, attempt, "refused")
            return
        request = delivery.render()
        delivery.fields = request.fields
        started = time.monotonic()
        retryable = False
        try:
            assert self._client is not None, "dispatcher not started"
            response = self._client.request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content if request.method != "GET" else None,
                timeout=httpx.Timeout(config.webhook_timeout, connect=min(CONNECT_TIMEOUT, config.webhook_timeout)),
            )
            attempt["status"] = response.status_code
            retryable = response.status_code == 429 or response.status_code >= 500
            state = "delivered" if 200 <= response.status_code < 300 else "failed"
        except httpx.TimeoutException:
            attempt["error"] = "timeout"
            retryable, state = True, "failed"
        except httpx.HTTPError as exc:
            attempt["error"] = f"connection failed: {type(exc).__name__}"
            retryable, state = True, "failed"
        attempt["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        retries_done = len(delivery.attempts)  # attempts before this one
        if retryable and retries_done < len(config.retry_delays) and not self._stopping:
            self._finish(delivery, attempt, "retrying")
            with self._cond:
                due = time.monotonic() + config.retry_delays[retries_done]
                heapq.heappush(self._queue, (due, next(self._seq), delivery))
                self._cond.notify_all()
            return
        self._finish(delivery, attempt, state)

    def _finish(self, delivery: Delivery, attempt: dict[str, Any], state: str) -> None:
        with self._cond:
            delivery.attempts.append(attempt)
            delivery.state = state
        log.debug(
            "webhook attempt",
            extra={"kind": delivery.kind, "url": safe_url(delivery.url), "state": state, "status": attempt["status"]},
        )


def safe_url(url: str) -> str:
    """``url`` with secret-looking query values (a webhook token) replaced, for logs and the delivery log."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (name, "[redacted]" if any(word in name.lower() for word in _SECRET_QUERY_WORDS) else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
