"""An echo bot: replies with what it was sent.

Deploy with ``INBOUND_HANDLER=examples.echo_bot:handle``. The handler receives every complete
inbound message (a long SMS once, after reassembly) as a dict with ``id``, ``channel``,
``from``, ``to``, ``message_type``, ``text``, ``media``, ``details``, ``timestamp`` and
``received_at``, and returns the reply text, ``{"text": ...}``, or None for no reply.
STOP/START/HELP never reach it: they are answered by the opt-out handling.
"""

from __future__ import annotations

from typing import Any

__all__ = ["handle"]

MAX_ECHO = 300  # keep replies to two SMS parts at most


def handle(message: dict[str, Any]) -> str | None:
    """Echo the text back; describe media; ignore messages with nothing to echo."""
    text = (message.get("text") or "").strip()
    if text:
        return f"You said: {text[:MAX_ECHO]}"
    media = message.get("media") or []
    if media:
        return f"Thanks for the {media[0].get('type', 'attachment')}."
    return None
