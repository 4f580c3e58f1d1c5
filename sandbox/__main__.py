"""Command line: ``python -m sandbox serve`` runs the sandbox; ``python -m sandbox inbox N`` reads an inbox.

    python -m sandbox serve --port 8025 --status-url http://127.0.0.1:8080/status
    python -m sandbox serve --tls --ca-file .state/sandbox-ca.pem
    python -m sandbox inbox 447700900001 --url http://127.0.0.1:8025

``serve`` reads ``SANDBOX_*`` variables (see ``SandboxConfig.from_env``; credentials fall
back to ``VONAGE_*``); command-line options override them. ``inbox`` finds the sandbox at
``--url``, else ``SANDBOX_URL``, else ``http://127.0.0.1:8025``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from sandbox.config import WEBHOOK_FORMATS, SandboxConfig
from sandbox.server import Sandbox

__all__ = ["DEFAULT_PORT", "main"]

DEFAULT_PORT = 8025


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "inbox":
        return _inbox(args)
    parser.print_help()
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local Vonage sandbox")
    commands = parser.add_subparsers(dest="command")

    serve = commands.add_parser("serve", help="run the sandbox until interrupted")
    serve.add_argument("--host", default=os.environ.get("SANDBOX_HOST", "127.0.0.1"), help="loopback address")
    serve.add_argument("--port", type=int, default=int(os.environ.get("SANDBOX_PORT", DEFAULT_PORT)))
    serve.add_argument("--tls", action="store_true", help="serve HTTPS with a certificate generated now")
    serve.add_argument("--ca-file", help="with --tls: write the CA certificate to trust here")
    serve.add_argument("--status-url", dest="status_webhook_url", help="status / delivery receipt webhook")
    serve.add_argument("--inbound-url", dest="inbound_webhook_url", help="inbound message webhook")
    serve.add_argument("--verify-url", dest="verify_callback_url", help="Verify v2 callback webhook")
    serve.add_argument("--webhook-format", choices=WEBHOOK_FORMATS, help="SMS API webhook format")
    serve.add_argument("--sms-signing", action="store_const", const=True, help="sign SMS API webhooks (sig)")
    serve.add_argument("--balance", help="account balance in EUR")
    serve.add_argument("--rate", dest="rate_limit", help="requests per second per API ('none' = unlimited)")
    serve.add_argument("--trial", action="store_const", const=True, help="trial account: allow-listed numbers only")
    serve.add_argument("--allow", dest="allow_list", help="comma-separated numbers a trial account may reach")
    serve.add_argument("--delivery-delay", dest="delivery_delay", help="seconds before each webhook")
    serve.add_argument("--faults", help="fault rules, e.g. '5xx;rate=0.1,duplicate;api=sms'")
    serve.add_argument("--seed", help="seed of the fault RNG")

    inbox = commands.add_parser("inbox", help="print what a number (or email address) received")
    inbox.add_argument("number")
    inbox.add_argument("--url", default=os.environ.get("SANDBOX_URL", f"http://127.0.0.1:{DEFAULT_PORT}"))
    inbox.add_argument("--ca-file", default=os.environ.get("SANDBOX_CA_FILE"), help="CA to trust for an https URL")
    inbox.add_argument("--json", action="store_true", help="print the raw JSON")
    inbox.add_argument("--limit", type=int, default=10, help="show at most this many messages")
    return parser


_OVERRIDES = (
    "status_webhook_url",
    "inbound_webhook_url",
    "verify_callback_url",
    "webhook_format",
    "sms_signing",
    "balance",
    "rate_limit",
    "trial",
    "allow_list",
    "delivery_delay",
    "faults",
    "seed",
)


def _serve(args: argparse.Namespace) -> int:
    from shared.log import configure_logging

    # JSON log lines to stderr; stdout carries only the human banner (a script can read the URL).
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr)
    try:
        config = SandboxConfig.from_env()
        changes = {name: getattr(args, name) for name in _OVERRIDES if getattr(args, name) is not None}
        config = config.updated(changes)
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    sandbox = Sandbox(config)
    try:
        url = sandbox.start(args.host, args.port, tls=args.tls, ca_file=args.ca_file)
    except ValueError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    print(f"Vonage sandbox on {url} (api_key {config.api_key})", flush=True)
    if sandbox.ca_file:
        print(f"Trust this CA for HTTPS: {args.ca_file or sandbox.ca_file}", flush=True)
    print(f"Read an inbox: python -m sandbox inbox <number> --url {url}", flush=True)
    try:
        done.wait()
    finally:
        sandbox.stop()
    return 0


def _inbox(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"to": args.number})
    url = f"{args.url.rstrip('/')}/_sandbox/inbox?{query}"
    context = ssl.create_default_context(cafile=args.ca_file) if url.startswith("https") else None
    # No proxies: the sandbox is on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=10) as response:
            body: dict[str, Any] = json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"sandbox: cannot read the inbox at {args.url}: {exc}", file=sys.stderr)
        return 1
    entries = body.get("messages", [])[: max(args.limit, 0)]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    if not entries:
        print(f"No messages for {args.number}.")
        return 0
    for entry in entries:
        print(f"{entry.get('received_at', '')}  {entry.get('channel', '')}  from {entry.get('from', '')}")
        print(f"    {entry.get('text', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
