"""/readyz of the one-process app: ready only when the store answers and the configured
private key can be loaded (a key file that is missing would fail only on the first paid call)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def ready(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    import os

    from shared import deps

    for name in list(os.environ):
        if name.startswith(("VONAGE_", "STATE_", "API_TOKENS", "DEFAULT_REGION", "FIRESTORE_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STATE_BACKEND", "sqlite")
    monkeypatch.setenv("STATE_SQLITE_PATH", str(tmp_path / "ready.sqlite3"))

    def get(**env: str) -> Any:
        from app import create_app

        for name, value in env.items():
            monkeypatch.setenv(name, value)
        deps.reset()
        return create_app().test_client().get("/readyz")

    yield get
    deps.reset()


def test_a_private_key_file_that_is_missing_fails_readyz(ready: Any, tmp_path: Any) -> None:
    response = ready(VONAGE_APPLICATION_ID="aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab",
                     VONAGE_PRIVATE_KEY=str(tmp_path / "private.key"))
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert error["code"] == "misconfigured" and "VONAGE_PRIVATE_KEY" in error["message"]
    assert str(tmp_path) not in response.get_data(as_text=True)  # the path is not echoed


def test_a_readable_private_key_file_is_ready(ready: Any, tmp_path: Any, rsa_private_pem: str) -> None:
    key = tmp_path / "private.key"
    key.write_text(rsa_private_pem)
    response = ready(VONAGE_APPLICATION_ID="aaaaaaaa-bbbb-4ccc-8ddd-0123456789ab", VONAGE_PRIVATE_KEY=str(key))
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "store": "sqlite"}


def test_no_private_key_is_ready_too(ready: Any) -> None:
    assert ready().get_json() == {"status": "ok", "store": "sqlite"}


def test_a_function_whose_code_cannot_load_fails_readyz_and_answers_json(ready: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The one-process app builds each function at its first request (cold start); /readyz builds
    # them all, so a deployment that cannot serve one is not ready before traffic finds out.
    import app

    monkeypatch.setitem(app.FUNCTIONS, "/send", ("tests.deploy.no_such_module", "send"))
    response = ready()
    assert response.status_code == 500
    error = response.get_json()["error"]
    assert error["code"] == "misconfigured" and "send function could not be loaded" in error["message"]
    served = app.create_app().test_client().post("/send", json={})
    assert served.status_code == 500 and served.get_json()["error"]["code"] == "misconfigured"
    assert "Traceback" not in served.get_data(as_text=True)


def test_the_app_builds_a_function_at_its_first_request_only() -> None:
    import app

    application = app.create_app()
    mounts = application.wsgi_app.mounts
    assert all(not mount.loaded for mount in mounts.values())
    assert application.test_client().get("/healthz").get_json()["functions"] == sorted(app.FUNCTIONS)
    application.test_client().get("/status")
    assert [path for path, mount in mounts.items() if mount.loaded] == ["/status"]
