"""What goes on the wire to Vonage for one recipient, per API and channel.

- SMS API (vonage-api.md 1.3): form fields built by ``VonageClient.send_sms`` from the
  arguments returned by :func:`sms_api_arguments`: ``from``, ``to`` (no ``+``), ``text``,
  ``type=unicode`` only when the text needs UCS-2, ``client-ref``, ``ttl`` in MILLISECONDS,
  ``callback`` (the per-message receipt URL, when ``STATUS_WEBHOOK_URL`` is set).
- Messages API (vonage-api.md 5.3, 5.4): the JSON body returned by :func:`messages_api_body`:
  ``channel`` (Viber is ``viber_service``), ``message_type``, ``to``/``from`` without ``+``,
  the content object, ``client_ref``, ``ttl`` in SECONDS (Viber inside ``viber_service``),
  ``webhook_url``; a WhatsApp template carries ``whatsapp.locale``. SMS leaves
  ``sms.encoding_type`` out: its default, ``auto``, picks UCS-2 exactly when needed.
"""

from __future__ import annotations

from typing import Any

from shared.messages.request import Recipient, SendRequest

__all__ = ["MESSAGES_CHANNEL", "messages_api_body", "sms_api_arguments"]

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


def messages_api_body(request: SendRequest, recipient: Recipient) -> dict[str, Any]:
    """The Messages API JSON body for one recipient."""
    if request.api != "messages":
        raise ValueError("messages_api_body needs a Messages API request")
    content = request.content
    body: dict[str, Any] = {
        "channel": MESSAGES_CHANNEL[request.channel],
        "message_type": content.kind,
        "to": recipient.wire,
        "from": request.sender,
    }
    if content.kind == "text":
        body["text"] = content.text
    elif content.kind == "template":
        assert content.template is not None
        body["template"] = {"name": content.template["name"], "parameters": list(content.template["parameters"])}
        body["whatsapp"] = {"locale": content.template["locale"]}
    else:
        assert content.media is not None
        body[content.kind] = dict(content.media)
    if request.client_ref is not None:
        body["client_ref"] = request.client_ref
    if request.ttl is not None:
        if request.channel == "viber":
            body["viber_service"] = {"ttl": request.ttl}
        else:
            body["ttl"] = request.ttl
    if request.callback_url:
        body["webhook_url"] = request.callback_url
    return body
