"""Property-based fuzzing (Hypothesis) of every function in the one-process app.

Malformed and hostile input at every function: wrong types, injection strings, unpaired
surrogates, huge values, deep nesting, raw bytes that are not UTF-8 or not JSON, odd phone
formats, hostile headers, and every webhook format with fields missing, doubled or replaced.
The bar for every answer (``tests.hardening.fuzzing.check_answer``): no 5xx, no stack trace,
a status the OpenAPI document lists for the operation, JSON, and every refusal in the one
documented error shape. The functions run behind the real one-process app with a sandbox for
Vonage, so requests valid enough to be sent are really sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.hardening import (
    HARDENING_API_KEY,
    HARDENING_API_TOKEN,
    HARDENING_SIGNATURE_SECRET,
    HARDENING_WEBHOOK_TOKEN,
    fuzz_settings,
)
from tests.hardening.fuzzing import check_answer, hostile_json, hostile_text, odd_phones

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the long profile runs ten times as many examples

AUTH = {"Authorization": f"Bearer {HARDENING_API_TOKEN}"}
SEND_FIELDS = ("to", "text", "template", "channel", "api", "from", "client_ref", "ttl", "max_segments", "dry_run",
               "image", "audio", "video", "file")
VERIFY_START_FIELDS = ("number", "brand", "channels", "code_length", "locale", "client_ref", "email", "client_ip")
POST_PATHS = ("/send", "/verify-start", "/verify-check", "/verify-cancel", "/verify-next", "/inbound", "/status")


@pytest.fixture
def client(hardening_stack: Any) -> Any:
    """The one-process app in this process (a test client), wired like ``hardening_stack``."""
    import app as one_process_app

    return one_process_app.create_app().test_client()


def _post_json(client: Any, path: str, body: Any, *, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body, ensure_ascii=True)  # ASCII escapes: unpaired surrogates travel as \udXXX
    return client.post(path, data=data, headers={"Content-Type": "application/json", **(headers or AUTH)})


# ---- caller-facing functions -----------------------------------------------------------------


def test_send_survives_hostile_bodies(client: Any) -> None:
    @fuzz_settings(150)
    @given(body=st.dictionaries(st.sampled_from(SEND_FIELDS) | st.text(max_size=8), hostile_json(), max_size=6),
           key=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=300))
    def run(body: dict[str, Any], key: str | None) -> None:
        headers = dict(AUTH)
        if key is not None:
            headers["Idempotency-Key"] = key
        check_answer(_post_json(client, "/send", body, headers=headers), "POST", "/send")

    run()


def test_send_survives_odd_phone_formats_and_valid_looking_bodies(client: Any) -> None:
    @fuzz_settings(120)
    @given(
        to=odd_phones(),
        text=st.one_of(st.just("hello"), hostile_text(200)),
        extra=st.fixed_dictionaries(
            {},
            optional={
                "channel": st.sampled_from(["sms", "SMS ", "whatsapp", "viber_service", "messenger", "rcs", "mms", "fax"]),
                "api": st.sampled_from(["sms", "messages", "SMS", "x"]),
                "from": st.sampled_from(["Acme", "447700900000", "+44 7700 900000", "A" * 12, "", "Ac&me"]),
                "dry_run": st.booleans(),
                "client_ref": hostile_text(120),
                "ttl": st.one_of(st.integers(-10, 10**7), st.floats(allow_nan=False)),
            },
        ),
    )
    def run(to: Any, text: str, extra: dict[str, Any]) -> None:
        body = check_answer(_post_json(client, "/send", {"to": to, "text": text, **extra}), "POST", "/send")
        if body is not None and body.get("status") == "submitted" and body.get("channel") != "messenger":
            assert body["to"].startswith("+") and body["to"][1:].isdigit(), "a sent message's number is E.164"

    run()


def test_message_lookup_survives_hostile_ids(client: Any) -> None:
    @fuzz_settings(80)
    @given(message_id=hostile_text(80), as_query=st.booleans())
    def run(message_id: str, as_query: bool) -> None:
        safe = message_id.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        path = f"/send?id={quote(safe, safe='')}" if as_query else f"/send/{quote(safe, safe='')}"
        check_answer(client.get(path, headers=AUTH), "GET", path)

    run()


def test_verify_start_survives_hostile_bodies_and_odd_numbers(client: Any) -> None:
    @fuzz_settings(150)
    @given(
        number=odd_phones(),
        brand=st.one_of(st.just("Acme"), hostile_text(30), hostile_json(3)),
        rest=st.dictionaries(st.sampled_from(VERIFY_START_FIELDS[2:]) | st.text(max_size=6), hostile_json(4), max_size=4),
        forwarded=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    )
    def run(number: Any, brand: Any, rest: dict[str, Any], forwarded: str | None) -> None:
        headers = dict(AUTH)
        if forwarded is not None:
            headers["X-Forwarded-For"] = forwarded
        response = _post_json(client, "/verify-start", {"number": number, "brand": brand, **rest}, headers=headers)
        check_answer(response, "POST", "/verify-start")

    run()


def test_verify_check_and_cancel_survive_hostile_input(client: Any) -> None:
    @fuzz_settings(120)
    @given(request_id=st.one_of(hostile_text(70), hostile_json(3)), code=st.one_of(hostile_text(12), hostile_json(3)),
           path_id=st.none() | hostile_text(40), method=st.sampled_from(["POST", "DELETE"]))
    def run(request_id: Any, code: Any, path_id: str | None, method: str) -> None:
        body = check_answer(_post_json(client, "/verify-check", {"request_id": request_id, "code": code}), "POST", "/verify-check")
        if isinstance(code, str) and len(code) >= 8 and body is not None:
            assert json.dumps(code)[1:-1] not in json.dumps(body), "a code is never echoed"
        if path_id is None:
            check_answer(_post_json(client, "/verify-cancel", {"request_id": request_id}), "POST", "/verify-cancel")
        else:
            safe = quote(path_id.encode("utf-8", "surrogatepass").decode("utf-8", "replace"), safe="")
            path = f"/verify-cancel/{safe}"
            check_answer(client.open(path, method=method, headers=AUTH), method, path)

    run()


def test_inbound_listing_survives_hostile_queries(client: Any) -> None:
    @fuzz_settings(80)
    @given(params=st.dictionaries(st.sampled_from(["number", "limit", "raw", "id", "token"]) | st.text(max_size=5),
                                  st.text(max_size=40), max_size=4))
    def run(params: dict[str, str]) -> None:
        safe = {k.encode("utf-8", "surrogatepass").decode("utf-8", "replace"): v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
                for k, v in params.items()}
        path = "/inbound?" + urlencode(safe)
        check_answer(client.get(path, headers=AUTH), "GET", path)

    run()


def test_hostile_headers_are_refused_cleanly(client: Any) -> None:
    latin1 = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=200)

    @fuzz_settings(100)
    @given(
        path=st.sampled_from(POST_PATHS + ("/send/msg_x", "/verify-cancel/abc")),
        method=st.sampled_from(["POST", "GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]),
        authorization=st.none() | latin1 | st.builds(lambda t: "Bearer " + t, latin1) | st.just("Bearer " + HARDENING_API_TOKEN),
        content_type=st.none() | st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                                                  "multipart/form-data; boundary=x", "application/json; charset=latin-1"]) | latin1,
        origin=st.none() | latin1,
        trace=st.none() | latin1,
    )
    def run(path: str, method: str, authorization: str | None, content_type: str | None, origin: str | None,
            trace: str | None) -> None:
        headers = {name: value for name, value in (("Authorization", authorization), ("Content-Type", content_type),
                   ("Origin", origin), ("X-Cloud-Trace-Context", trace)) if value is not None}
        response = client.open(path, method=method, data=b'{"to": "+447911123456", "text": "hi"}', headers=headers)
        bearer = authorization is not None and authorization.lower().startswith("bearer")
        check_answer(response, method, path, bearer=bearer)

    run()


# ---- raw bodies: not JSON, not UTF-8, nested, doubled keys, over the limit --------------------


_RAW = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([
        b"", b" ", b"null", b"[]", b"[1,2]", b'"x"', b"0", b"{", b'{"to":', b"\xff\xfe\x00", b"\xed\xa0\x80",
        b'{"to": NaN}', b'{"to": Infinity}', b'{"to": -Infinity}', b'{"a": 1e999}',
        b'{"to": "+447911123456", "to": ["+447911123456", "+447911123457"], "text": "hi", "text": 5}',
        b'{"number": "+447400123456", "number": {"$gt": ""}, "brand": "Acme"}',
        b"\xef\xbb\xbf{\"to\": \"+447911123456\", \"text\": \"bom\"}",
        b"to=%2B447911123456&text=hi", b"--x\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n1\r\n--x--",
    ]),
    st.integers(1, 20000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 20000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
)


def test_every_function_survives_raw_bodies(client: Any) -> None:
    @fuzz_settings(200)
    @given(path=st.sampled_from(POST_PATHS), body=_RAW,
           content_type=st.sampled_from([None, "application/json", "application/x-www-form-urlencoded", "text/plain"]),
           token=st.booleans())
    def run(path: str, body: bytes, content_type: str | None, token: bool) -> None:
        headers = dict(AUTH) if path not in ("/inbound", "/status") else {}
        if content_type:
            headers["Content-Type"] = content_type
        target = f"{path}?token={HARDENING_WEBHOOK_TOKEN}" if token and path in ("/inbound", "/status") else path
        check_answer(client.post(target, data=body, headers=headers), "POST", target)

    run()


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_refused_with_413(hardening_stack: Any, path: str, declared: bool) -> None:
    import httpx

    from shared.config import Settings

    limit = Settings().max_body_bytes
    body = b'{"text": "' + b"a" * limit + b'"}'
    content: Any = body if declared else iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
    headers = {"Content-Type": "application/json", **AUTH}
    target = f"{path}?token={HARDENING_WEBHOOK_TOKEN}" if path in ("/inbound", "/status") else path
    with httpx.Client(base_url=hardening_stack.url, trust_env=False, timeout=30) as http:
        response = http.post(target, content=content, headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_body_just_under_the_limit_is_read(client: Any) -> None:
    from shared.config import Settings

    limit = Settings().max_body_bytes
    padding = limit - len(b'{"to": "+447911123456", "text": "hi", "x": ""}')
    response = client.post("/send", data=b'{"to": "+447911123456", "text": "hi", "x": "' + b"a" * padding + b'"}',
                           headers={"Content-Type": "application/json", **AUTH})
    assert response.status_code == 422 and response.json["error"]["code"] == "unknown_field"  # read, then judged


# ---- webhooks: every format, fields missing, doubled or replaced ------------------------------


def _sms_inbound(index: int) -> dict[str, str]:
    return {"msisdn": "447911123456", "to": "447700900000", "messageId": f"0B{index:014X}", "text": "Hello fuzz",
            "type": "text", "keyword": "HELLO", "message-timestamp": "2026-01-30 12:00:00", "api-key": HARDENING_API_KEY}


def _sms_part(index: int) -> dict[str, str]:
    return {**_sms_inbound(index), "concat": "true", "concat-ref": str(index % 200), "concat-total": "3",
            "concat-part": str(1 + index % 3)}


def _sms_receipt(index: int) -> dict[str, str]:
    return {"msisdn": "447911123456", "to": "Acme", "network-code": "23410", "messageId": f"0C{index:014X}",
            "price": "0.03330000", "status": "delivered", "scts": "2601301200", "err-code": "0",
            "api-key": HARDENING_API_KEY, "message-timestamp": "2026-01-30 12:00:05"}


def _messages_inbound(index: int) -> dict[str, Any]:
    return {"channel": ["whatsapp", "sms", "mms", "messenger", "viber_service", "rcs"][index % 6],
            "message_uuid": str(uuid.UUID(int=index)), "from": "447911123456", "to": "447700900000",
            "timestamp": "2026-01-30T12:00:00Z", "message_type": ["text", "image", "location", "reply", "button"][index % 5],
            "text": "Hello", "image": {"url": "https://example.com/a.jpg", "caption": "cap"},
            "location": {"lat": 1.5, "long": 2.5}, "reply": {"id": "r1", "title": "Yes"}, "button": {"text": "OK"},
            "sms": {"num_messages": "1", "keyword": "HELLO"}, "usage": {"currency": "EUR", "price": "0.0057"},
            "profile": {"name": "Fuzz"}, "context": {"message_uuid": str(uuid.UUID(int=index + 1))}}


def _messages_v01(index: int) -> dict[str, Any]:
    return {"message_uuid": str(uuid.UUID(int=index)), "from": {"type": "whatsapp", "number": "447911123456"},
            "to": {"type": "whatsapp", "number": "447700900000"}, "timestamp": "2026-01-30T12:00:00Z",
            "message": {"content": {"type": "text", "text": "Hello v0.1"}}}


def _messages_status(index: int) -> dict[str, Any]:
    return {"message_uuid": str(uuid.UUID(int=index)), "to": "447911123456", "from": "447700900000",
            "timestamp": "2026-01-30T12:00:05Z", "status": ["submitted", "delivered", "read", "rejected"][index % 4],
            "channel": "whatsapp", "client_ref": "ref", "usage": {"currency": "EUR", "price": "0.0100"},
            "error": {"type": "https://developer.nexmo.com/api-errors/messages#1330", "title": "1330", "detail": "x"}}


def _verify_callback(index: int) -> dict[str, Any]:
    if index % 2:
        return {"request_id": str(uuid.UUID(int=index)), "triggered_at": "2026-01-30T12:00:10Z", "type": "event",
                "channel": "sms", "status": "completed", "finalized_at": "2026-01-30T12:00:10Z"}
    return {"request_id": str(uuid.UUID(int=index)), "submitted_at": "2026-01-30T12:00:00Z", "status": "completed",
            "type": "summary", "channel_timeout": 300, "workflow": [{"channel": "sms", "status": "completed"}]}


# (builder, path, wire formats it may come in)
_WEBHOOKS = (
    (_sms_inbound, "/inbound", ("GET", "POST", "POST-JSON")),
    (_sms_part, "/inbound", ("GET", "POST", "POST-JSON")),
    (_sms_receipt, "/status", ("GET", "POST", "POST-JSON")),
    (_messages_inbound, "/inbound", ("POST-JSON",)),
    (_messages_v01, "/inbound", ("POST-JSON",)),
    (_messages_status, "/status", ("POST-JSON",)),
    (_verify_callback, "/status", ("POST-JSON",)),
)


@st.composite
def _mangled_webhook(draw: Any) -> tuple[str, str, str, list[tuple[str, Any]]]:
    builder, path, formats = draw(st.sampled_from(_WEBHOOKS))
    fmt = draw(st.sampled_from(formats))
    payload = builder(draw(st.integers(0, 10**6)))
    names = sorted(payload)
    dropped = draw(st.sets(st.sampled_from(names), max_size=len(names)))
    pairs: list[tuple[str, Any]] = [(k, v) for k, v in payload.items() if k not in dropped]
    for name in draw(st.lists(st.sampled_from(names), max_size=3)):  # doubled fields, maybe with another value
        pairs.append((name, draw(st.one_of(st.just(payload[name]), hostile_json(3) if fmt == "POST-JSON" else hostile_text(40)))))
    for name in draw(st.lists(st.sampled_from(names), max_size=3)):  # replaced values
        value = draw(hostile_json(4) if fmt == "POST-JSON" else hostile_text(40))
        pairs = [(k, value if k == name else v) for k, v in pairs]
    return path, fmt, draw(st.sampled_from(["token", "sig", "jwt", "none", "bad-sig"])), pairs


def _send_webhook(client: Any, path: str, fmt: str, auth: str, pairs: list[tuple[str, Any]]) -> tuple[Any, str, str]:
    """Send the pairs in their wire format; duplicates stay duplicates (repeated keys, repeated JSON members)."""
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    if auth == "token":
        query.append(("token", HARDENING_WEBHOOK_TOKEN))
    if fmt == "POST-JSON":
        body = ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}").encode()
        headers["Content-Type"] = "application/json"
        if auth in ("jwt", "bad-sig"):
            headers["Authorization"] = "Bearer " + _jwt(body, HARDENING_SIGNATURE_SECRET if auth == "jwt" else "wrong-secret-123456")
        elif auth == "sig":
            pairs = pairs + list(_sig_fields(dict(pairs)).items())
            body = ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}").encode()
    else:
        text_pairs = [(k, v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) for k, v in pairs]
        if auth in ("sig", "bad-sig"):
            signed = _sig_fields(dict(text_pairs), secret=HARDENING_SIGNATURE_SECRET if auth == "sig" else "wrong-secret-123456")
            text_pairs += list(signed.items())
        if fmt == "GET":
            query += text_pairs
            body = b""
        else:
            body = urlencode(text_pairs).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
    target = path + ("?" + urlencode(query) if query else "")
    method = "GET" if fmt == "GET" else "POST"
    return client.open(target, method=method, data=body, headers=headers), method, target


def _sig_fields(params: dict[str, Any], *, secret: str = HARDENING_SIGNATURE_SECRET) -> dict[str, str]:
    """``timestamp``, ``nonce`` and ``sig`` by the stack's method (MD5 hash), written again from the docs."""
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items() if k != "sig"}
    fields["timestamp"] = str(int(time.time()))
    fields["nonce"] = str(uuid.uuid4())
    message = "".join(f"&{k}={str(fields[k]).replace('&', '_').replace('=', '_')}" for k in sorted(fields))
    sig = hashlib.md5((message + secret).encode("utf-8", "surrogatepass")).hexdigest()
    return {"timestamp": fields["timestamp"], "nonce": fields["nonce"], "sig": sig}


