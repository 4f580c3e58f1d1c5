"""What goes on the wire to Vonage for one recipient, per API and channel.

- SMS API (vonage-api.md 1.3): form fields built by ``VonageClient.send_sms`` from the
  arguments returned by :func:`sms_api_arguments`: ``from``, ``to`` (no ``+``), ``text``,
  ``type=unicode`` only when the text needs UCS-2, ``client-ref``, ``ttl`` in MILLISECONDS,
  ``callback`` (the per-message receipt URL, when ``STATUS_WEBHOOK_URL`` is set).
- Messages API (vonage-api.md 5.3, 5.4): the JSON body returned by :func:`messages_api_body`:
  ``channel`` (Viber is ``viber_service``), ``message_type``, ``to``/``from`` without ``+``,
  the content object, ``client_ref``, ``ttl`` in SECONDS (Viber inside ``viber_service``),
  ``webhook_url``; a WhatsApp template carries ``whatsapp.locale``; an interactive object goes as
  ``custom``; a Viber video carries ``viber_service.duration``/``file_size``; ``failover`` holds
  the further items of a workflow, each a whole message object. SMS leaves
  ``sms.encoding_type`` out: its default, ``auto``, picks UCS-2 exactly when needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.messages.request import MessageItem, Recipient, SendRequest

__all__ = ["MESSAGES_CHANNEL", "message_object", "messages_api_body", "sms_api_arguments"]

# Our channel names -> the Messages API's.
MESSAGES_CHANNEL = {
    "sms": "sms",
    "mms": "mms",
    "whatsapp": "whatsapp",
    "messenger": "messenger",
    "viber": "viber_service",
    "rcs": "rcs",
}


def sms_api_arguments(request: SendRequest, recipient: Recipient) -> dict[str, Any]:
    """Keyword arguments of ``VonageClient.send_sms`` for one recipient."""
    if request.api != "sms" or request.channel != "sms" or request.content.text is None:
        raise ValueError("sms_api_arguments needs an SMS text request on the SMS API")
    assert request.analysis is not None
    arguments: dict[str, Any] = {
        "to": recipient.wire,
        "sender": request.sender,
        "text": request.content.text,
        # Never by default: UCS-2 halves the characters per part and doubles the bill.
        "unicode": request.analysis.is_unicode,
    }
    if request.client_ref is not None:
        arguments["client_ref"] = request.client_ref
    if request.ttl is not None:
        arguments["ttl_ms"] = request.ttl * 1000  # the SMS API counts milliseconds
    if request.callback_url:
        arguments["callback"] = request.callback_url
    return arguments


def messages_api_body(
    request: SendRequest, recipient: Recipient, items: Sequence[MessageItem] | None = None
) -> dict[str, Any]:
    """The Messages API JSON body for one recipient.

    ``items`` is the recipient's workflow (default: the request's first item and its failover).
    The first item is the body; each further one is a whole message object in ``failover``,
    with the same ``to``, ``client_ref`` and ``webhook_url`` so every status names the send.
    """
    if request.api != "messages":
        raise ValueError("messages_api_body needs a Messages API request")
    workflow = list(items) if items is not None else list(request.items)
    if not workflow:
        raise ValueError("a send needs at least one item")
    body = message_object(request, recipient, workflow[0])
    if len(workflow) > 1:
        body["failover"] = [message_object(request, recipient, item) for item in workflow[1:]]
    return body


def message_object(request: SendRequest, recipient: Recipient, item: MessageItem) -> dict[str, Any]:
    """One Messages API message object (the body, or one entry of ``failover``)."""
    content = item.content
    body: dict[str, Any] = {
        "channel": MESSAGES_CHANNEL[item.channel],
        "message_type": content.message_type,
        "to": recipient.wire,
        "from": item.sender,
    }
    if content.kind == "text":
        body["text"] = content.text
        if content.suggestions:
            body["suggestions"] = [dict(s) for s in content.suggestions]
    elif content.kind == "template":
        assert content.template is not None
        body["template"] = {"name": content.template["name"], "parameters": list(content.template["parameters"])}
        body["whatsapp"] = {"locale": content.template["locale"]}
    elif content.kind == "interactive":
        # The Messages API carries WhatsApp interactive messages as a custom object.
        body["custom"] = {"type": "interactive", "interactive": dict(content.obj or {})}
    elif content.media is not None:
        body[content.kind] = dict(content.media)
    else:
        body[content.kind] = dict(content.obj or {})
    if content.context is not None:
        body["context"] = dict(content.context)
    if request.client_ref is not None:
        body["client_ref"] = request.client_ref
    viber_service: dict[str, Any] = dict(content.options or {}) if item.channel == "viber" else {}
    if item.ttl is not None:
        if item.channel == "viber":
            viber_service["ttl"] = item.ttl
        else:
            body["ttl"] = item.ttl
    if viber_service:
        body["viber_service"] = viber_service
    if item.channel == "rcs" and content.options:
        body["rcs"] = dict(content.options)
    if request.callback_url:
        body["webhook_url"] = request.callback_url
    return body
