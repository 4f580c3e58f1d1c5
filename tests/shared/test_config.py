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
            "VERIFY_BRAND": "Acme",
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


def test_database_url_chooses_postgres_unless_firestore_is_configured():
    url = "postgresql://app:pw-0123456789@db.example:5432/app"
    chosen = Settings.from_env({"DATABASE_URL": url})
    assert (chosen.state_backend, chosen.state_backend_reason) == ("postgres", "DATABASE_URL is set")
    assert chosen.database_url == url and "pw-0123456789" not in repr(chosen)
    assert Settings.from_env({"DATABASE_URL": url, "FIRESTORE_EMULATOR_HOST": "127.0.0.1:1"}).state_backend == "firestore"
    on_gcp = {"DATABASE_URL": url, "K_SERVICE": "send", "GOOGLE_CLOUD_PROJECT": "p"}
    assert Settings.from_env(on_gcp).state_backend == "firestore"
    assert Settings.from_env({**on_gcp, "STATE_BACKEND": "postgres"}).state_backend == "postgres"
    assert Settings.from_env({"DATABASE_URL": url, "STATE_BACKEND": "sqlite"}).state_backend == "sqlite"
    plain = Settings.from_env({})
    assert (plain.state_backend, plain.state_backend_reason) == ("sqlite", "neither Firestore nor DATABASE_URL configured")


def test_postgres_without_database_url_is_a_config_error():
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        Settings.from_env({"STATE_BACKEND": "postgres"})


def test_postgres_pool_follows_the_server_threads():
    assert Settings.from_env({}).postgres_pool_size == 8
    assert Settings.from_env({"THREADS": "16"}).postgres_pool_size == 16
    assert Settings.from_env({"THREADS": "16", "POSTGRES_POOL_SIZE": "4"}).postgres_pool_size == 4
    with pytest.raises(ConfigError, match="POSTGRES_POOL_SIZE"):
        Settings.from_env({"POSTGRES_POOL_SIZE": "0"})
@pytest.mark.parametrize(("value", "hint"), [("UK", "use GB"), ("XX", "ISO 3166")])
def test_default_region_must_be_one_phonenumbers_knows(value, hint):
    # DEFAULT_REGION=UK used to be accepted and then made every national number invalid.
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"DEFAULT_REGION": value})
    (problem,) = [p for p in info.value.problems if "DEFAULT_REGION" in p]
    assert f"DEFAULT_REGION={value} is not a region code phonenumbers knows" in problem and hint in problem
    assert Settings.from_env({"DEFAULT_REGION": "gb"}).default_region == "GB"


def test_no_credentials_at_all_names_both_ways_in():
    settings = Settings.from_env({})
    for require in (settings.require_key_secret, settings.require_application):
        with pytest.raises(ConfigError) as info:
            require()
        message = info.value.message
        assert "VONAGE_API_KEY and VONAGE_API_SECRET" in message
        assert "VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY" in message
    # with one pair set, only what this call is missing is named
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"VONAGE_API_KEY": "k", "VONAGE_API_SECRET": "s"}).require_application()
    assert "no Vonage credentials" not in info.value.message
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