def _jwt(body: bytes, secret: str) -> str:
    import base64

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"iat": int(time.time()), "jti": str(uuid.uuid4()), "iss": "Vonage",
                             "payload_hash": hashlib.sha256(body).hexdigest(), "api_key": HARDENING_API_KEY}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def test_webhooks_survive_every_format_with_fields_missing_doubled_or_replaced(client: Any) -> None:
    @fuzz_settings(300)
    @given(webhook=_mangled_webhook())
    def run(webhook: tuple[str, str, str, list[tuple[str, Any]]]) -> None:
        path, fmt, auth, pairs = webhook
        response, method, target = _send_webhook(client, path, fmt, auth, pairs)
        check_answer(response, method, target, bearer=False)
        if auth in ("none", "bad-sig"):
            assert response.status_code in (400, 401, 413), "an unauthenticated webhook is never processed"

    run()


def test_a_clean_webhook_of_every_format_is_accepted(client: Any) -> None:
    # The mangling above must start from payloads the functions accept: each one, unmangled, is a 200.
    for index, (builder, path, formats) in enumerate(_WEBHOOKS):
        for fmt in formats:
            for auth in ("token", "sig", "jwt") if fmt == "POST-JSON" else ("token", "sig"):
                if auth == "sig" and builder in (_messages_inbound, _messages_v01, _messages_status, _verify_callback):
                    continue  # the SMS sig only signs SMS API webhooks
                pairs = list(builder(index * 10 + len(fmt) + len(auth)).items())
                response, method, target = _send_webhook(client, path, fmt, auth, pairs)
                check_answer(response, method, target, bearer=False)
                assert response.status_code == 200, (builder.__name__, fmt, auth, response.get_data(as_text=True))
