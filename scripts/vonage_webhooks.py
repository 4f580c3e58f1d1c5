#!/usr/bin/env python3
"""Point Vonage's webhooks at the deployed functions (used by deploy.sh).

Two commands:

``application``
    Sets the Messages capability's ``inbound_url`` and ``status_url`` and the Verify
    capability's ``status_url`` of one Vonage application through the Applications
    API v2: ``GET /v2/applications/{id}``, then ``PUT`` of the same application with
    only those webhooks changed. A PUT replaces the whole application, so everything
    else it holds (name, other capabilities, public key, privacy) is sent back as read.
    https://developer.vonage.com/en/api/application.v2

``sms``
    Sets the account-wide SMS API webhooks (inbound ``moCallbackUrl``, delivery
    receipts ``drCallbackUrl``) through the Account API: ``POST /account/settings``.
    https://developer.vonage.com/en/api/account

Both authenticate with HTTP Basic ``VONAGE_API_KEY:VONAGE_API_SECRET`` read from the
environment (never from the command line, where ``ps`` would show them).
``VONAGE_API_BASE_URL`` / ``VONAGE_REST_BASE_URL`` override the hosts (tests).
``--dry-run`` prints the requests as curl commands with the secret masked and sends
nothing. Only the standard library is used, so any ``python3`` runs it.
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["apply_application_webhooks", "main", "mask_url", "set_application_webhooks", "set_sms_webhooks"]

DEFAULT_API_BASE_URL = "https://api.nexmo.com"
DEFAULT_REST_BASE_URL = "https://rest.nexmo.com"
TIMEOUT_SECONDS = 20.0
MASK = "****"
_TOKEN_RE = re.compile(r"([?&](?:token|sig|api_secret)=)[^&#]*", re.IGNORECASE)


class WebhookSetupError(Exception):
    """A request to Vonage failed; the message is safe to print (no secrets)."""


def mask_url(url: str) -> str:
    """The URL with any token in its query string replaced by ****."""
    return _TOKEN_RE.sub(lambda m: m.group(1) + MASK, url)


def apply_application_webhooks(
    application: Mapping[str, Any],
    *,
    inbound_url: str,
    status_url: str,
    verify_status_url: str | None = None,
) -> dict[str, Any]:
    """The PUT body: ``application`` as read, with only our webhooks set.

    Keeps every other capability and setting, since PUT replaces the application.
    Drops the Verify capability's ``version``, which Vonage refuses on update.
    """
    capabilities = copy.deepcopy(dict(application.get("capabilities") or {}))
    messages = capabilities.setdefault("messages", {})
    webhooks = messages.setdefault("webhooks", {})
    webhooks["inbound_url"] = {"address": inbound_url, "http_method": "POST"}
    webhooks["status_url"] = {"address": status_url, "http_method": "POST"}
    # The functions read the v1 webhook format; keep an explicit choice if there is one.
    messages.setdefault("version", "v1")
    if verify_status_url:
        verify = capabilities.setdefault("verify", {})
        verify.pop("version", None)
        verify.setdefault("webhooks", {})["status_url"] = {"address": verify_status_url, "http_method": "POST"}

    body: dict[str, Any] = {"name": application.get("name") or "vonage-functions", "capabilities": capabilities}
    public_key = (application.get("keys") or {}).get("public_key")
    if public_key:
        body["keys"] = {"public_key": public_key}
    if application.get("privacy") is not None:
        body["privacy"] = application["privacy"]
    return body


class _Client:
    """Basic-auth JSON/form requests to Vonage, or their curl equivalents in a dry run."""

    def __init__(self, key: str, secret: str, *, dry_run: bool, out: Any) -> None:
        self.key = key
        self.secret = secret
        self.dry_run = dry_run
        self.out = out

    def request(self, method: str, url: str, *, json_body: Any = None, form: Mapping[str, str] | None = None) -> Any:
        data: bytes | None = None
        headers = {"Accept": "application/json", "User-Agent": "vonage-functions-deploy"}
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.dry_run:
            self._print_curl(method, url, headers, data)
            return None
        token = base64.b64encode(f"{self.key}:{self.secret}".encode()).decode()
        request = urllib.request.Request(url, data=data, method=method, headers={**headers, "Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise WebhookSetupError(f"{method} {url} answered {exc.code}: {_problem(exc.read())}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WebhookSetupError(f"{method} {url} failed: {reason}") from None
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise WebhookSetupError(f"{method} {url} answered something that is not JSON") from None

    def _print_curl(self, method: str, url: str, headers: Mapping[str, str], data: bytes | None) -> None:
        parts = ["curl", "-sS", "-X", method, "-u", f"{self.key}:{MASK}"]
        for name in ("Content-Type", "Accept"):
            if name in headers:
                parts += ["-H", f"{name}: {headers[name]}"]
        if data is not None:
            parts += ["--data", _mask_body(data.decode())]
        parts.append(url)
        print("+ " + " ".join(_shell_quote(p) for p in parts), file=self.out)


def set_application_webhooks(
    application_id: str,
    *,
    key: str,
    secret: str,
    inbound_url: str,
    status_url: str,
    verify_status_url: str | None = None,
    api_base_url: str = DEFAULT_API_BASE_URL,
    dry_run: bool = False,
    out: Any = None,
) -> dict[str, Any] | None:
    """GET the application, PUT it back with our webhooks; returns Vonage's answer (None in a dry run)."""
    out = out or sys.stdout
    client = _Client(key, secret, dry_run=dry_run, out=out)
    url = f"{api_base_url.rstrip('/')}/v2/applications/{urllib.parse.quote(application_id, safe='')}"
    current = client.request("GET", url)
    if dry_run:
        current = {"name": "<the application's current name>", "capabilities": {"<the other capabilities>": "as read"}}
    if not isinstance(current, dict):
        raise WebhookSetupError(f"GET {url} did not return an application")
    body = apply_application_webhooks(
        current, inbound_url=inbound_url, status_url=status_url, verify_status_url=verify_status_url
    )
    updated = client.request("PUT", url, json_body=body)
    if dry_run:
        return None
    caps = (updated or {}).get("capabilities", {}) if isinstance(updated, dict) else {}
    hooks = caps.get("messages", {}).get("webhooks", {})
    print(
        f"application {application_id}: messages inbound_url {mask_url(hooks.get('inbound_url', {}).get('address', '?'))}, "
        f"status_url {mask_url(hooks.get('status_url', {}).get('address', '?'))}",
        file=out,
    )
    if verify_status_url:
        verify_hook = caps.get("verify", {}).get("webhooks", {}).get("status_url", {}).get("address", "?")
        print(f"application {application_id}: verify status_url {mask_url(verify_hook)}", file=out)
    return updated if isinstance(updated, dict) else None


