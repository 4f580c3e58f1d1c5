"""Baseline: the original Replit guide's approach - a Flask app with the official ``vonage`` SDK.

As in the guide, the SDK is imported and its client built when the module loads, from
``VONAGE_API_KEY`` / ``VONAGE_API_SECRET``; ``GET /`` shows a form and ``POST /send`` sends
one SMS with ``client.sms.send``. ``SDK_API_HOST`` / ``SDK_REST_HOST`` (``host:port``) point the
SDK at the local sandbox (the SDK always speaks https).

Served two ways so each comparison is like with like: ``app`` for gunicorn (against the
one-process app) and :func:`sdk_function` for functions-framework (against each function).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request
from vonage import Auth, HttpClientOptions, Vonage
from vonage_sms import SmsMessage

__all__ = ["app", "client", "sdk_function"]

FORM = (
    "<!doctype html><title>Send an SMS</title>"
    "<form method=post action=/send><input name=to placeholder=To>"
    "<input name=text placeholder=Message><button>Send</button></form>"
)

_options: dict[str, Any] = {}
if os.environ.get("SDK_API_HOST"):
    _options["api_host"] = os.environ["SDK_API_HOST"]
if os.environ.get("SDK_REST_HOST"):
    _options["rest_host"] = os.environ["SDK_REST_HOST"]
client = Vonage(
    Auth(api_key=os.environ.get("VONAGE_API_KEY", ""), api_secret=os.environ.get("VONAGE_API_SECRET", "")),
    HttpClientOptions(**_options),
)
app = Flask(__name__)


def _send(fields: Any) -> tuple[dict[str, Any], int]:
    response = client.sms.send(
        SmsMessage(
            to=str(fields.get("to", "")),
            from_=os.environ.get("VONAGE_BRAND_NUMBER", "ACME"),
            text=str(fields.get("text", "")),
        )
    )
    message = response.messages[0]
    return {"status": message.status, "message_id": message.message_id}, 200


@app.get("/")
def index() -> str:
    """The guide's form."""
    return FORM


@app.post("/send")
def send() -> tuple[dict[str, Any], int]:
    """Send the SMS the form describes."""
    return _send(request.get_json(silent=True) or request.form)


def sdk_function(req: Any) -> Any:
    """The same app as one functions-framework target: GET shows the form, POST sends."""
    if req.method == "POST":
        return _send(req.get_json(silent=True) or req.form)
    return FORM
