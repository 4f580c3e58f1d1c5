"""The one-command local run: every function, the Vonage sandbox and the embedded store, wired.

``./local.sh`` (``python -m sandbox.local``) starts, in one process:

- the one-process app (``app.create_app()``: ``/send``, ``/verify-start``, ``/verify-check``,
  ``/verify-cancel``, ``/inbound``, ``/status``, ``/healthz``) on 127.0.0.1:8080 (``PORT``),
- the local Vonage sandbox on 127.0.0.1:8025 (``SANDBOX_PORT``), whose receipts, inbound
  messages and Verify callbacks go to the functions above, signed as Vonage signs them,
- the embedded SQLite store in ``.data/local.sqlite3``,
- the embedded event bus: every webhook outcome is published as a CloudEvent, the bot's reply is
  sent by the ``on_inbound`` consumer and each event is logged by ``examples.event_log``,

with generated credentials (an application key pair, key, secret, signature secret) and an
API token for local callers, created on the first run in ``.data/local-token`` (next to the
store) and reused after, so ``export TOKEN=$(cat .data/local-token)`` keeps working across
restarts. ``./local.sh demo`` walks the whole loop and exits; ``./local.sh reset`` says what it
removes, then wipes the local state (the SQLite stores: messages, inbound, opt-outs,
verifications), keeping the token.

With real credentials (``VONAGE_API_KEY`` and ``VONAGE_API_SECRET`` or an application) in the
environment, no sandbox is started: the functions talk to Vonage, and Vonage must be able to
reach your webhooks (a deployed URL or a tunnel; see docs/real-account.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LocalStack", "PortInUseError", "local_state_files", "main", "reset_local_state", "run_demo"]

DEFAULT_PORT = 8080
DEFAULT_SANDBOX_PORT = 8025
APPLICATION_ID = "00000000-0000-4000-8000-00000000c0de"
BRAND_NUMBER = "14155550100"  # the sandbox account's own number (US fictional range)
DEMO_PHONE = "+1 415 555 0123"  # a "customer" handset in the sandbox
# The banner's STOP example comes from another customer: opting out the number its first
# example sends to would make that example fail from then on (the opt-out is kept).
STOP_EXAMPLE_PHONE = "14155550124"
TOKEN_FILE = "local-token"  # in the store's directory (.data/ by default)
DEMO_PHONE_DIGITS = "14155550123"
DEMO_BOT = "examples.keyword_bot:handle"


def has_real_credentials(environ: Mapping[str, str]) -> bool:
    """True when the environment holds Vonage credentials of a real account."""
    if environ.get("LOCAL_SANDBOX", "").lower() in ("1", "true", "yes"):
        return False
    key_secret = bool(environ.get("VONAGE_API_KEY") and environ.get("VONAGE_API_SECRET"))
    application = bool(environ.get("VONAGE_APPLICATION_ID") and environ.get("VONAGE_PRIVATE_KEY"))
    return key_secret or application


class PortInUseError(OSError):
    """A port the local run needs is taken; says which setting chooses another."""

    def __init__(self, port: int, variable: str, option: str, cause: OSError) -> None:
        self.port, self.variable, self.option = port, variable, option
        suggestion = port + 1 if port else 0
        super().__init__(
            f"port {port} ({variable}) is already in use ({cause.strerror or cause}). Another ./local.sh "
            f"may be running: stop it, or choose a free port: {variable}={suggestion} ./local.sh "
            f"(or ./local.sh {option} {suggestion})"
        )


def _check_port_free(host: str, port: int, variable: str, option: str) -> None:
    if not port:
        return  # 0: the system picks a free one
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUseError(port, variable, option, exc) from exc


def persistent_token(path: str) -> str:
    """The local API token kept in ``path``: read when it exists, else created (mode 0600)."""
    try:
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
        if token:
            return token
    except FileNotFoundError:
        pass
    token = "local-" + secrets.token_urlsafe(18)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


@dataclass
class LocalStack:
    """The functions app, and (in sandbox mode) the sandbox, running in this process."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    sandbox_port: int = DEFAULT_SANDBOX_PORT
    state_path: str = ".data/local.sqlite3"
    inbound_handler: str | None = DEMO_BOT
    keep_token: bool = True  # False: a throwaway token (the demo)
    environ: MutableMapping[str, str] = field(default_factory=lambda: os.environ)
    api_token: str = ""
    url: str = ""
    sandbox: Any = None
    real: bool = False
    _server: Any = None
    _thread: threading.Thread | None = None

    def start(self) -> LocalStack:
        """Configure the environment, start the sandbox (unless real) and the functions."""
        from werkzeug.serving import make_server

        from shared import deps

        _PathOnlyLog = _path_only_log_handler()

        env = self.environ
        self.real = has_real_credentials(env)
        env.setdefault("STATE_BACKEND", "sqlite")
        env.setdefault("STATE_SQLITE_PATH", self.state_path)
        self.api_token = _first_token(env.get("API_TOKENS")) or (
            persistent_token(self.token_path) if self.keep_token else "local-" + secrets.token_urlsafe(18)
        )
        env.setdefault("API_TOKENS", self.api_token)
        if self.inbound_handler:
            env.setdefault("INBOUND_HANDLER", self.inbound_handler)
        # Events on the embedded bus, the bot's reply sent by the on_inbound consumer (as on Google
        # Cloud with Pub/Sub), and every event written to the log by a second consumer.
        env.setdefault("EVENTS_BACKEND", "embedded")
        env.setdefault("INBOUND_DISPATCH", "bus")
        env.setdefault("EVENTS_CONSUMERS", "examples.event_log:log_event")

        # werkzeug prints its own note and exits on a busy port: look first, and say which
        # setting moves it.
        _check_port_free(self.host, self.port, "PORT", "--port")
        if not self.real:
            _check_port_free("127.0.0.1", self.sandbox_port, "SANDBOX_PORT", "--sandbox-port")
        try:
            self._server = make_server(self.host, self.port, _lazy_app(), threaded=True, request_handler=_PathOnlyLog)
        except OSError as exc:
            raise PortInUseError(self.port, "PORT", "--port", exc) from exc
        self.port = self._server.server_port
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        self.url = f"http://{shown}:{self.port}"
        if not self.real:
            try:
                self._start_sandbox(env)
            except OSError as exc:
                self._server.server_close()
                self._server = None
                raise PortInUseError(self.sandbox_port, "SANDBOX_PORT", "--sandbox-port", exc) from exc
        deps.reset()  # settings are read again with the variables set above
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-functions", daemon=True)
        self._thread.start()
        return self

    def _start_sandbox(self, env: MutableMapping[str, str]) -> None:
        from sandbox import Sandbox, SandboxConfig

        private_pem = _generate_private_key()
        api_secret = secrets.token_urlsafe(12)
        signature_secret = secrets.token_urlsafe(24)
        config = SandboxConfig(
            api_key="localkey",
            api_secret=api_secret,
            signature_secret=signature_secret,
            signature_method="sha256",
            sms_signing=True,  # SMS webhooks arrive signed, so the functions check them as in production
            application_id=APPLICATION_ID,
            private_key=private_pem,
            status_webhook_url=f"{self.url}/status",
            inbound_webhook_url=f"{self.url}/inbound",
            verify_callback_url=f"{self.url}/status",
            verify_cancel_after=30.0,
            delivery_delay=0.2,
        )
        self.sandbox = Sandbox(config)
        sandbox_url = self.sandbox.start("127.0.0.1", self.sandbox_port)
        env.update(
            {
                "VONAGE_API_KEY": "localkey",
                "VONAGE_API_SECRET": api_secret,
                "VONAGE_APPLICATION_ID": APPLICATION_ID,
                "VONAGE_PRIVATE_KEY": private_pem,
                "VONAGE_SIGNATURE_SECRET": signature_secret,
                "VONAGE_SIGNATURE_METHOD": "sha256",
                "VONAGE_API_BASE_URL": sandbox_url,
                "VONAGE_REST_BASE_URL": sandbox_url,
            }
        )
        env.setdefault("VONAGE_BRAND_NUMBER", BRAND_NUMBER)
        # The dev phone page (/phone) texts the app's number and calls the app with the local token.
        self.sandbox.link_app(self.url, self.api_token, env["VONAGE_BRAND_NUMBER"])
        # /_sandbox/wait_idle covers the whole loop: the bot answers from the event bus, after the
        # inbound webhook has already been answered.
        self.sandbox.also_wait_for(_app_bus_idle)

    @property
    def token_path(self) -> str:
        """Where the API token is kept: next to the store (``.data/local-token`` by default)."""
        store = self.environ.get("STATE_SQLITE_PATH") or self.state_path
        return os.path.join(os.path.dirname(store) or ".", TOKEN_FILE)

    def stop(self) -> None:
        """Stop the functions server and the sandbox; release the store."""
        from shared import deps

        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None
        deps.reset()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def banner(self) -> str:
        """What a newcomer needs: URLs, the token, and commands to paste."""
        token = self.api_token
        lines = [
            "",
            f"  Functions   {self.url}  (send, verify-start, verify-check, verify-cancel, inbound, status, healthz)",
        ]
        if self.real:
            lines += [
                "  Vonage      REAL account (credentials found in the environment): messages cost money.",
                "              Vonage must reach your webhooks: expose this port with a tunnel or deploy,",
                f"              then set Inbound URL <public>/inbound and Status URL <public>/status.",
            ]
        else:
            sandbox = self.sandbox.url
            lines += [
                f"  Sandbox     {sandbox}  (local Vonage: nothing leaves this machine)",
                f"  Dev phone   {sandbox}/phone/{DEMO_PHONE_DIGITS}   (open in a browser: text the app, see replies, codes, faults)",
                f"  Inbox       {sandbox}/_sandbox/inbox?to={DEMO_PHONE_DIGITS}   (verify codes land here)",
            ]
        kept = f" (kept in {self.token_path})" if self.keep_token and self._token_is_kept() else ""
        lines += [
            f"  Store       SQLite at {self.environ.get('STATE_SQLITE_PATH')}   (./local.sh reset wipes it)",
            f"  Events      {self.environ.get('EVENTS_BACKEND')} bus; replies from on_inbound"
            f" (INBOUND_DISPATCH={self.environ.get('INBOUND_DISPATCH')}); see docs/events.md",
            f"  API token   {token}{kept}",
            "",
            "  Try (paste into a shell):",
            f"    export TOKEN={token}",
            f"    curl -s -X POST {self.url}/send -H \"Authorization: Bearer $TOKEN\" \\",
            "         -H 'Content-Type: application/json' -d '{\"to\": \"+1 415 555 0123\", \"text\": \"Hello from Vonage\"}'",
            f"    curl -s {self.url}/send/<id> -H \"Authorization: Bearer $TOKEN\"      # status, receipts",
            f"    curl -s -X POST {self.url}/verify-start -H \"Authorization: Bearer $TOKEN\" \\",
            "         -H 'Content-Type: application/json' -d '{\"number\": \"+14155550123\", \"brand\": \"Acme\"}'",
        ]
        if not self.real:
            lines += [
                f"    curl -s -X POST {self.sandbox.url}/_sandbox/inbound -H 'Content-Type: application/json' \\",
                f"         -d '{{\"from\": \"{STOP_EXAMPLE_PHONE}\", \"to\": \"{BRAND_NUMBER}\", \"text\": \"STOP\"}}'"
                "   # another customer texts you STOP",
            ]
        lines += [
            f"    curl -s '{self.url}/inbound?number={STOP_EXAMPLE_PHONE}' -H \"Authorization: Bearer $TOKEN\"   # conversation",
            "",
            "  ./local.sh demo walks the whole loop; ./local.sh reset wipes the local state. Ctrl-C stops everything.",
            "",
        ]
        return "\n".join(lines)


    def _token_is_kept(self) -> bool:
        return _first_token(self.environ.get("API_TOKENS")) == self.api_token and os.path.isfile(self.token_path)