def set_sms_webhooks(
    *,
    key: str,
    secret: str,
    inbound_url: str,
    status_url: str,
    rest_base_url: str = DEFAULT_REST_BASE_URL,
    dry_run: bool = False,
    out: Any = None,
) -> dict[str, Any] | None:
    """POST /account/settings with moCallbackUrl and drCallbackUrl; returns Vonage's answer."""
    out = out or sys.stdout
    client = _Client(key, secret, dry_run=dry_run, out=out)
    url = f"{rest_base_url.rstrip('/')}/account/settings"
    answer = client.request("POST", url, form={"moCallbackUrl": inbound_url, "drCallbackUrl": status_url})
    if dry_run:
        return None
    answer = answer if isinstance(answer, dict) else {}
    print(
        f"SMS API: inbound {mask_url(str(answer.get('mo-callback-url', '?')))}, "
        f"delivery receipts {mask_url(str(answer.get('dr-callback-url', '?')))}",
        file=out,
    )
    return answer


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Command line entry; returns the exit status (0 done, 1 Vonage refused, 2 bad usage)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    app = sub.add_parser("application", help="set a Vonage application's Messages and Verify webhooks")
    app.add_argument("--application-id", default=env.get("VONAGE_APPLICATION_ID"))
    app.add_argument("--inbound-url", required=True)
    app.add_argument("--status-url", required=True)
    app.add_argument("--verify-status-url")
    app.add_argument("--dry-run", action="store_true")
    sms = sub.add_parser("sms", help="set the account-wide SMS API webhooks")
    sms.add_argument("--inbound-url", required=True)
    sms.add_argument("--status-url", required=True)
    sms.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)

    key = env.get("VONAGE_API_KEY", "")
    secret = env.get("VONAGE_API_SECRET", "")
    if not args.dry_run and not (key and secret):
        print("vonage_webhooks.py: VONAGE_API_KEY and VONAGE_API_SECRET must be set in the environment", file=sys.stderr)
        return 2
    for url in (args.inbound_url, args.status_url, getattr(args, "verify_status_url", None)):
        if url is not None and not url.startswith("https://"):
            # Every deployed function is https; anything else here is a typo that loses events.
            print(f"vonage_webhooks.py: webhook URLs must start with https:// ({mask_url(url)})", file=sys.stderr)
            return 2
    try:
        if args.command == "application":
            if not args.application_id:
                print("vonage_webhooks.py: --application-id (or VONAGE_APPLICATION_ID) is required", file=sys.stderr)
                return 2
            set_application_webhooks(
                args.application_id,
                key=key or "$VONAGE_API_KEY",
                secret=secret,
                inbound_url=args.inbound_url,
                status_url=args.status_url,
                verify_status_url=args.verify_status_url,
                api_base_url=env.get("VONAGE_API_BASE_URL") or DEFAULT_API_BASE_URL,
                dry_run=args.dry_run,
            )
        else:
            set_sms_webhooks(
                key=key or "$VONAGE_API_KEY",
                secret=secret,
                inbound_url=args.inbound_url,
                status_url=args.status_url,
                rest_base_url=env.get("VONAGE_REST_BASE_URL") or DEFAULT_REST_BASE_URL,
                dry_run=args.dry_run,
            )
    except WebhookSetupError as exc:
        print(f"vonage_webhooks.py: {mask_url(str(exc))}", file=sys.stderr)
        return 1
    return 0


