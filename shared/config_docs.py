"""What each environment variable of ``Settings.from_env`` means: the one source of the docs.

The configuration reference (docs/configuration.md) is generated from this table at build time
(scripts/mkdocs_hooks.py), with each default read from the ``Settings`` dataclass field it
fills, so neither can drift from the code. ``tests/test_docs.py`` fails when ``from_env`` reads
a variable that is documented nowhere, or when this table names one it does not read.

Adding a variable: one line here (its group, the ``Settings`` field or a literal default, and
what it does). A variable documented on its own docs page (a feature's page) is found there too.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GROUPS", "VARIABLES", "VariableDoc"]


@dataclass(frozen=True)
class VariableDoc:
    """One variable: where it belongs, what fills it, what it means."""

    group: str
    meaning: str
    field: str | None = None  # the Settings field it sets: its default is shown
    default: str | None = None  # when there is no field (or the field's default misleads)


GROUPS = (
    "Vonage account",
    "Callers",
    "State store",
    "Phone numbers",
    "Sending",
    "Verify",
    "Webhooks",
    "HTTP and logs",
)

_V, _C, _S, _P, _SEND, _VER, _W, _H = GROUPS

VARIABLES: dict[str, VariableDoc] = {
    # Vonage account
    "VONAGE_API_KEY": VariableDoc(_V, "API key (dashboard, API Settings): SMS API, legacy Verify, Basic auth; the `api_key` claim webhook JWTs must carry.", "api_key"),
    "VONAGE_API_SECRET": VariableDoc(_V, "API secret, with `VONAGE_API_KEY`. Secret.", "api_secret"),
    "VONAGE_APPLICATION_ID": VariableDoc(_V, "Application id: the Messages API and Verify v2 authenticate with an RS256 JWT of this application. Set with `VONAGE_PRIVATE_KEY`, or neither.", "application_id"),
    "VONAGE_PRIVATE_KEY": VariableDoc(_V, "The application's private key: the PEM text, the PEM with literal `\\n` escapes, base64 of the PEM, or a path to the key file (PKCS#8 or PKCS#1). Secret.", "private_key"),
    "VONAGE_BRAND_NUMBER": VariableDoc(_V, "Default sender (`from`) of sends and replies; the WhatsApp Business number for Verify's `whatsapp` channel.", "brand_number"),
    "VONAGE_SIGNATURE_SECRET": VariableDoc(_V, "Signature secret (dashboard, API Settings): checks SMS API `sig` and Messages/Verify webhook JWTs. Secret.", "signature_secret"),
    "VONAGE_SIGNATURE_METHOD": VariableDoc(_V, "The dashboard's SMS signature method: `md5hash`, `md5`, `sha1`, `sha256` or `sha512` (JWTs are always HS256).", "signature_method"),
    "VONAGE_API_BASE_URL": VariableDoc(_V, "Base URL of the Messages and Verify v2 APIs (the local sandbox, a regional host).", "api_base_url"),
    "VONAGE_REST_BASE_URL": VariableDoc(_V, "Base URL of the SMS and legacy Verify APIs.", "rest_base_url"),
    "VONAGE_TIMEOUT_SECONDS": VariableDoc(_V, "Read timeout of every Vonage call (at least 0.1). A call that times out has an unknown outcome and is never retried.", "vonage_timeout"),
    "VONAGE_MAX_RETRIES": VariableDoc(_V, "Retries of a Vonage call that Vonage asks to repeat or that never reached it (throttling, a connection that never opened; the exact list is in `shared/vonage/client.py`), with bounded exponential backoff and jitter. A request whose outcome is unknown (a read timeout, a dropped connection, any 5xx answer) is never replayed: Vonage takes no idempotency key, so a replay could be billed twice.", "vonage_max_retries"),
    # Callers
    "API_TOKENS": VariableDoc(_C, "Comma-separated bearer tokens callers of `send`, `verify-*` and the inbound listing present; several so one can be rotated. Unset: those functions refuse every call (`500 misconfigured`). Secret.", "api_tokens", "– (required by send and verify)"),
    "CORS_ORIGINS": VariableDoc(_C, "Comma-separated origins a browser may call `verify-start`/`verify-check` from when `VERIFY_PUBLIC=true`.", "cors_origins"),
    "TRUSTED_PROXY_HOPS": VariableDoc(_C, "How many proxies append to `X-Forwarded-For` (1 for Google's front end): the client IP for the per-IP verify limit.", "trusted_proxy_hops"),
    # State store
    "STATE_BACKEND": VariableDoc(_S, "`firestore`, `postgres` or `sqlite`. Unset: `firestore` when `FIRESTORE_EMULATOR_HOST` is set or on Google Cloud (`K_SERVICE`) with a project, else `postgres` when `DATABASE_URL` is set, else `sqlite`. The choice and why is logged at start.", None, "chosen (see meaning)"),
    "STATE_SQLITE_PATH": VariableDoc(_S, "The embedded SQLite store's file (one process, persistent disk).", "sqlite_path"),
    "GOOGLE_CLOUD_PROJECT": VariableDoc(_S, "The Google Cloud project of the Firestore database.", "google_cloud_project"),
    "GCLOUD_PROJECT": VariableDoc(_S, "Older name of `GOOGLE_CLOUD_PROJECT`, read when that is unset.", None, "–"),
    "FIRESTORE_EMULATOR_HOST": VariableDoc(_S, "`host:port` of a Firestore emulator; setting it selects Firestore.", "firestore_emulator_host"),
    "FIRESTORE_COLLECTION_PREFIX": VariableDoc(_S, "Prefix of every collection name, to share one Firestore database between environments.", "firestore_collection_prefix"),
    "K_SERVICE": VariableDoc(_S, "Set by Cloud Run / Cloud Functions (never set it yourself): with a project, selects Firestore; without `QUEUE_BACKEND`, no embedded queue (no worker runs between requests there).", None, "–"),
    "AWS_LAMBDA_FUNCTION_NAME": VariableDoc(_S, "Set by AWS Lambda (never set it yourself): without `QUEUE_BACKEND`, no embedded queue (a frozen Lambda runs no worker between invocations).", None, "–"),
    # Phone numbers
    "DEFAULT_REGION": VariableDoc(_P, "Two-letter region for national numbers (`07911 123456` with `GB`). Unset: numbers need their country code.", "default_region"),
    # Sending
    "VONAGE_MAX_RPS": VariableDoc(_SEND, "Requests per second one instance sends to Vonage (Vonage's default per API key is 30). Several instances: divide the account's rate.", "max_rps"),
    "SEND_MAX_SEGMENTS": VariableDoc(_SEND, "Default `max_segments`: an SMS text needing more parts is refused (`422 too_many_segments`).", "max_segments"),
    "SEND_ALLOW_CONTROL_CHARACTERS": VariableDoc(_SEND, "`true` lets control and bidirectional-override characters through in message texts (newlines and tabs always pass); `false` refuses them with `422` (see money-safety.md).", "send_allow_control_characters"),
    "BULK_MAX_RECIPIENTS": VariableDoc(_SEND, "The longest `to` list of a bulk send.", "bulk_max_recipients"),
    "IDEMPOTENCY_TTL_SECONDS": VariableDoc(_SEND, "How long a result replays and a key stays bound to its request.", "idempotency_ttl"),
    "IDEMPOTENCY_IN_PROGRESS_SECONDS": VariableDoc(_SEND, "How long an unfinished or unknown-outcome attempt holds its key.", "idempotency_in_progress_ttl"),
    "STATUS_WEBHOOK_URL": VariableDoc(_SEND, "Per-message receipt URL: `callback` on the SMS API (at most 100 characters), `webhook_url` on the Messages API. Unset: the account's/application's URL.", "status_webhook_url"),
    # Verify
    "VERIFY_API": VariableDoc(_VER, "`v2` (Verify v2) or `legacy` (the legacy Verify API, key and secret, sms/voice only).", "verify_api"),
    "VERIFY_PUBLIC": VariableDoc(_VER, "`true`: `verify-start`/`verify-check` take calls without a token from `CORS_ORIGINS` (the fraud guard is then the protection).", "verify_public"),
    "VERIFY_ALLOWED_COUNTRIES": VariableDoc(_VER, "Comma-separated ISO country codes a verification may go to (`403 country_not_allowed` otherwise). Unset: all.", "verify_allowed_countries", "all"),
    "VERIFY_MAX_ATTEMPTS": VariableDoc(_VER, "Wrong codes before a verification ends, whatever Vonage would still accept.", "verify_max_attempts"),
    "VERIFY_TTL_SECONDS": VariableDoc(_VER, "How long a verification stays open here (at least 30).", "verify_ttl"),
    "VERIFY_LIMIT_PER_NUMBER": VariableDoc(_VER, "Starts per number per sliding window, `COUNT/SECONDS` (`429 number_rate_limited`).", "verify_limit_number"),
    "VERIFY_LIMIT_PER_IP": VariableDoc(_VER, "Starts per client IP (`429 ip_rate_limited`).", "verify_limit_ip"),
    "VERIFY_LIMIT_PER_PREFIX": VariableDoc(_VER, "Starts per number range: the number without its last `VERIFY_PREFIX_DROP_DIGITS` digits (`429 prefix_rate_limited`).", "verify_limit_prefix"),
    "VERIFY_LIMIT_PER_COUNTRY": VariableDoc(_VER, "Starts per country (`429 country_rate_limited`).", "verify_limit_country"),
    "VERIFY_PREFIX_DROP_DIGITS": VariableDoc(_VER, "Digits dropped from a number to form its range for `VERIFY_LIMIT_PER_PREFIX`.", "verify_prefix_drop_digits"),
    # Webhooks
    "WEBHOOK_TOKEN": VariableDoc(_W, "Accept `?token=<this>` in webhook URLs (for accounts without signed SMS webhooks; no freshness). Secret.", "webhook_token"),
    "WEBHOOK_ALLOW_UNSIGNED": VariableDoc(_W, "Local use only: accept webhooks that present no credential at all (a wrong one is still refused). Never deploy it.", "webhook_allow_unsigned"),
    "SIGNATURE_MAX_SKEW_SECONDS": VariableDoc(_W, "Freshness window of webhook signatures: older or newer ones are refused as `stale`.", "signature_max_skew"),
    "DEDUPE_TTL_SECONDS": VariableDoc(_W, "How long a processed webhook delivery is remembered (Vonage retries for up to 24 h).", "dedupe_ttl"),
    "CONCAT_TTL_SECONDS": VariableDoc(_W, "How long parts of an incomplete long SMS are kept after the last part.", "concat_ttl"),
    "INBOUND_HANDLER": VariableDoc(_W, "`package.module:function` called once per inbound message; may return a reply.", "inbound_handler"),
    "OPTOUT_REPLY": VariableDoc(_W, "Confirmation sent once to a number that texts STOP.", "optout_reply"),
    "OPTIN_REPLY": VariableDoc(_W, "Confirmation sent once to a number that texts START.", "optin_reply"),
    "HELP_REPLY": VariableDoc(_W, "Answer to HELP.", "help_reply"),
    # HTTP and logs
    "MAX_BODY_BYTES": VariableDoc(_H, "Largest request body read (at least 1024); larger ones get `413 payload_too_large`.", "max_body_bytes"),
    "LOG_LEVEL": VariableDoc(_H, "`DEBUG`, `INFO`, `WARNING` or `ERROR`.", "log_level"),
}
