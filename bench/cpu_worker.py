"""Child process of the CPU benchmark: send N messages one way and report CPU per message.

Reads ``{"impl", "api", "count", "warmup", "numbers"}`` as JSON on stdin; the environment points
at the TLS sandbox (``SSL_CERT_FILE`` for httpx, ``REQUESTS_CA_BUNDLE`` for the SDK's requests).
``impl`` is one of:

- ``sdk``: the official ``vonage`` SDK, ``client.sms.send`` / ``client.messages.send``.
- ``client``: our ``VonageClient.send_sms`` / ``send_message`` alone.
- ``path``: our whole send path, ``send_messages`` (validation, encoding analysis, suppression
  check, message record, pacing, the client, the record completed) on the SQLite store.

``warmup`` sends come first (imports, the TLS handshake, the first JWT); then ``count`` sends are
timed with ``time.process_time()`` (this process's CPU, every thread), and the TCP connections
opened meanwhile are counted (both httpx and the SDK's requests connect through
``socket.socket.connect``): 0 means every message reused a kept-alive connection. Our log lines
go to a file, as they would go to Cloud Logging's collector. Prints one JSON line.

With ``"profile": true`` the timed sends run under ``cProfile`` instead (its overhead makes their
CPU time useless as a measurement) and the report says where the CPU went: the share of the
profiled CPU time (not wall time) spent in the code of each layer (:data:`LAYERS`, by file path).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["LAYERS", "main"]

# Where a function's own time is charged, by the first fragment found in "file:function" (C functions
# have no file: "_ssl._SSLSocket" names the TLS layer). Our code first, then the libraries.
LAYERS: tuple[tuple[str, str], ...] = (
    ("/shared/vonage/", "our Vonage client and auth"),
    ("/shared/store/", "our store layer"),
    ("/shared/messages/", "our send path (validation, encoding, records)"),
    ("/shared/", "our other shared code (config, phone, log)"),
    ("/phonenumbers/", "phonenumbers"),
    ("/httpx/", "httpx"),
    ("/httpcore/", "httpcore + h11"),
    ("/h11/", "httpcore + h11"),
    ("/site-packages/vonage", "the vonage SDK (+ pydantic models)"),
    ("/site-packages/pydantic", "the vonage SDK (+ pydantic models)"),
    ("/requests/", "requests + urllib3"),
    ("/urllib3/", "requests + urllib3"),
    ("sqlite3", "sqlite3"),
    ("ssl", "ssl + socket (TLS, I/O)"),
    ("socket", "ssl + socket (TLS, I/O)"),
    ("/json/", "json"),
    ("/logging/", "logging"),
)


def _layer(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    for fragment, layer in LAYERS:
        if fragment in where:
            return layer
    return "other (stdlib, builtins)"


def _profiled(send: Callable[[str], Any], numbers: list[str]) -> list[dict[str, Any]]:
    """Send to ``numbers`` under cProfile; the share of own time per layer, largest first."""
    import cProfile
    import pstats

    # CPU time, not wall time: cProfile's default timer would charge the waits for the sandbox's
    # answers to the socket reads.
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for to in numbers:
        send(to)
    profiler.disable()
    totals: dict[str, float] = {}
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, own, _cum, _callers) in stats.items():
        layer = _layer(filename, function)
        totals[layer] = totals.get(layer, 0.0) + own
    whole = sum(totals.values()) or 1.0
    return [
        {"layer": layer, "share": round(own / whole, 4)}
        for layer, own in sorted(totals.items(), key=lambda item: item[1], reverse=True)
    ]

TEXT = "Your order 1017 has shipped and will arrive tomorrow"
SENDER = "447700100000"


def _sdk(api: str) -> Callable[[str], Any]:
    from vonage import Auth, HttpClientOptions, Vonage

    host = os.environ["SDK_HOST"]
    if api == "sms":
        from vonage_sms import SmsMessage

        client = Vonage(
            Auth(api_key=os.environ["VONAGE_API_KEY"], api_secret=os.environ["VONAGE_API_SECRET"]),
            HttpClientOptions(api_host=host, rest_host=host),
        )

        def send_sms(to: str) -> Any:
            response = client.sms.send(SmsMessage(to=to.lstrip("+"), from_=SENDER, text=TEXT))
            assert response.messages[0].status == "0", response
            return response

        return send_sms
    from vonage_messages import Sms

    client = Vonage(
        Auth(application_id=os.environ["VONAGE_APPLICATION_ID"], private_key=os.environ["VONAGE_PRIVATE_KEY"]),
        HttpClientOptions(api_host=host, rest_host=host),
    )

    def send_message(to: str) -> Any:
        response = client.messages.send(Sms(to=to.lstrip("+"), from_=SENDER, text=TEXT))
        assert response.message_uuid
        return response

    return send_message


def _client(api: str) -> Callable[[str], Any]:
    from shared.deps import get_vonage

    client = get_vonage()
    if api == "sms":
        return lambda to: client.send_sms(to=to, sender=SENDER, text=TEXT)
    return lambda to: client.send_message(
        {"channel": "sms", "message_type": "text", "to": to.lstrip("+"), "from": SENDER, "text": TEXT}
    )


def _path(api: str) -> Callable[[str], Any]:
    from shared.deps import get_settings, get_store, get_vonage
    from shared.messages.service import send_messages

    settings, store, vonage = get_settings(), get_store(), get_vonage()

    def send(to: str) -> Any:
        outcome = send_messages(
            {"to": to, "text": TEXT, "api": api, "from": SENDER},
            idempotency_key=None,
            settings=settings,
            store=store,
            vonage=vonage,
        )
        assert outcome.status == 202 and outcome.body["status"] == "submitted", outcome.body
        return outcome

    return send


def _count_connects() -> list[int]:
    """Count ``socket.connect`` calls from now on; the count is the list's only item."""
    counter = [0]
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        counter[0] += 1
        original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    return counter


def main() -> None:
    """Run the sends described on stdin; print ``{cpu_ms, wall_ms, connections, count}``."""
    spec: dict[str, Any] = json.loads(sys.stdin.read())
    report = os.fdopen(os.dup(1), "w")
    # Our JSON log lines (and anything else on stdout) go to the log file, not the report.
    log = os.open(os.environ.get("BENCH_LOG", os.devnull), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    send = {"sdk": _sdk, "client": _client, "path": _path}[spec["impl"]](spec["api"])
    numbers: list[str] = spec["numbers"]
    warmup, count = spec["warmup"], spec["count"]
    connects = _count_connects()
    for to in numbers[:warmup]:
        send(to)
    opened = connects[0]
    if spec.get("profile"):
        layers = _profiled(send, numbers[warmup : warmup + count])
        report.write(json.dumps({"profile": layers, "count": count}) + "\n")
        report.flush()
        return
    cpu, wall = time.process_time(), time.perf_counter()
    for to in numbers[warmup : warmup + count]:
        send(to)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    result = {"cpu_ms": cpu / count * 1000, "wall_ms": wall / count * 1000, "connections": connects[0] - opened}
    report.write(json.dumps({**result, "count": count}) + "\n")
    report.flush()


if __name__ == "__main__":
    main()
