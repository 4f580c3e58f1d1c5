"""The OpenAPI document and the implementation agree.

- The document is OpenAPI 3.1, every ``$ref`` resolves, the JSON copy equals the YAML source,
  and the one-process app serves both.
- Every documented request field is accepted: the documented fields are exactly the fields
  the code reads, the examples use every documented field, and each example is answered with a
  documented success status whose body matches the documented schema.
- Every documented error is returned: for each (operation, error status) in the document a
  request produces it, with a body matching the documented Error schema.
"""

from __future__ import annotations

import ast
import inspect
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.hardening import HARDENING_API_TOKEN, HARDENING_WEBHOOK_TOKEN
from tests.hardening.openapi_doc import JSON_PATH, YAML_PATH, load, operations, resolve

DOCUMENT = load()
LABELS = [f"{method.upper()} {path}" for path, method, _ in operations(DOCUMENT)]
AUTH = {"Authorization": f"Bearer {HARDENING_API_TOKEN}"}
GB_MOBILE = "+447911123456"
VERIFY_MOBILE = "+447400123456"
WEBHOOK_LABELS = {"POST /inbound", "POST /status", "GET /status"}


def _operation(label: str) -> dict[str, Any]:
    method, path = label.split(" ", 1)
    return DOCUMENT["paths"][path][method.lower()]


