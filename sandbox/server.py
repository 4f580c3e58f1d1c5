"""``Sandbox``: start and stop the local Vonage sandbox, and look inside it from Python.

    sandbox = Sandbox(SandboxConfig(status_webhook_url=receiver.url))
    base_url = sandbox.start()          # http://127.0.0.1:<free port>
    ...                                 # point the code under test at base_url
    sandbox.wait_idle()                 # every queued webhook delivered (or given up)
    sandbox.stop()

A threaded werkzeug server bound to a loopback address only. ``stop()`` leaves no thread
behind: it releases held responses, closes idle keep-alive connections so their handler
threads end, joins them, then stops the webhook worker and the Verify timer.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from sandbox.app import SandboxApp
from sandbox.config import SandboxConfig
from sandbox.context import SandboxContext
from sandbox.control import tick
from sandbox.faults import FaultRule, parse_fault_rules
from sandbox.inbound import inject_inbound
from sandbox.tls import TLSMaterial, create_tls_material

__all__ = ["Sandbox"]

_QUERY = re.compile(r"\?[^\s'\"]*")
TICK_INTERVAL = 0.25  # seconds between Verify timer checks (expiry, next channel)
log = logging.getLogger("sandbox")


class Sandbox:
    """A running (or ready to run) local Vonage sandbox."""

    def __init__(self, config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.ctx = SandboxContext(config or SandboxConfig(), clock=clock)
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._tls: TLSMaterial | None = None
        self._url: str | None = None

    # ---- lifecycle ------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, *, tls: bool = False, ca_file: str | None = None) -> str:
        """Serve on ``host:port`` (0 = a free port) and return the base URL.

        ``tls`` serves HTTPS with a certificate generated now; ``ca_file`` (the CA to trust)
        tells where it is. ``host`` must be a loopback address: the sandbox never listens
        on a network. OSError when the port cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        if not _is_loopback(host):
            raise ValueError(f"the sandbox only listens on loopback addresses, not {host!r}")
        ssl_context = None
        if tls:
            self._tls = create_tls_material(ca_file=ca_file)
            ssl_context = self._tls.server_context()
        self.ctx.stopping.clear()
        self.ctx.dispatcher.start()
        try:
            self._server = _Server(host, port, SandboxApp(self.ctx), handler=_QuietHandler, ssl_context=ssl_context)
        except SystemExit as exc:  # werkzeug exits when it cannot bind; a library should raise
            self.ctx.dispatcher.stop()
            self._remove_tls()
            raise OSError(f"cannot listen on {host}:{port} (in use?)") from exc
        except BaseException:
            self.ctx.dispatcher.stop()
            self._remove_tls()
            raise
        scheme = "https" if tls else "http"
        shown = f"[{host}]" if ":" in host else host
        self._url = f"{scheme}://{shown}:{self._server.server_port}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="sandbox-http"),
            threading.Thread(target=self._tick_loop, name="sandbox-verify-timer"),
        ]
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        log.info("sandbox listening", extra={"url": self._url})
        return self._url

    def stop(self) -> None:
        """Stop serving and delivering; safe to call twice. No thread is left running."""
        server = self._server
        if server is None:
            return
        self.ctx.stopping.set()  # held responses and delays return now
        server.shutdown()  # the accept loop ends
        server.close_connections()  # idle keep-alive connections end, so their threads can
        server.server_close()  # joins every request thread
        for thread in self._threads:
            thread.join(5.0)
        self._threads = []
        self.ctx.dispatcher.stop()
        self._server = None
        self._url = None
        self._remove_tls()

    def __enter__(self) -> Sandbox:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- where it is ----------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:53127`` (RuntimeError before start)."""
        if self._url is None:
            raise RuntimeError("the sandbox is not running")
        return self._url

    @property
    def host(self) -> str:
        """``host:port``, the form the Vonage SDK's ``api_host`` / ``rest_host`` options take."""
        return self.url.split("://", 1)[1]

    @property
    def ca_file(self) -> str | None:
        """PEM file of the CA to trust when serving HTTPS, else None."""
        return self._tls.ca_file if self._tls else None

    @property
    def is_running(self) -> bool:
        """True between start() and stop()."""
        return self._server is not None

    # ---- configuration --------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        """The current configuration."""
        return self.ctx.config

    def configure(self, **changes: Any) -> SandboxConfig:
        """Change settings at run time (e.g. ``trial=True, allow_list=["447700900001"]``)."""
        return self.ctx.update_config(changes)

    def set_faults(self, *rules: FaultRule | Mapping[str, Any] | str, seed: int | None = None) -> None:
        """Replace the fault rules (and the seed); ``set_faults()`` clears them."""
        changes: dict[str, Any] = {"faults": parse_fault_rules(list(rules))}
        if seed is not None:
            changes["seed"] = seed
        self.ctx.update_config(changes)

    def reset(self) -> None:
        """Forget messages, requests, inbox, verifications and deliveries; restore the balance."""
        self.ctx.reset()

    def link_app(self, url: str, token: str = "", number: str = "") -> None:
        """Let the dev phone page (``/phone``) act as the app at ``url`` with API ``token``.

        ``number`` is the app's own Vonage number, where the page's texts go (sandbox.devphone).
        """
        self.ctx.devphone.link_app(url, token, number)

    # ---- inspection -----------------------------------------------------

    def messages(self, *, api: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages, oldest first, each with the exact request fields received."""
        records = self.ctx.state.messages()
        return [record for record in records if api is None or record["api"] == api]

    def requests(self, *, api: str | None = None) -> list[dict[str, Any]]:
        """Every API request, oldest first: fields, auth, HTTP status, Vonage outcome, faults."""
        records = self.ctx.state.requests()
        return [record for record in records if api is None or record["api"] == api]

    def deliveries(self, *, kind: str | None = None) -> list[dict[str, Any]]:
        """The webhook delivery log: URL, fields sent, attempts with the status answered, state."""
        records = self.ctx.dispatcher.deliveries()
        return [record for record in records if kind is None or record["kind"] == kind]

    def inbox(self, number: str) -> list[dict[str, Any]]:
        """What ``number`` (or an email address) received, latest first."""
        tick(self.ctx)
        return self.ctx.state.inbox(number)

    def last_code(self, number: str) -> str | None:
        """The latest Verify code sent to ``number``, or None."""
        for entry in self.inbox(number):
            if entry.get("kind") == "verify":
                return str(entry["code"])
        return None

    @property
    def balance(self) -> str:
        """The account balance now, e.g. ``"9.96670000"``."""
        from sandbox.state import money

        return money(self.ctx.state.balance)

    # ---- actions --------------------------------------------------------

    def inject_inbound(
        self,
        from_: str,
        to: str,
        text: str,
        *,
        channel: str = "sms",
        api: str = "sms",
        format: str | None = None,  # noqa: A002 - the wire option's own name
        parts: int | None = None,
        shuffle: bool = False,
        duplicate: bool = False,
        url: str | None = None,
    ) -> dict[str, Any]:
        """Send an inbound message to the inbound webhook; returns the ids sent (see sandbox.inbound)."""
        spec: dict[str, Any] = {
            "from": from_,
            "to": to,
            "text": text,
            "channel": channel,
            "api": api,
            "format": format,
            "parts": parts,
            "shuffle": shuffle,
            "duplicate": duplicate,
            "url": url,
        }
        return inject_inbound(self.ctx, spec, self.ctx.faults.draw("inbound"))

    def answer(self, message_uuid: str, choice: str, *, url: str | None = None) -> dict[str, Any]:
        """Make the phone answer an interactive message (a button, a list row, an RCS suggestion)."""
        spec = {"answer": {"message_uuid": message_uuid, "choice": choice}, "url": url}
        return inject_inbound(self.ctx, spec, self.ctx.faults.draw("inbound"))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every queued webhook was delivered or given up, and every part of the loop
        added with ``also_wait_for`` is idle too; False on timeout."""
        return self.ctx.wait_idle(timeout)

    def also_wait_for(self, waiter: Callable[[float], bool]) -> None:
        """Make ``wait_idle`` also wait for ``waiter(timeout) -> idle`` (the app's own queue of work)."""
        self.ctx.idle_waiters.append(waiter)

    def tick(self) -> int:
        """Advance Verify timers now (useful with a fake clock); returns the number of effects."""
        return tick(self.ctx)

    # ---- internals ------------------------------------------------------

    def _tick_loop(self) -> None:
        while not self.ctx.stopping.wait(TICK_INTERVAL):
            try:
                tick(self.ctx)
            except Exception:  # keep the timer alive; the next tick tries again
                log.exception("verify timer failed")

    def _remove_tls(self) -> None:
        if self._tls is not None:
            self._tls.remove()
            self._tls = None


class _QuietHandler(WSGIRequestHandler):
    """Request handler that logs method and path only: a query string may carry ``api_secret``."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("http", extra={"method": self.command, "path": self.path.split("?", 1)[0], "status": str(code)})

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        log.debug("http error", extra={"detail": _without_query(format % args if args else format)})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        log.debug("http message", extra={"detail": _without_query(format % args if args else format)})


class _Server(ThreadedWSGIServer):
    """Threaded WSGI server whose stop() can end every connection and join every thread."""

    daemon_threads = False  # so server_close() joins request threads
    block_on_close = True

    def __init__(self, host: str, port: int, app: Any, *, handler: type[WSGIRequestHandler], ssl_context: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(host, port, app, handler=handler, ssl_context=ssl_context)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        # werkzeug's serve_forever closes the server (joining threads) when the loop ends;
        # stop() wants to close idle connections first, so use the plain loop.
        socketserver.BaseServer.serve_forever(self, poll_interval)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open client connection (a keep-alive read then sees EOF)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-answer (timeout fault) is normal here: no traceback on stderr.
        log.debug("connection error", exc_info=True)


def _without_query(text: str) -> str:
    """Drop query strings from a message (a bad request line may quote one with a secret)."""
    return _QUERY.sub("?[query hidden]", text)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
