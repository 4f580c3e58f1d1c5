"""The smallest consumer: log every event (type, id, subject) with no phone number or text.

The local run (``./local.sh``) subscribes it on the embedded bus (``EVENTS_CONSUMERS``), so you
can watch events flow. Deployed on Google Cloud it is a CloudEvent function like any other::

    gcloud functions deploy log-event --gen2 --runtime python312 --source . \\
        --entry-point log_event --trigger-topic vonage-message-status
(with ``main.py`` re-exporting ``log_event``; see docs/events.md).
"""

from __future__ import annotations

from typing import Any

from shared.events import consumer
from shared.log import get_logger

__all__ = ["log_event"]

log = get_logger("examples.event_log")


@consumer()  # every type
def log_event(event: dict[str, Any]) -> None:
    log.info("event", extra={"event_type": event["type"], "event_id": event["id"], "subject_kind": event["type"].split(".")[2]})
