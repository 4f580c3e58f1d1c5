"""The /_sandbox/ control and inspection endpoints."""

from __future__ import annotations

from tests.fixtures.sandbox import SANDBOX_API_SECRET, SANDBOX_SIGNATURE_SECRET
from tests.sandbox._helpers import TO, client, post_json, send_sms, sms_message


def test_messages_requests_and_deliveries_are_listed(sandbox, webhook_receiver) -> None:
    send_sms(sandbox.url, text="one")
    post_json(sandbox.url, "/v1/messages", sms_message(to="12"))  # refused: a request, not a message
    assert sandbox.wait_idle()
    with client() as http:
        messages = http.get(f"{sandbox.url}/_sandbox/messages").json()["messages"]
        requests = http.get(f"{sandbox.url}/_sandbox/requests").json()["requests"]
        deliveries = http.get(f"{sandbox.url}/_sandbox/deliveries", params={"kind": "sms-dlr"}).json()["deliveries"]
    assert [m["text"] for m in messages] == ["one"]
    assert [(r["api"], r["status"], r["outcome"]) for r in requests] == [("sms", 200, "0"), ("messages", 422, "422")]
    assert requests[0]["fields"]["text"] == "one" and requests[0]["auth"] == "basic"
    assert deliveries[0]["attempts"][0]["status"] == 200
    assert deliveries[0]["fields"]["messageId"] == messages[0]["message_ids"][0]


def test_inbox_endpoint_needs_a_number(sandbox) -> None:
    send_sms(sandbox.url, text="Your parcel is on its way")
    with client() as http:
        assert http.get(f"{sandbox.url}/_sandbox/inbox").status_code == 400
        inbox = http.get(f"{sandbox.url}/_sandbox/inbox", params={"to": TO}).json()
    assert inbox["messages"][0]["text"] == "Your parcel is on its way"


def test_config_can_be_read_and_changed_without_showing_secrets(sandbox) -> None:
    with client() as http:
        before = http.get(f"{sandbox.url}/_sandbox/config").json()
        changed = http.post(
            f"{sandbox.url}/_sandbox/config", json={"trial": True, "allow_list": ["447700900002"], "balance": "1.5"}
        ).json()
        bad = http.post(f"{sandbox.url}/_sandbox/config", json={"no_such_setting": 1})
    assert SANDBOX_API_SECRET not in str(before) and SANDBOX_SIGNATURE_SECRET not in str(before)
    assert "BEGIN" not in str(before)
    assert before["has_private_key"] is True
    assert changed["trial"] is True and changed["current_balance"] == "1.50000000"
    assert bad.status_code == 400
    assert send_sms(sandbox.url).json()["messages"][0]["status"] == "29"


def test_reset_forgets_everything_and_restores_the_balance(sandbox) -> None:
    send_sms(sandbox.url)
    assert sandbox.wait_idle()
    with client() as http:
        assert http.post(f"{sandbox.url}/_sandbox/reset").json() == {"reset": True}
    assert sandbox.messages() == [] and sandbox.requests() == [] and sandbox.deliveries() == []
    assert sandbox.inbox(TO) == []
    assert sandbox.balance == "10.00000000"


def test_wait_idle_and_health_endpoints(sandbox) -> None:
    with client() as http:
        assert http.get(f"{sandbox.url}/_sandbox/health").json() == {"ok": True}
        assert http.post(f"{sandbox.url}/_sandbox/wait_idle", params={"timeout": "2"}).json() == {"idle": True}
        assert http.get(f"{sandbox.url}/_sandbox/nothing").status_code == 404
        assert http.get(f"{sandbox.url}/_sandbox/reset").status_code == 405


def test_unknown_paths_and_methods(sandbox) -> None:
    with client() as http:
        assert http.get(f"{sandbox.url}/v3/whatever").status_code == 404
        wrong_method = http.get(f"{sandbox.url}/sms/json")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