def _problem(raw: bytes) -> str:
    """Vonage's error in a few words (problem JSON title/detail), never the raw body."""
    try:
        data = json.loads(raw)
    except ValueError:
        return "(no JSON error body)"
    if not isinstance(data, dict):
        return "(unexpected error body)"
    parts = [str(data[k]) for k in ("title", "detail", "error_title", "error-code-label") if data.get(k)]
    for item in data.get("invalid_parameters") or []:
        if isinstance(item, dict):
            parts.append(f"{item.get('name')}: {item.get('reason')}")
    return "; ".join(parts) or "(no error detail)"


# Inside a body a URL ends at its closing quote: mask only the token's value, not the rest
# of the body (the whole-URL pattern above ran to the end and cut the printed body off).
_BODY_TOKEN_RE = re.compile(r"([?&](?:token|sig|api_secret)=)[^&#\"'\s\\]*", re.IGNORECASE)


def _mask_body(text: str) -> str:
    text = _BODY_TOKEN_RE.sub(lambda m: m.group(1) + MASK, text)
    # token=... inside a JSON or form-encoded URL value
    return re.sub(r"((?:%3F|%26|\?|&)token(?:%3D|=))[^&\"%]*", lambda m: m.group(1) + MASK, text, flags=re.IGNORECASE)


def _shell_quote(arg: str) -> str:
    if re.fullmatch(r"[-A-Za-z0-9_@%+=:,./]+", arg):
        return arg
    return "'" + arg.replace("'", "'\\''") + "'"


if __name__ == "__main__":
    sys.exit(main())
