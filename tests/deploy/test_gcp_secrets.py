"""scripts/gcp-secrets.sh: credentials go to Secret Manager on stdin, never on a command line."""

from __future__ import annotations

import pytest

from tests.fixtures.deploy import flag_value

SCRIPT = "scripts/gcp-secrets.sh"


def test_new_secrets_are_created_and_existing_ones_get_a_version(fake_gcloud):
    result = fake_gcloud.run_script(
        SCRIPT, "--project", "p1",
        env={"FAKE_GCLOUD_SECRETS": "vonage-api-key", "VONAGE_API_KEY": "key-1", "VONAGE_API_SECRET": "sec-ret-2",
             "API_TOKENS": "tok-a,tok-b"},
    )
    assert result.returncode == 0, result.stderr
    writes = [c for c in result.calls if c[:2] == ["secrets", "create"] or c[:3] == ["secrets", "versions", "add"]]
    assert [(c[1], c[2] if c[1] == "create" else c[3]) for c in writes] == [
        ("versions", "vonage-api-key"), ("create", "vonage-api-secret"), ("create", "api-tokens"),
    ]
    for call in writes:
        assert "--data-file=-" in call and flag_value(call, "--project") == "p1"
    assert [value for _, value in fake_gcloud.stdin_records()] == ["key-1", "sec-ret-2", "tok-a,tok-b"]
    for secret in ("sec-ret-2", "tok-a,tok-b"):
        assert not any(secret in arg for call in result.calls for arg in call)
        assert secret not in result.stdout + result.stderr
    assert result.calls[1][:3] == ["services", "enable", "secretmanager.googleapis.com"]


def test_a_private_key_path_is_read_by_gcloud_from_the_file(fake_gcloud, tmp_path):
    key = tmp_path / "private.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", encoding="utf-8")
    result = fake_gcloud.run_script(SCRIPT, "--project", "p1", "--secret-prefix", "qa-",
                                    env={"FAKE_GCLOUD_SECRETS": "", "VONAGE_PRIVATE_KEY": str(key)})
    assert result.returncode == 0, result.stderr
    (create,) = [c for c in result.calls if c[:2] == ["secrets", "create"]]
    assert create[2] == "qa-vonage-private-key"
    assert flag_value(create, "--data-file") == str(key)


def test_nothing_set_means_nothing_stored_and_a_clear_error(fake_gcloud):
    result = fake_gcloud.run_script(SCRIPT, "--project", "p1")
    assert result.returncode == 1
    assert "nothing to store" in result.stderr


def test_dry_run_names_every_secret_without_its_value(fake_gcloud, no_gcloud_path):
    result = fake_gcloud.run_script(SCRIPT, "--project", "p1", "--dry-run", path=no_gcloud_path,
                                    env={"VONAGE_SIGNATURE_SECRET": "sig-value-9", "WEBHOOK_TOKEN": "wt-value-8"})
    assert result.returncode == 0, result.stderr
    assert "vonage-signature-secret" in result.stdout and "webhook-token" in result.stdout
    assert "sig-value-9" not in result.stdout and "wt-value-8" not in result.stdout


@pytest.mark.parametrize("env, message", [({"FAKE_GCLOUD_ACCOUNT": ""}, "not logged in")])
def test_not_logged_in_stops_before_anything(fake_gcloud, env, message):
    result = fake_gcloud.run_script(SCRIPT, "--project", "p1", env={**env, "API_TOKENS": "t"})
    assert result.returncode == 2 and message in result.stderr
    assert [c[:2] for c in result.calls] == [["auth", "list"]]
