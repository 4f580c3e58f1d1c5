"""Schemathesis, driven by the OpenAPI document, against the running one-process app.

Every documented operation is called over real HTTP with generated requests, both ones the
document allows (positive) and ones it forbids (negative: wrong types, missing and extra
fields, out-of-range values). Each answer must be: not a 5xx, a documented status with the
documented content type and a body matching the documented schema (the one error shape for
every refusal), and for a forbidden request to a caller-facing function, a 4xx refusal.
(The webhooks accept more than the document promises on purpose: Vonage's formats vary,
older shapes included, and a refused webhook is an event lost; the inbound listing ignores
unknown query parameters, as its path also takes the SMS API's GET webhook. Only the other
checks apply to them.) Callers authenticate with the API token; webhooks with ``?token=`` (so generated
payloads reach the parsers).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from tests.fixtures.hardening import HARDENING_API_TOKEN, HARDENING_WEBHOOK_TOKEN, fuzz_settings
from tests.hardening.openapi_doc import load, operations

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # the long profile runs ten times as many examples

DOCUMENT = load()
LABELS = [f"{method.upper()} {path}" for path, method, _ in operations(DOCUMENT)]
WEBHOOK_OPERATIONS = {"POST /inbound", "POST /status", "GET /status"}
# Operations that ignore what they do not know, on purpose: the webhooks (Vonage's formats vary)
# and the inbound listing (its path also takes the SMS API's GET webhook, whose fields vary).
LENIENT = WEBHOOK_OPERATIONS | {"GET /inbound"}
EXAMPLES = 40  # per operation and mode; HARDENING_PROFILE=long runs ten times as many


def _schema() -> Any:
    import schemathesis

    return schemathesis.openapi.from_dict(load())


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize("label", LABELS)
def test_every_answer_is_documented(hardening_stack: Any, label: str, mode: str) -> None:
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    method, path = label.split(" ", 1)
    operation = _schema()[path][method]
    generation = GenerationMode.POSITIVE if mode == "positive" else GenerationMode.NEGATIVE
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    if mode == "negative" and label not in LENIENT:
        checks.append(negative_data_rejection)

    @fuzz_settings(EXAMPLES)
    @given(case=operation.as_strategy(generation_mode=generation))
    def call(case: Any) -> None:
        headers = {"Authorization": f"Bearer {HARDENING_API_TOKEN}"}
        params: dict[str, Any] = {}
        if label in WEBHOOK_OPERATIONS:
            headers = {}
            params = {"token": HARDENING_WEBHOOK_TOKEN}
        response = case.call(base_url=hardening_stack.url, headers=headers, params=params, timeout=30)
        assert "Traceback" not in response.text
        case.validate_response(response, checks=checks)

    call()
