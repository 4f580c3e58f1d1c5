from __future__ import annotations

import pytest

from shared.config import RateLimit, Settings
from shared.errors import ConfigError


def test_defaults_need_no_environment():
    settings = Settings.from_env({})
    assert settings.state_backend == "sqlite"
    assert settings.api_base_url == "https://api.nexmo.com"
    assert settings.rest_base_url == "https://rest.nexmo.com"
    assert settings.signature_method == "md5hash"
    assert settings.api_tokens == ()
    assert settings.verify_limit_number == RateLimit(3, 600)


def test_values_are_parsed_and_normalised():
    settings = Settings.from_env(
        {
            "VONAGE_API_KEY": "key1",
            "VONAGE_API_SECRET": "s3cr3t",
            "API_TOKENS": " tok-a, tok-b ,,",
            "VONAGE_SIGNATURE_METHOD": "SHA256",
            "VONAGE_API_BASE_URL": "http://127.0.0.1:9000/",
            "DEFAULT_REGION": "gb",
            "VERIFY_ALLOWED_COUNTRIES": "gb,us",
            "VERIFY_LIMIT_PER_NUMBER": "5/3600",
            "VERIFY_PUBLIC": "yes",
            "VONAGE_MAX_RPS": "12.5",
        }
    )
    assert settings.api_tokens == ("tok-a", "tok-b")
    assert settings.signature_method == "sha256"
    assert settings.api_base_url == "http://127.0.0.1:9000"
    assert settings.default_region == "GB"
    assert settings.verify_allowed_countries == ("GB", "US")
    assert settings.verify_limit_number == RateLimit(5, 3600)
    assert settings.verify_public is True
    assert settings.max_rps == 12.5
    assert settings.has_key_secret and not settings.has_application


def test_every_problem_is_named_once_and_no_value_is_echoed():
    env = {
        "VONAGE_SIGNATURE_METHOD": "rot13-secretvalue",
        "VONAGE_REST_BASE_URL": "ftp://secretvalue",
        "VONAGE_MAX_RPS": "fast-secretvalue",
        "VERIFY_LIMIT_PER_IP": "lots-secretvalue",
        "STATE_BACKEND": "redis-secretvalue",
        "DEFAULT_REGION": "Britain-secretvalue",
        "VONAGE_APPLICATION_ID": "app-id",
        "INBOUND_HANDLER": "no-colon-secretvalue",
        "VERIFY_PUBLIC": "maybe-secretvalue",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    problems = caught.value.problems
    for name in (
        "VONAGE_SIGNATURE_METHOD",
        "VONAGE_REST_BASE_URL",
        "VONAGE_MAX_RPS",
        "VERIFY_LIMIT_PER_IP",
        "STATE_BACKEND",
        "DEFAULT_REGION",
        "VONAGE_PRIVATE_KEY",
        "INBOUND_HANDLER",
        "VERIFY_PUBLIC",
    ):
        assert sum(name in problem for problem in problems) == 1, (name, problems)
    assert "secretvalue" not in str(caught.value)
    assert "secretvalue" not in str(caught.value.to_dict())


def test_backend_choice_follows_the_environment():
    assert Settings.from_env({"FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}).state_backend == "firestore"
    assert Settings.from_env({"K_SERVICE": "send", "GOOGLE_CLOUD_PROJECT": "p"}).state_backend == "firestore"
    assert Settings.from_env({"K_SERVICE": "send"}).state_backend == "sqlite"
    explicit = Settings.from_env({"STATE_BACKEND": "sqlite", "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"})
    assert explicit.state_backend == "sqlite" and explicit.state_backend_reason == "STATE_BACKEND"


def test_each_function_checks_only_what_it_needs():
    settings = Settings.from_env({"VONAGE_SIGNATURE_SECRET": "sig"})
    with pytest.raises(ConfigError, match="VONAGE_API_KEY is not set; VONAGE_API_SECRET is not set"):
        settings.require_key_secret()
    with pytest.raises(ConfigError, match="VONAGE_APPLICATION_ID"):
        settings.require_application()
    with pytest.raises(ConfigError, match="API_TOKENS"):
        settings.require_api_tokens()


def test_secrets_stay_out_of_repr():
    settings = Settings.from_env(
        {"VONAGE_API_KEY": "k", "VONAGE_API_SECRET": "topsecret", "API_TOKENS": "tokentoken", "WEBHOOK_TOKEN": "hooktoken"}
    )
    text = repr(settings)
    for secret in ("topsecret", "tokentoken", "hooktoken"):
        assert secret not in text


@pytest.mark.parametrize(
    ("env", "backend", "bulk_limit"),
    [
        ({}, "embedded", 100_000),  # the local run: a queue with nothing to configure
        ({"CLOUD_TASKS_QUEUE": "projects/p/locations/l/queues/q"}, "cloudtasks", 100_000),
        ({"K_SERVICE": "vonage-send"}, "none", 1000),  # Cloud Run: no CPU between requests for a worker
        ({"AWS_LAMBDA_FUNCTION_NAME": "f"}, "none", 1000),
        ({"QUEUE_BACKEND": "none"}, "none", 1000),
        ({"QUEUE_BACKEND": "EMBEDDED", "K_SERVICE": "x"}, "embedded", 100_000),
        ({"QUEUE_BACKEND": "embedded", "BULK_MAX_RECIPIENTS": "50"}, "embedded", 50),
    ],
)
def test_the_queue_follows_the_environment(env, backend, bulk_limit):
    settings = Settings.from_env(env)
    assert settings.queue_backend == backend and settings.bulk_max_recipients == bulk_limit
    assert settings.send_max_body_bytes == (4 * 1024 * 1024 if backend != "none" else 256 * 1024)
    assert settings.max_body_bytes == 256 * 1024  # every other function keeps the small limit


def test_a_bad_queue_setting_is_named():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"QUEUE_BACKEND": "rabbit", "QUEUE_MAX_ATTEMPTS": "0"})
    assert caught.value.problems == [
        "QUEUE_BACKEND must be one of cloudtasks, embedded, none",
        "QUEUE_MAX_ATTEMPTS must be at least 1",
    ]
