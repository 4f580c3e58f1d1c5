"""AWS Lambda entry point: every function in one Lambda, behind Amazon API Gateway.

Set the Lambda handler to ``lambda_handler.handler``. It runs the one-process app
(:func:`app.create_app`: ``/send``, ``/verify-start``, ``/verify-check``,
``/verify-cancel``, ``/inbound``, ``/status``, ``/healthz``, ``/readyz``) through
apig-wsgi, the WSGI adapter for API Gateway, and takes both proxy payloads:

- HTTP API, payload format 2.0 (``version: "2.0"``, ``rawPath``), the cheaper default;
- REST API, payload format 1.0 (``httpMethod``, ``path``).

The app is built once per cold start (at import, which Lambda runs in its init phase)
and reused by every request that instance serves. Two things differ from the other
runtimes and are adjusted here, before the app sees the request:

- an HTTP API on a named stage puts the stage in ``rawPath`` (``/prod/send``); it is
  removed so the app sees ``/send``, as it would on ``$default``;
- the caller's address: API Gateway knows it (``sourceIp``) but an ``X-Forwarded-For``
  header is whatever the caller sent, so ``sourceIp`` is appended as the last hop, the
  one ``shared.web.client_ip`` trusts (per-IP verify limits would be spoofable otherwise).

On Lambda the code directory is read-only, so when no state path is configured the
SQLite store lives under /tmp (per instance, lost on recycle: use Firestore in
production, see docs/deploying/lambda.md). ``GOOGLE_CREDENTIALS_JSON`` (a service-account key, e.g. from
AWS Secrets Manager) is written to a private file for the Firestore client.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, MutableMapping
from typing import Any

__all__ = ["build_handler", "handler", "normalise_event", "prepare_environment"]

LAMBDA_STATE_DIR = "/tmp/vonage-functions"

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def prepare_environment(environ: MutableMapping[str, str] | None = None, *, state_dir: str = LAMBDA_STATE_DIR) -> None:
    """Lambda-only defaults, set before any setting is read (never overrides a value).

    - ``STATE_SQLITE_PATH`` under /tmp: the default (``.data/``) is on the read-only code path.
    - ``GOOGLE_CREDENTIALS_JSON`` -> a 0600 file named by ``GOOGLE_APPLICATION_CREDENTIALS``,
      because Google's client libraries read a service-account key only from a file.
    """
    env = os.environ if environ is None else environ
    if not env.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    env.setdefault("STATE_SQLITE_PATH", f"{state_dir}/state.sqlite3")
    key_json = env.get("GOOGLE_CREDENTIALS_JSON")
    if key_json and not env.get("GOOGLE_APPLICATION_CREDENTIALS"):
        path = pathlib.Path(state_dir) / "google-credentials.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created private from the first byte: the key must never be world-readable, even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(key_json)
        env["GOOGLE_APPLICATION_CREDENTIALS"] = str(path)


def normalise_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the app expects it: no stage prefix in the path, the caller's IP pinned.

    Returns a new dict; the event Lambda passed in is left as it was.
    """
    event = dict(event)
    context = event.get("requestContext") or {}
    if event.get("version") == "2.0":
        stage = context.get("stage")
        raw_path = event.get("rawPath") or "/"
        prefix = f"/{stage}"
        if stage and stage != "$default" and (raw_path == prefix or raw_path.startswith(prefix + "/")):
            event["rawPath"] = raw_path[len(prefix) :] or "/"
        source_ip = (context.get("http") or {}).get("sourceIp")
    else:
        source_ip = (context.get("identity") or {}).get("sourceIp")
    if source_ip:
        _append_forwarded_for(event, source_ip)
    return event


def _append_forwarded_for(event: dict[str, Any], source_ip: str) -> None:
    headers = dict(event.get("headers") or {})
    name = next((k for k in headers if k.lower() == "x-forwarded-for"), "x-forwarded-for")
    hops = [hop.strip() for hop in str(headers.get(name) or "").split(",") if hop.strip()]
    if not hops or hops[-1] != source_ip:  # REST APIs already append it themselves
        hops.append(source_ip)
    headers[name] = ", ".join(hops)
    event["headers"] = headers
    if "multiValueHeaders" in event:  # apig-wsgi reads these instead when present
        multi = dict(event.get("multiValueHeaders") or {})
        multi_name = next((k for k in multi if k.lower() == "x-forwarded-for"), name)
        multi[multi_name] = [headers[name]]
        event["multiValueHeaders"] = multi


def build_handler(wsgi_app: Any = None) -> LambdaHandler:
    """A Lambda handler around ``wsgi_app`` (default: a new ``app.create_app()``)."""
    from apig_wsgi import make_lambda_handler

    if wsgi_app is None:
        from app import create_app

        wsgi_app = create_app()
    # binary_support: bodies that are not text/JSON go back base64-encoded, as API Gateway requires.
    adapter = make_lambda_handler(wsgi_app, binary_support=True)

    def lambda_entry(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return adapter(normalise_event(event), context)

    return lambda_entry


prepare_environment()
handler: LambdaHandler = build_handler()