# ---- reset -------------------------------------------------------------------------------


def local_state_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """The files that hold local state: the serve and demo SQLite stores with their journals."""
    env = os.environ if environ is None else environ
    stores = dict.fromkeys([env.get("STATE_SQLITE_PATH") or ".data/local.sqlite3", ".data/local.sqlite3", ".data/demo.sqlite3"])
    return [store + suffix for store in stores for suffix in ("", "-wal", "-shm")]


def reset_local_state(*, environ: Mapping[str, str] | None = None, say: Callable[[str], None] = print) -> list[str]:
    """Say what goes, then delete it; returns the files removed. The API token is kept."""
    existing = [path for path in local_state_files(environ) if os.path.exists(path)]
    if not existing:
        say("./local.sh reset: there is no local state to remove.")
        return []
    say("./local.sh reset removes the local state: every stored message, receipt, inbound message,")
    say("opt-out (STOP) and verification. Stop a running ./local.sh first. Removing:")
    for path in existing:
        say(f"  {path}")
    for path in existing:
        os.remove(path)
    say(f"Done. The API token ({TOKEN_FILE} next to the store) is kept.")
    return existing


# ---- the demo --------------------------------------------------------------------------


@dataclass
class Step:
    name: str
    ok: bool
    detail: str


def run_demo(stack: LocalStack, *, say: Callable[[str], None] = print, timeout: float = 15.0) -> list[Step]:
    """Walk the loop: send, receipt, inbound reply, STOP, refused send, START, verify. Sandbox only."""
    import httpx

    if stack.sandbox is None:
        raise RuntimeError("the demo runs against the local sandbox; unset the real VONAGE_* credentials")
    steps: list[Step] = []
    headers = {"Authorization": f"Bearer {stack.api_token}"}
    phone_wire = "14155550123"
    sandbox = stack.sandbox

    def step(name: str, ok: bool, detail: str) -> bool:
        steps.append(Step(name, ok, detail))
        say(f"  {'OK ' if ok else 'FAIL'}  {name:<28} {detail}")
        return ok

    with httpx.Client(base_url=stack.url, headers=headers, timeout=10.0) as http:
        say("\nDemo: the whole loop against the local Vonage sandbox\n")
        sent = http.post("/send", json={"to": DEMO_PHONE, "text": "Your order has shipped"})
        body = sent.json()
        message_id = body.get("id")
        if not step("1 send an SMS", sent.status_code == 202 and bool(message_id), f"HTTP {sent.status_code} id={message_id} status={body.get('status')}"):
            return steps

        record = _wait(lambda: http.get(f"/send/{message_id}").json(), lambda r: r.get("status") == "delivered", timeout)
        history = " -> ".join(entry["status"] for entry in record.get("history", []))
        step("2 delivery receipt", record.get("status") == "delivered", f"history: {history}")

        before = len(_inbound_list(http, phone_wire))
        sandbox.inject_inbound(phone_wire, BRAND_NUMBER, "hours")
        replies = _wait(lambda: _outbound_to(sandbox, phone_wire), lambda texts: len(texts) >= 2, timeout)
        stored = _inbound_list(http, phone_wire)
        step(
            "3 inbound + bot reply",
            len(stored) > before and len(replies) >= 2,
            f"stored {len(stored) - before} inbound; bot replied: {replies[-1][:50] if replies else None!r}",
        )

        sandbox.inject_inbound(phone_wire, BRAND_NUMBER, "STOP")
        confirmations = _wait(lambda: _outbound_to(sandbox, phone_wire), lambda texts: len(texts) >= 3, timeout)
        step("4 customer texts STOP", len(confirmations) >= 3, f"confirmation: {confirmations[-1][:50] if confirmations else None!r}")

        refused = http.post("/send", json={"to": DEMO_PHONE, "text": "Flash sale!"})
        refused_body = refused.json()
        outcome = refused_body.get("error", {}).get("code") or refused_body.get("status")
        step("5 send after STOP refused", outcome == "opted_out", f"HTTP {refused.status_code} {outcome}")

        sandbox.inject_inbound(phone_wire, BRAND_NUMBER, "START")
        _wait(lambda: _outbound_to(sandbox, phone_wire), lambda texts: len(texts) >= 4, timeout)
        allowed = http.post("/send", json={"to": DEMO_PHONE, "text": "Welcome back"})
        step("6 START, then send allowed", allowed.status_code == 202, f"HTTP {allowed.status_code} status={allowed.json().get('status')}")

        started = http.post("/verify-start", json={"number": DEMO_PHONE, "brand": "Acme", "channels": ["sms"]})
        request_id = started.json().get("request_id")
        if not step("7 verify start", started.status_code == 202 and bool(request_id), f"HTTP {started.status_code} request_id={request_id}"):
            return steps
        code = _wait(lambda: sandbox.last_code(phone_wire), lambda c: bool(c), timeout)
        step("8 code read from the inbox", bool(code), f"{len(code or '')} digits arrived in the sandbox inbox")
        checked = http.post("/verify-check", json={"request_id": request_id, "code": code})
        step("9 verify check", checked.status_code == 200 and checked.json().get("status") == "verified", f"HTTP {checked.status_code} {checked.json().get('status')}")
    ok = all(s.ok for s in steps)
    say(f"\n{'All steps passed.' if ok else 'Some steps FAILED.'}\n")
    return steps


