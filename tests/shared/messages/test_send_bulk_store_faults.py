"""A bulk send meeting a store failure (issue 16's flaky chaos run).

One transient store error used to stop the whole list: the recipients after it came back
``not_attempted``, so on a store failing a few per cent of calls every retry stopped again
after a handful of recipients and a caller could retry 200 times without finishing. Now the
error fails only its recipient (nothing was sent to it) and the others go on; account-level
errors still stop the list.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.errors import ServiceError, StoreError
from shared.messages import service
from shared.messages.records import MESSAGES
from shared.messages.service import send_messages
from shared.store.sqlite import SQLiteStateStore
from shared.vonage.client import VonageClient
from tests.fixtures.store import DelegatingStore
from tests.shared.messages.test_send_service import sandbox_settings

NUMBERS = ["+447911123450", "+447911123451", "+447911123452", "+447911123453"]


class _FailsFirstRecordCreate(DelegatingStore):
    """The first message record write fails, as a store refusing one call does."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.failed = False

    def _before(self, method: str, collection: str) -> None:
        # The record is written with the key's claim and the budgets (hit_many's charges: one
        # update each on this wrapper, which has no multi-document transaction).
        if method in ("create", "update") and collection == MESSAGES and not self.failed:
            self.failed = True
            raise StoreError(f"injected: the store refused {method}")


@pytest.fixture
def sequential(monkeypatch: pytest.MonkeyPatch) -> None:
    # One worker: the recipients run in list order, so "after the failure" is well defined.
    monkeypatch.setattr(service, "BULK_WORKERS", 1)


def test_a_store_error_fails_only_its_recipient_and_the_rest_are_sent(sandbox_factory, store_clock, sequential):
    sandbox = sandbox_factory()
    settings = sandbox_settings(sandbox)
    inner = SQLiteStateStore(clock=store_clock)
    store = _FailsFirstRecordCreate(inner)
    with VonageClient(settings) as client:
        outcome = send_messages({"to": NUMBERS, "text": "hello", "api": "sms"}, idempotency_key="bulk-1",
                                settings=settings, store=store, vonage=client, clock=store_clock)
        assert outcome.status == 202
        results = outcome.body["results"]
        assert [r["status"] for r in results] == ["failed", "submitted", "submitted", "submitted"]
        assert results[0]["error"]["code"] == "store_unavailable"
        assert outcome.body["summary"]["sent"] == 3 and outcome.body["summary"]["failed"] == 1
        assert sorted("+" + m["to"] for m in sandbox.messages()) == NUMBERS[1:]
        assert len(inner.query(MESSAGES, limit=10)) == 3

        # the same request again sends only the one that failed, and replays the others
        again = send_messages({"to": NUMBERS, "text": "hello", "api": "sms"}, idempotency_key="bulk-1",
                              settings=settings, store=store, vonage=client, clock=store_clock)
        assert [r["status"] for r in again.body["results"]] == ["submitted"] * 4
        assert [bool(r.get("replayed")) for r in again.body["results"]] == [False, True, True, True]
        assert sorted("+" + m["to"] for m in sandbox.messages()) == sorted(NUMBERS)
    inner.close()


def test_an_account_level_error_still_stops_the_list(sandbox_factory, store_clock, sequential):
    sandbox = sandbox_factory()
    settings = sandbox_settings(sandbox, api_secret="wrong-secret")
    with SQLiteStateStore(clock=store_clock) as store, VonageClient(settings) as client:
        with pytest.raises(ServiceError) as info:
            send_messages({"to": NUMBERS, "text": "hello", "api": "sms"}, idempotency_key="bulk-2",
                          settings=settings, store=store, vonage=client, clock=store_clock)
    assert info.value.code == "misconfigured_vonage_credentials"
    assert info.value.details["summary"]["total"] == 4 and info.value.details["summary"]["sent"] == 0
    assert len(sandbox.requests(api="sms")) == 1, "the list stopped at the first account-level refusal"
