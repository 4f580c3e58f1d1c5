"""VonageClient's own HTTP path (httpcore's pool, no ``httpx.Client``) against a real socket.

The other client tests inject ``httpx.MockTransport``, which goes through ``httpx.Client``; in
production the client sends through the pool of httpx's own transport instead (cheaper per
message, docs/performance.md). These tests run that path over real TCP and TLS: the bytes on
the wire are the ones ``httpx.Client`` sends, connections are reused, every failure keeps its
retry rule (a read timeout or a dropped connection on a paid call is never retried).
"""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

import shared.vonage.client as client_module
from shared.config import Settings
from shared.errors import VonageTimeoutError, VonageUnavailableError
from shared.vonage.client import VonageClient

API_KEY = "qwerasdf"
API_SECRET = "1234qwerasdfzxcv"
TO = "447700900123"
SMS_OK = {"message-count": "1", "messages": [{"to": TO, "status": "0", "message-id": "m-1", "remaining-balance": "9"}]}

# What a scripted answer does: bytes to send back, "close" (drop the connection after reading
# the request) or "hang" (read the request, answer nothing until the test ends).
Action = bytes | str


def answer(status: int, body: bytes, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_answer(status: int, value: Any, *headers: tuple[str, str]) -> bytes:
    return answer(status, json.dumps(value).encode(), ("Content-Type", "application/json"), *headers)


@dataclass
class Server:
    """A one-thread HTTP/1.1 server answering from a script; keeps each raw request."""

    script: list[Action]
    tls: ssl.SSLContext | None = None
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            self.connections += 1
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()  # the client refused our certificate
                    continue
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
                    0,
                )
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                action = self.script.pop(0) if len(self.script) > 1 else self.script[0]
                if action == "close":
                    return
                if action == "hang":
                    self._stop.wait(30)
                    return
                assert isinstance(action, bytes)
                conn.sendall(action)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def make(*script: Action, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(list(script), tls=tls)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def make_client(base_url: str, **kwargs: Any) -> VonageClient:
    settings = Settings(api_key=API_KEY, api_secret=API_SECRET, rest_base_url=base_url, api_base_url=base_url)
    kwargs.setdefault("sleep", lambda seconds: None)
    return VonageClient(settings, **kwargs)


def head_and_body(raw: bytes) -> tuple[list[str], dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return lines[:1], headers, body


def test_the_default_transport_sends_through_httpx_pool_not_httpx_client(serve, monkeypatch):
    server = serve(json_answer(200, SMS_OK))
    client = make_client(server.url(), max_retries=0)

    def no_client_request(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("httpx.Client.request was used")

    monkeypatch.setattr(httpx.Client, "request", no_client_request)
    for _ in range(3):
        assert client.send_sms(to="+" + TO, sender="Acme", text="hi").accepted
    # One pool, kept alive: three sends, one connection; the pool is httpx's own transport's.
    assert len(server.requests) == 3 and server.connections == 1
    route = client._routes[f"{server.url()}/sms/json"]
    assert route is not None and route.pool is client._http_client()._transport._pool
    client.close()
    assert client._routes == {}


def test_the_bytes_on_the_wire_are_what_httpx_client_sends(serve, monkeypatch):
    script = (json_answer(200, SMS_OK), json_answer(202, {"message_uuid": "u-1"}), answer(204, b""))
    server = serve(*script, *script)
    fast = make_client(server.url(), max_retries=0)
    fast.send_sms(to=TO, sender="Acme", text="Hello & welcome = yës", client_ref="r-1")
    fast.send_message({"channel": "sms", "to": TO, "from": "Acme", "text": "ünïcode"})
    fast.verify2_next_workflow("c11236f4-00bf-4b89-84ba-88b25df97315")  # a POST without a body
    monkeypatch.setattr(client_module, "_route", lambda http, url: None)  # as before: httpx.Client sends
    slow = make_client(server.url(), max_retries=0)
    slow.send_sms(to=TO, sender="Acme", text="Hello & welcome = yës", client_ref="r-1")
    slow.send_message({"channel": "sms", "to": TO, "from": "Acme", "text": "ünïcode"})
    slow.verify2_next_workflow("c11236f4-00bf-4b89-84ba-88b25df97315")
    assert slow._routes == {f"{server.url()}/sms/json": None, f"{server.url()}/v1/messages": None,
                            f"{server.url()}/v2/verify/c11236f4-00bf-4b89-84ba-88b25df97315/next_workflow": None}
    assert len(server.requests) == 6
    for ours, httpx_s in zip(server.requests[:3], server.requests[3:]):
        assert head_and_body(ours) == head_and_body(httpx_s)
    _, headers, body = head_and_body(server.requests[0])
    assert headers["authorization"].startswith("Basic ") and headers["user-agent"] == "vonage-functions/1.0"
    assert headers["content-type"] == "application/x-www-form-urlencoded"
    assert int(headers["content-length"]) == len(body) and b"text=Hello+%26+welcome+%3D+y%C3%ABs" in body
    assert head_and_body(server.requests[2])[1]["content-length"] == "0"


def test_a_read_timeout_on_a_send_is_an_unknown_outcome_never_retried(serve):
    server = serve("hang")
    client = make_client(server.url(), max_retries=3, timeout=httpx.Timeout(0.3, connect=2.0))
    with pytest.raises(VonageTimeoutError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert info.value.details["outcome"] == "unknown" and len(server.requests) == 1
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_a_dropped_connection_on_a_send_is_an_unknown_outcome_never_retried(serve):
    server = serve("close")
    client = make_client(server.url(), max_retries=3)
    with pytest.raises(VonageUnavailableError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert info.value.details["outcome"] == "unknown" and len(server.requests) == 1
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)


def test_a_5xx_on_a_send_is_an_unknown_outcome_never_retried(serve):
    server = serve(json_answer(503, {"title": "down"}, ("Retry-After", "7")))
    client = make_client(server.url(), max_retries=3)
    with pytest.raises(VonageUnavailableError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert info.value.details["outcome"] == "unknown" and info.value.details["http_status"] == 503
    assert info.value.retry_after == 7.0 and len(server.requests) == 1


def test_a_refused_connection_is_retried_then_unavailable():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    sleeps: list[float] = []
    client = make_client(f"http://127.0.0.1:{port}", max_retries=2, sleep=sleeps.append)
    with pytest.raises(VonageUnavailableError) as info:
        client.send_sms(to=TO, sender="Acme", text="hi")
    assert "outcome" not in info.value.details and info.value.details["attempts"] == 3 and len(sleeps) == 2
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_throttling_is_retried_on_the_same_connection_with_retry_after(serve):
    server = serve(json_answer(429, {}, ("retry-after", "2")), json_answer(200, SMS_OK))
    sleeps: list[float] = []
    client = make_client(server.url(), max_retries=3, sleep=sleeps.append)
    assert client.send_sms(to=TO, sender="Acme", text="hi").message_ids == ("m-1",)
    assert sleeps == [2.0] and len(server.requests) == 2 and server.connections == 1


def test_a_gzip_answer_is_decoded(serve):
    body = gzip.compress(json.dumps(SMS_OK).encode())
    server = serve(answer(200, body, ("Content-Type", "application/json"), ("Content-Encoding", "gzip")))
    client = make_client(server.url(), max_retries=0)
    assert client.send_sms(to=TO, sender="Acme", text="hi").message_ids == ("m-1",)
    assert head_and_body(server.requests[0])[1]["accept-encoding"] == "gzip, deflate"


def test_tls_is_verified_against_the_ca_bundle(serve, monkeypatch):
    from sandbox.tls import create_tls_material

    tls = create_tls_material()
    try:
        server = serve(json_answer(200, SMS_OK), tls=tls.server_context())
        # Not signed by anything in the default bundle: refused before a byte of the request is sent.
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        untrusting = make_client(server.url("https"), max_retries=0)
        with pytest.raises(VonageUnavailableError) as info:
            untrusting.send_sms(to=TO, sender="Acme", text="hi")
        assert "outcome" not in info.value.details and server.requests == []
        # SSL_CERT_FILE names the CA, as httpx.Client honours it: the same client code succeeds.
        monkeypatch.setenv("SSL_CERT_FILE", tls.ca_file)
        trusting = make_client(server.url("https"), max_retries=0)
        assert trusting.send_sms(to=TO, sender="Acme", text="hi").accepted
        assert len(server.requests) == 1
        untrusting.close()
        trusting.close()
    finally:
        tls.remove()


@pytest.mark.parametrize(
    "form",
    [
        {"from": "Acme", "to": TO, "text": "Hello & welcome = yës 100% +1 ~_.-/?#[]", "status-report-req": "true"},
        {"text": "", "ttl": 20000, "flag": True, "off": False, "none": None, "emoji": "\U0001f600 日本"},
    ],
)
def test_the_form_is_encoded_byte_for_byte_as_httpx_encodes_it(form):
    body, content_type = client_module._encode_body(form, None)
    reference = httpx.Request("POST", "https://rest.nexmo.com/sms/json", data=form)
    assert body == reference.content and content_type == reference.headers["Content-Type"]


@pytest.mark.parametrize("value", [{"text": "ünï \"q\" \U0001f600", "n": 1.5, "list": [1, None, True]}, {}])
def test_json_is_encoded_byte_for_byte_as_httpx_encodes_it(value):
    body, content_type = client_module._encode_body(None, value)
    reference = httpx.Request("POST", "https://api.nexmo.com/v1/messages", json=value)
    assert body == reference.content and content_type == reference.headers["Content-Type"]


def test_a_client_closed_and_used_again_opens_a_new_pool_and_routes(serve):
    server = serve(json_answer(200, SMS_OK))
    client = make_client(server.url(), max_retries=0)
    client.send_sms(to=TO, sender="Acme", text="hi")
    first_pool = client._http_client()._transport._pool
    client.close()
    client.send_sms(to=TO, sender="Acme", text="hi")
    (route,) = client._routes.values()
    assert route is not None and route.pool is client._http_client()._transport._pool is not first_pool
    assert server.connections == 2
    client.close()


def test_only_codings_the_client_can_decode_are_accepted(serve):
    # Were brotli or zstandard ever installed, httpx would ask for br/zstd, which _decode cannot undo.
    server = serve(json_answer(200, SMS_OK))
    client = make_client(server.url(), max_retries=0)
    client._http_client().headers["Accept-Encoding"] = "gzip, deflate, br, zstd"
    client.send_sms(to=TO, sender="Acme", text="hi")
    assert head_and_body(server.requests[0])[1]["accept-encoding"] == "gzip, deflate"