def _wait(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = fetch()
    return value


def _inbound_list(http: Any, number: str) -> list[dict[str, Any]]:
    response = http.get("/inbound", params={"number": number})
    return response.json().get("messages", []) if response.status_code == 200 else []


def _outbound_to(sandbox: Any, number: str) -> list[str]:
    """Texts the sandbox accepted for ``number``, oldest first."""
    texts = []
    for message in sandbox.messages():
        if str(message.get("to") or "").lstrip("+") == number and message.get("text"):
            texts.append(message["text"])
    return texts


# ---- command line ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./local.sh", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=("serve", "demo", "reset"), default="serve")
    # Replit's preview pane reaches the app only on 0.0.0.0 (REPL_ID is set inside a Repl).
    default_host = os.environ.get("HOST") or ("0.0.0.0" if os.environ.get("REPL_ID") else "127.0.0.1")
    parser.add_argument("--host", default=default_host, help="functions bind address (0.0.0.0 on Replit)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", DEFAULT_SANDBOX_PORT)))
    args = parser.parse_args(argv)
    if args.mode == "reset":
        reset_local_state()
        return 0

    demo = args.mode == "demo"
    stack = LocalStack(
        host=args.host,
        port=0 if demo else args.port,
        sandbox_port=0 if demo else args.sandbox_port,
        state_path=".data/demo.sqlite3" if demo else ".data/local.sqlite3",
        keep_token=not demo,
    )
    if demo:
        _fresh(stack.state_path)
        os.environ["LOCAL_SANDBOX"] = "1"  # the demo never spends real money
        os.environ.setdefault("LOG_LEVEL", "WARNING")  # the steps are the output
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        logging.getLogger("sandbox").setLevel(logging.WARNING)
    try:
        stack.start()
    except PortInUseError as exc:
        print(f"./local.sh: cannot start: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"./local.sh: cannot start: {exc}", file=sys.stderr)
        return 2
    try:
        if demo:
            steps = run_demo(stack)
            return 0 if steps and all(s.ok for s in steps) and len(steps) == 9 else 1
        print(stack.banner(), flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("\nstopping")
    finally:
        stack.stop()
    return 0


def _path_only_log_handler() -> Any:
    from werkzeug.serving import WSGIRequestHandler

    class PathOnlyLog(WSGIRequestHandler):
        """Access lines without the query string: SMS GET webhooks carry the text, the number
        and possibly ?token= there."""

        def log_request(self, code: Any = "-", size: Any = "-") -> None:
            path = self.path.split("?", 1)[0]
            logging.getLogger("local.access").info("request", extra={"method": self.command, "path": path, "status": str(code)})

    return PathOnlyLog


def _app_bus_idle(timeout: float) -> bool:
    """True once the app's embedded event bus has nothing queued or running (the bot has replied)."""
    from shared import deps

    if not deps.get_bus.cache_info().currsize:  # never opened: nothing was published yet
        return True
    drain = getattr(deps.get_bus(), "drain", None)  # Pub/Sub (a real project) has no local queue
    return drain(timeout) if drain is not None else True


def _lazy_app() -> Any:
    # Built on the first request, after the environment above is in place.
    holder: dict[str, Any] = {}
    lock = threading.Lock()

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        if "app" not in holder:
            with lock:
                if "app" not in holder:
                    from app import create_app

                    holder["app"] = create_app(queue_worker=True)
        return holder["app"](environ, start_response)

    return wsgi


def _fresh(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass


def _first_token(value: str | None) -> str | None:
    if not value:
        return None
    tokens = [part.strip() for part in value.split(",") if part.strip()]
    return tokens[0] if tokens else None


def _generate_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


if __name__ == "__main__":
    sys.exit(main())
