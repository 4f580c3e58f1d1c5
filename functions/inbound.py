"""inbound: Vonage's inbound-message webhook (SMS API and Messages API), and the message list.

``POST``/``GET`` from Vonage: authenticated (SMS ``sig``, Messages JWT or ``?token=``), stored
once, long SMS reassembled, STOP/START/HELP honoured, handed on to ``INBOUND_HANDLER``.
``GET`` with ``Authorization: Bearer <API token>``: stored inbound messages, newest first
(``?number=`` for one conversation, ``?limit=`` up to 200, ``?raw=true`` to include payloads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.deps import get_settings, get_store
from shared.errors import UnauthorizedError
from shared.web import authorize_caller, bearer_token, endpoint, json_response, require_method

if TYPE_CHECKING:
    import flask

__all__ = ["inbound"]


@endpoint("inbound")
def inbound(request: flask.Request) -> flask.Response:
    """200 ``{result: stored|part_stored|duplicate, id}`` once stored; or the list for API callers."""
    # Imported here: the one-process app (app.py) imports every function module, and send need not load webhook code.
    from shared.webhooks.inbound import list_inbound, listing_options, receive_inbound
    from shared.webhooks.receive import read_webhook

    settings = get_settings()
    require_method(request, "GET", "POST")
    if request.method == "GET" and bearer_token(request) is not None:
        authorize_caller(request, settings, "inbound")
        messages = list_inbound(get_store(), **listing_options(request.args))
        return json_response({"messages": messages, "count": len(messages)})
    if request.method == "GET" and set(request.args) <= _LISTING_PARAMETERS:
        # No webhook field at all (a Vonage GET webhook carries msisdn, messageId, ... or
        # ?token=): someone asking for the list without the API token, not a bad signature.
        raise UnauthorizedError(
            "GET /inbound lists the stored messages: send the API token as Authorization: Bearer <token> "
            "(one of API_TOKENS; ./local.sh keeps its token in .data/local-token)"
        )
    webhook = read_webhook(request, settings)
    return json_response(receive_inbound(webhook.fields, settings=settings, store=get_store()))


# The query parameters of the message list (shared.webhooks.inbound.listing_options).
_LISTING_PARAMETERS = frozenset({"number", "limit", "raw"})
