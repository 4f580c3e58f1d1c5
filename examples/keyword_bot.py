"""A keyword bot: answers a few commands, and explains itself otherwise.

Deploy with ``INBOUND_HANDLER=examples.keyword_bot:handle``. Replies are sent once per
message through the shared send path, even when Vonage retries the webhook.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ANSWERS", "handle"]

ANSWERS = {
    "HOURS": "We are open Monday to Friday, 9:00-17:00.",
    "ADDRESS": "1 Example Street, London.",
    "PRICE": "Plans start at 5 EUR a month.",
}


def handle(message: dict[str, Any]) -> str | None:
    """Answer a known first word (case-insensitive); list the commands for anything else."""
    words = (message.get("text") or "").strip().split()
    if not words:
        return None
    answer = ANSWERS.get(words[0].upper().strip(".!?"))
    if answer is not None:
        return answer
    return "Send HOURS, ADDRESS or PRICE. Reply STOP to unsubscribe."