def _validator(schema: dict[str, Any]) -> Any:
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def _body_schema(label: str, status: int) -> dict[str, Any]:
    response = resolve(DOCUMENT, _operation(label)["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


def _assert_matches(label: str, response: httpx.Response) -> None:
    assert response.headers["content-type"].split(";")[0] == "application/json", response.text
    errors = [str(e) for e in _validator(_body_schema(label, response.status_code)).iter_errors(response.json())]
    assert errors == [], f"{label} {response.status_code}: {errors} in {response.text[:300]}"


# ---- the document itself -------------------------------------------------------------------


def test_the_json_copy_is_the_yaml_source() -> None:
    assert json.loads(JSON_PATH.read_text(encoding="utf-8")) == load(), "run: python -m tests.hardening.openapi_doc"


def test_the_document_is_openapi_3_1_and_every_ref_resolves() -> None:
    import schemathesis

    assert DOCUMENT["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(load())  # parses, or raises

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    for ref in refs(DOCUMENT):
        assert resolve(DOCUMENT, {"$ref": ref}) is not None
    for schema in DOCUMENT["components"]["schemas"].values():
        _validator(schema)  # each is a valid JSON Schema 2020-12


def test_the_one_process_app_serves_the_document() -> None:
    import app as one_process_app

    client = one_process_app.create_app().test_client()
    as_json = client.get("/openapi.json")
    as_yaml = client.get("/openapi.yaml")
    assert as_json.status_code == 200 and as_json.mimetype == "application/json"
    assert as_json.get_json() == load()
    assert as_yaml.status_code == 200 and as_yaml.mimetype == "application/yaml"
    assert as_yaml.get_data() == YAML_PATH.read_bytes()


def test_the_body_size_limit_is_documented_as_configured() -> None:
    from shared.config import Settings

    assert DOCUMENT["info"]["x-max-body-bytes"] == {"setting": "MAX_BODY_BYTES", "default": Settings().max_body_bytes, "minimum": 1024}
    for label in LABELS:
        body = _operation(label).get("requestBody")
        if body is not None:
            assert "MAX_BODY_BYTES" in body["description"], label
            assert "413" in _operation(label)["responses"], label


# ---- every documented field is accepted ------------------------------------------------------


def _keys_read(function: Callable[..., Any]) -> set[str]:
    """String keys a parser reads from its body: ``body.get("x")``, ``body["x"]``, ``helper(body, "x")``."""
    tree = ast.parse(inspect.getsource(function))
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "body" and node.args:
                if isinstance(node.args[0], ast.Constant):
                    keys.add(node.args[0].value)
        if isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id == "body":
            if isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
                keys.add(node.args[1].value)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "body":
            if isinstance(node.slice, ast.Constant):
                keys.add(node.slice.value)
    return keys


def _properties(name: str) -> set[str]:
    return set(DOCUMENT["components"]["schemas"][name]["properties"])


def test_documented_request_fields_are_the_fields_the_code_reads() -> None:
    from shared.messages import batches
    from shared.messages import request as send_request
    from shared.verify import inputs

    # send_at is taken out of the body before the send is parsed (shared.messages.batches).
    assert _keys_read(batches.pop_send_at) == {"send_at"}
    assert _properties("SendRequest") == set(send_request.SEND_FIELDS) | {"send_at"}
    assert _properties("Media") == {"url", "caption", "name"}
    assert _properties("Template") == {"name", "parameters", "locale"}
    assert _properties("VerifyStartRequest") == _keys_read(inputs.parse_start)
    assert _properties("VerifyCheckRequest") == _keys_read(inputs.parse_check)
    assert _properties("VerifyCancelRequest") == {"request_id"}
    assert DOCUMENT["components"]["schemas"]["SendRequest"]["additionalProperties"] is False  # unknown_field


def _schema_keys(schema: dict[str, Any], name: str = "") -> set[str]:
    """``Schema.field`` for every property, nested schemas included (each schema once)."""
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1] if ref else name
    keys: set[str] = set()
    for key, item in resolve(DOCUMENT, schema).get("properties", {}).items():
        keys.add(f"{name}.{key}")
        for option in item.get("oneOf", []):
            if "$ref" in option:
                keys |= _schema_keys(option)
    return keys


def _used_keys(schema: dict[str, Any], value: Any, name: str = "") -> set[str]:
    """``Schema.field`` for every property an example uses."""
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1] if ref else name
    used: set[str] = set()
    properties = resolve(DOCUMENT, schema).get("properties", {})
    for key, item in (value.items() if isinstance(value, dict) else ()):
        used.add(f"{name}.{key}")
        for option in properties.get(key, {}).get("oneOf", []):
            if "$ref" in option and isinstance(item, dict):
                used |= _used_keys(option, item)
    return used


@pytest.mark.parametrize("label", ["POST /send", "POST /verify-start", "POST /verify-check", "POST /verify-cancel"])
def test_the_examples_use_every_documented_field(label: str) -> None:
    content = _operation(label)["requestBody"]["content"]["application/json"]
    used = set().union(*(_used_keys(content["schema"], example["value"]) for example in content["examples"].values()))
    assert _schema_keys(content["schema"]) - used == set()


def _examples(label: str) -> list[tuple[str, str, Any]]:
    body = _operation(label)["requestBody"]["content"]
    return [(media, name, example["value"]) for media, item in body.items() for name, example in item.get("examples", {}).items()]


@pytest.mark.parametrize("label", ["POST /send", "POST /inbound", "POST /status"])
def test_every_example_is_accepted(hardening_stack: Any, label: str) -> None:
    path = label.split(" ", 1)[1]
    query = {"token": HARDENING_WEBHOOK_TOKEN} if label in WEBHOOK_LABELS else {}
    with httpx.Client(base_url=hardening_stack.url, trust_env=False, timeout=30) as http:
        for _media, name, value in _examples(label):
            if "send_at" in value:
                continue  # needs a queue: test_the_scheduled_example_is_queued_shown_and_cancelled
            response = http.post(path, json=value, params=query, headers={} if query else AUTH)
            assert response.status_code in (200, 202), f"example {name!r}: {response.text}"
            _assert_matches(label, response)


def test_the_scheduled_example_is_queued_shown_and_cancelled(hardening_stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The stack runs QUEUE_BACKEND=none (the fuzzers check the synchronous bulk); the queue
    # examples get the embedded queue, without its worker (nothing is due for years anyway).
    monkeypatch.setattr("shared.queue.worker.start_worker", lambda: None)
    hardening_stack.configure(QUEUE_BACKEND="embedded")
    import datetime as dt

    scheduled = [value for _m, _n, value in _examples("POST /send") if "send_at" in value]
    assert scheduled
    # The example's time as given, moved to tomorrow: send_at may be at most 30 days ahead of now.
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with httpx.Client(base_url=hardening_stack.url, trust_env=False, timeout=30) as http:
        for example in scheduled:
            dt.datetime.fromisoformat(example["send_at"].replace("Z", "+00:00"))  # the documented form
            value = {**example, "send_at": tomorrow}
            accepted = http.post("/send", json=value, headers=AUTH)
            assert accepted.status_code == 202, accepted.text
            _assert_matches("POST /send", accepted)
            batch = accepted.json()
            assert batch["status"] == "scheduled" and batch["summary"]["queued"] == len(value["to"])
            shown = http.get(f"/send/{batch['batch_id']}", headers=AUTH)
            assert shown.status_code == 200, shown.text
            _assert_matches("GET /send/{id}", shown)
            assert [r["state"] for r in shown.json()["results"]] == ["queued"] * len(value["to"])
            assert shown.json()["next_cursor"] is None
            cancelled = http.delete(f"/send/{batch['batch_id']}", headers=AUTH)
            assert cancelled.status_code == 200, cancelled.text
            _assert_matches("DELETE /send/{id}", cancelled)
            assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled"] == len(value["to"])


def test_every_verify_example_is_accepted(hardening_stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.verify import service

    monkeypatch.setattr(service, "CANCEL_MIN_AGE", 0.0)  # Vonage's 30 s rule, not under test here
    with httpx.Client(base_url=hardening_stack.url, trust_env=False, timeout=30) as http:
        started = []
        for _media, name, value in _examples("POST /verify-start"):
            response = http.post("/verify-start", json=value, headers=AUTH)
            assert response.status_code == 202, f"example {name!r}: {response.text}"
            _assert_matches("POST /verify-start", response)
            started.append(response.json()["request_id"])
        # check: the example's fields with a real request and the code the phone received
        (_m, _n, check), = _examples("POST /verify-check")
        code = hardening_stack.sandbox.last_code(VERIFY_MOBILE)
        response = http.post("/verify-check", json={**check, "request_id": started[0], "code": code}, headers=AUTH)
        assert response.status_code == 200, response.text
        _assert_matches("POST /verify-check", response)
        (_m, _n, cancel), = _examples("POST /verify-cancel")
        response = http.post("/verify-cancel", json={**cancel, "request_id": started[1]}, headers=AUTH)
        assert response.status_code == 200, response.text
        _assert_matches("POST /verify-cancel", response)


# ---- every documented error is returned --------------------------------------------------------


class _Errors:
    """Produces one documented error per (operation, status) on the hardening stack."""

    def __init__(self, stack: Any, monkeypatch: pytest.MonkeyPatch, receiver: Any) -> None:
        self.stack = stack
        self.monkeypatch = monkeypatch
        self.receiver = receiver
        self.http = httpx.Client(base_url=stack.url, trust_env=False, timeout=30)

    def call(self, label: str, *, json_body: Any = None, content: bytes | None = None, auth: bool = True,
             path: str | None = None, params: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        method, template = label.split(" ", 1)
        target = path or template.replace("{id}", "msg_" + "0" * 32).replace("{request_id}", "c11236f4-00bf-4b89-84ba-88b25df97315")
        all_headers = dict(headers or {})
        all_params = dict(params or {})
        if auth and label in WEBHOOK_LABELS:
            all_params.setdefault("token", HARDENING_WEBHOOK_TOKEN)
        elif auth:
            all_headers.setdefault("Authorization", AUTH["Authorization"])
        if content is not None:
            all_headers.setdefault("Content-Type", "application/json")
        return self.http.request(method, target, json=json_body, content=content, params=all_params, headers=all_headers)

    def valid(self, label: str, **kwargs: Any) -> httpx.Response:
        """A request the operation would accept (so an outage or a refusal shows)."""
        bodies: dict[str, Any] = {
            "POST /send": {"to": GB_MOBILE, "text": "hello"},
            "POST /verify-start": {"number": VERIFY_MOBILE, "brand": "Acme"},
            "POST /verify-check": {"request_id": "c11236f4-00bf-4b89-84ba-88b25df97315", "code": "1234"},
            "POST /verify-cancel": {"request_id": "c11236f4-00bf-4b89-84ba-88b25df97315"},
            "DELETE /verify-cancel": {"request_id": "c11236f4-00bf-4b89-84ba-88b25df97315"},
            "POST /verify-next": {"request_id": "c11236f4-00bf-4b89-84ba-88b25df97315"},
            "POST /inbound": {"msisdn": "447911123456", "to": "447700900000", "messageId": "0B0000001234ABCD", "text": "hi"},
            "POST /status": {"messageId": "0B0000001234ABCE", "status": "delivered", "err-code": "0"},
        }
        if label == "GET /status":
            return self.call(label, params={"messageId": "0B0000001234ABCF", "status": "delivered"}, **kwargs)
        return self.call(label, json_body=bodies.get(label), **kwargs)

    def store_down(self, label: str) -> httpx.Response:
        import functions.inbound
        import functions.send
        import functions.status
        import functions.verify_cancel
        import functions.verify_check
        import functions.verify_next
        import functions.verify_start
        from tests.fixtures.webhooks import FaultyStore

        store = FaultyStore(self.stack.store)
        store.down = True
        for module in (functions.send, functions.inbound, functions.status, functions.verify_start,
                       functions.verify_check, functions.verify_cancel, functions.verify_next):
            self.monkeypatch.setattr(module, "get_store", lambda: store)
        return self.valid(label)

    def misconfigured(self, label: str) -> httpx.Response:
        if label in WEBHOOK_LABELS:
            self.stack.configure(VONAGE_SIGNATURE_SECRET=None, WEBHOOK_TOKEN=None)
            return self.valid(label, auth=False)
        self.stack.configure(API_TOKENS=None)
        return self.valid(label)

    def start(self, number: str = VERIFY_MOBILE) -> str:
        response = self.call("POST /verify-start", json_body={"number": number, "brand": "Acme"})
        assert response.status_code == 202, response.text
        return str(response.json()["request_id"])

    def fake_vonage(self, status: int) -> None:
        """Vonage answers ``status`` with an empty body from now on (a gateway in the way)."""
        self.receiver.respond(status, times=20)
        self.stack.configure(VONAGE_API_BASE_URL=self.receiver.url, VONAGE_REST_BASE_URL=self.receiver.url)

    def vonage_times_out(self, api: str) -> None:
        from sandbox import FaultRule

        self.stack.configure(VONAGE_TIMEOUT_SECONDS="0.5", VONAGE_MAX_RETRIES="0")
        self.stack.sandbox.set_faults(FaultRule("timeout", api=api, value=1.5, count=1))

    def no_credit(self, balance: str = "0") -> None:
        self.stack.sandbox.configure(balance=balance)


def _too_large(errors: _Errors, label: str) -> httpx.Response:
    from shared.config import Settings

    return errors.call(label, content=b'{"x": "' + b"a" * Settings().max_body_bytes + b'"}')


def _send_in_progress(errors: _Errors, label: str) -> httpx.Response:
    from shared.config import Settings
    from shared.messages import idempotency as idem
    from shared.messages.request import parse_send_request
    from shared.messages.service import caller_scope

    body = {"to": GB_MOBILE, "text": "held"}
    fingerprint = parse_send_request(body, Settings.from_env()).fingerprint
    key = idem.store_key(caller_scope(HARDENING_API_TOKEN), "held-key")
    idem.claim(errors.stack.store, key, fingerprint, in_progress_ttl=60)  # another attempt is sending it
    return errors.call(label, json_body=body, headers={"Idempotency-Key": "held-key"})


def _verify_in_flight_but_ended_here(errors: _Errors, label: str) -> httpx.Response:
    from shared.verify.records import VerificationStatus, update_record

    request_id = errors.start()
    update_record(errors.stack.store, request_id, lambda r: r.finish(VerificationStatus.CANCELLED, now=r.created_at + 1, reason="test"))
    return errors.call(label, json_body={"number": VERIFY_MOBILE, "brand": "Acme"})


def _checked_twice(errors: _Errors, label: str) -> httpx.Response:
    request_id = errors.start()
    code = errors.stack.sandbox.last_code(VERIFY_MOBILE)
    assert errors.call(label, json_body={"request_id": request_id, "code": code}).status_code == 200
    return errors.call(label, json_body={"request_id": request_id, "code": code})


def _wrong_code(errors: _Errors, label: str, times: int) -> httpx.Response:
    request_id = errors.start()
    code = errors.stack.sandbox.last_code(VERIFY_MOBILE)
    wrong = "0000" if code != "0000" else "1111"
    for _ in range(times - 1):
        errors.call(label, json_body={"request_id": request_id, "code": wrong})
    return errors.call(label, json_body={"request_id": request_id, "code": wrong})


def _cancel_request(errors: _Errors, label: str, request_id: str) -> httpx.Response:
    if not label.endswith("{request_id}"):
        return errors.call(label, json_body={"request_id": request_id})
    return errors.call(label, path=f"/verify-cancel/{request_id}")


def _after_start(errors: _Errors, label: str, then: Callable[[], None], check: bool = False) -> httpx.Response:
    request_id = errors.start()
    errors.monkeypatch.setattr("shared.verify.service.CANCEL_MIN_AGE", 0.0)
    then()
    if check:
        return errors.call(label, json_body={"request_id": request_id, "code": "1234"})
    return _cancel_request(errors, label, request_id)


def _next_request(errors: _Errors, label: str, request_id: str) -> httpx.Response:
    if not label.endswith("{request_id}"):
        return errors.call(label, json_body={"request_id": request_id})
    return errors.call(label, path=f"/verify-next/{request_id}")


def _next_after_start(errors: _Errors, label: str, then: Callable[[], None] | None = None, times: int = 1) -> httpx.Response:
    request_id = errors.start()
    if then is not None:
        then()
    for _ in range(times - 1):
        _next_request(errors, label, request_id)
    return _next_request(errors, label, request_id)


_CANCELS = ("POST /verify-cancel", "DELETE /verify-cancel", "POST /verify-cancel/{request_id}", "DELETE /verify-cancel/{request_id}")
_STATUS_VERIFY_BAD = {"request_id": "", "type": "event", "channel": "sms", "status": "completed"}

# (operation, status) -> how to produce it. Generic rows are expanded for every operation below.
TRIGGERS: dict[tuple[str, int], Callable[[_Errors, str], httpx.Response]] = {
    ("POST /send", 402): lambda e, l: (e.no_credit(), e.valid(l))[1],
    ("POST /send", 409): _send_in_progress,
    ("POST /send", 422): lambda e, l: e.call(l, json_body={"to": "not a number", "text": "x"}),
    ("POST /send", 429): lambda e, l: (e.stack.configure(SEND_BUDGET_PER_TOKEN="1/86400"), e.valid(l), e.valid(l))[2],
    ("POST /send", 502): lambda e, l: (e.no_credit("0.0333"), e.call(l, json_body={"to": GB_MOBILE, "api": "sms", "text": "x" * 200}))[1],
    ("POST /send", 504): lambda e, l: (e.vonage_times_out("messages"), e.valid(l))[1],
    ("GET /send/{id}", 404): lambda e, l: e.call(l),
    ("POST /verify-start", 402): lambda e, l: (e.no_credit(), e.valid(l))[1],
    ("POST /verify-start", 403): lambda e, l: (e.stack.configure(VERIFY_ALLOWED_COUNTRIES="US"), e.valid(l))[1],
    ("POST /verify-start", 409): _verify_in_flight_but_ended_here,
    ("POST /verify-start", 422): lambda e, l: e.call(l, json_body={"number": "12", "brand": "Acme"}),
    ("POST /verify-start", 429): lambda e, l: (e.stack.configure(VERIFY_LIMIT_PER_NUMBER="1/600"), e.valid(l), e.valid(l))[2],
    ("POST /verify-start", 502): lambda e, l: (e.fake_vonage(418), e.valid(l))[1],
    ("POST /verify-start", 504): lambda e, l: (e.vonage_times_out("verify"), e.valid(l))[1],
    ("POST /verify-check", 400): lambda e, l: _wrong_code(e, l, 1),
    ("POST /verify-check", 403): lambda e, l: (e.stack.configure(VERIFY_PUBLIC="true", CORS_ORIGINS="https://shop.example",
                                                                 VERIFY_ALLOWED_COUNTRIES="GB", VERIFY_BRAND="Acme"),
                                               e.valid(l, auth=False, headers={"Origin": "https://evil.example"}))[1],
    ("POST /verify-check", 404): lambda e, l: e.valid(l),
    ("POST /verify-check", 409): _checked_twice,
    ("POST /verify-check", 410): lambda e, l: _wrong_code(e, l, 3),
    ("POST /verify-check", 422): lambda e, l: e.call(l, json_body={"request_id": "c11236f4", "code": 1234}),
    ("POST /verify-check", 502): lambda e, l: _after_start(e, l, lambda: e.fake_vonage(418), check=True),
    ("POST /verify-check", 504): lambda e, l: _after_start(e, l, lambda: e.vonage_times_out("verify"), check=True),
    ("POST /verify-next", 403): lambda e, l: (e.stack.configure(VERIFY_PUBLIC="true", CORS_ORIGINS="https://shop.example",
                                                                VERIFY_ALLOWED_COUNTRIES="GB", VERIFY_BRAND="Acme"),
                                              e.valid(l, auth=False, headers={"Origin": "https://evil.example"}))[1],
    ("GET /inbound", 422): lambda e, l: e.call(l, params={"limit": "0"}),
    ("GET /balance", 403): lambda e, l: (e.stack.configure(API_TOKENS=f"mailer:{HARDENING_API_TOKEN}:send"), e.valid(l))[1],
    ("GET /balance", 502): lambda e, l: (e.fake_vonage(418), e.valid(l))[1],
    ("GET /balance", 503): lambda e, l: (e.fake_vonage(503), e.valid(l))[1],
    ("POST /status", 422): lambda e, l: e.call(l, json_body=_STATUS_VERIFY_BAD),
}
for _label in _CANCELS:
    TRIGGERS[(_label, 404)] = lambda e, l: _cancel_request(e, l, "c11236f4-00bf-4b89-84ba-0123456789ab")
    TRIGGERS[(_label, 409)] = lambda e, l: _cancel_request(e, l, e.start())  # within Vonage's first 30 s
    TRIGGERS[(_label, 422)] = lambda e, l: _cancel_request(e, l, "not!an!id")
    TRIGGERS[(_label, 502)] = lambda e, l: _after_start(e, l, lambda: e.fake_vonage(418))
    TRIGGERS[(_label, 504)] = lambda e, l: _after_start(e, l, lambda: e.vonage_times_out("verify"))
for _label in ("POST /verify-next", "POST /verify-next/{request_id}"):
    TRIGGERS[(_label, 404)] = lambda e, l: _next_request(e, l, "c11236f4-00bf-4b89-84ba-0123456789ab")
    TRIGGERS[(_label, 409)] = lambda e, l: _next_after_start(e, l, times=2)  # [sms, voice]: nothing after voice
    TRIGGERS[(_label, 422)] = lambda e, l: _next_request(e, l, "not!an!id")
    TRIGGERS[(_label, 502)] = lambda e, l: _next_after_start(e, l, lambda: e.fake_vonage(418))
    TRIGGERS[(_label, 504)] = lambda e, l: _next_after_start(e, l, lambda: e.vonage_times_out("verify"))
_GENERIC: dict[int, Callable[[_Errors, str], httpx.Response]] = {
    400: lambda e, l: e.call(l, content=b'{"not json'),
    401: lambda e, l: e.valid(l, auth=False),
    413: _too_large,
    500: lambda e, l: e.misconfigured(l),
    503: lambda e, l: e.store_down(l),
}
for _label in LABELS:
    for _status, _trigger in _GENERIC.items():
        if str(_status) in _operation(_label)["responses"]:
            TRIGGERS.setdefault((_label, _status), _trigger)
TRIGGERS[("GET /status", 400)] = lambda e, l: e.call(l, params={"status": "delivered"})  # no messageId
# Cancelling takes a batch id (docs/queue.md): an unknown batch is 404, the rest as usual.
_BATCH_PATH = "/send/bat_" + "0" * 32


def _store_down_then(e: Any, l: str) -> httpx.Response:
    e.store_down("GET /send/{id}")  # patches the store; the GET's own answer is not the point
    return e.call(l, path=_BATCH_PATH)


def _misconfigured_then(e: Any, l: str) -> httpx.Response:
    e.stack.configure(API_TOKENS=None)
    return e.call(l, path=_BATCH_PATH)


TRIGGERS[("DELETE /send/{id}", 401)] = lambda e, l: e.call(l, auth=False, path=_BATCH_PATH)
TRIGGERS[("DELETE /send/{id}", 404)] = lambda e, l: e.call(l, path=_BATCH_PATH)
TRIGGERS[("DELETE /send/{id}", 500)] = _misconfigured_then
TRIGGERS[("DELETE /send/{id}", 503)] = _store_down_then

DOCUMENTED_ERRORS = [(label, int(status)) for label in LABELS for status in _operation(label)["responses"] if int(status) >= 400]


def test_every_documented_error_has_a_trigger_and_every_trigger_is_documented() -> None:
    assert sorted(set(DOCUMENTED_ERRORS) - set(TRIGGERS)) == []
    assert sorted(set(TRIGGERS) - set(DOCUMENTED_ERRORS)) == []


@pytest.mark.parametrize(("label", "status"), DOCUMENTED_ERRORS, ids=[f"{l} {s}" for l, s in DOCUMENTED_ERRORS])
def test_every_documented_error_is_returned_in_the_documented_shape(
    hardening_stack: Any, monkeypatch: pytest.MonkeyPatch, webhook_receiver: Any, label: str, status: int
) -> None:
    errors = _Errors(hardening_stack, monkeypatch, webhook_receiver)
    try:
        response = TRIGGERS[(label, status)](errors, label)
    finally:
        errors.http.close()
    assert response.status_code == status, f"{label}: expected {status}, got {response.status_code}: {response.text[:300]}"
    _assert_matches(label, response)
    for name in ("traceback", 'file "/'):
        assert name not in response.text.lower()


