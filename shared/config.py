"""Settings: the only code that reads the environment.

``Settings.from_env()`` parses and validates every variable once per process and
raises one ``ConfigError`` that names each malformed variable (never its value).
Credentials are optional at load time: each function asks for what it needs with
``require_*()`` on first use, so a deployment of ``inbound`` alone needs no private key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ConfigError
from shared.tenants import ApiCaller, parse_api_tokens

__all__ = ["RateLimit", "Settings", "SIGNATURE_METHODS"]

SIGNATURE_METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")
CHANNELS = ("sms", "mms", "whatsapp", "messenger", "viber", "rcs")
DEFAULT_API_BASE_URL = "https://api.nexmo.com"
DEFAULT_REST_BASE_URL = "https://rest.nexmo.com"
DEFAULT_SQLITE_PATH = ".data/state.sqlite3"
# Human-verification services whose siteverify call shared.verify.captcha knows (docs/money-safety.md).
CAPTCHA_PROVIDERS = ("turnstile", "hcaptcha")


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` events per sliding ``window`` seconds. Written ``count/seconds``."""

    count: int
    window: float

    def __str__(self) -> str:
        return f"{self.count}/{int(self.window)}"


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Secret fields are hidden from repr()."""

    # Vonage credentials and endpoints
    api_key: str | None = None
    api_secret: str | None = field(default=None, repr=False)
    application_id: str | None = None
    private_key: str | None = field(default=None, repr=False)
    brand_number: str | None = None
    signature_secret: str | None = field(default=None, repr=False)
    signature_method: str = "md5hash"
    api_base_url: str = DEFAULT_API_BASE_URL
    rest_base_url: str = DEFAULT_REST_BASE_URL

    # Our own callers (API_TOKENS: plain tokens, or name:TOKEN:scopes entries; shared/tenants.py)
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    api_callers: tuple[ApiCaller, ...] = field(default=(), repr=False)

    # State store
    state_backend: str = "sqlite"
    state_backend_reason: str = "default"
    sqlite_path: str = DEFAULT_SQLITE_PATH
    google_cloud_project: str | None = None
    firestore_emulator_host: str | None = None
    firestore_collection_prefix: str = ""
    # PostgreSQL (STATE_BACKEND=postgres): the URL holds a password, so it stays out of repr().
    database_url: str | None = field(default=None, repr=False)
    postgres_pool_size: int = 8

    # Phone numbers
    default_region: str | None = None

    # Sending
    max_rps: float = 30.0
    max_segments: int = 6
    bulk_max_recipients: int = 1000
    idempotency_ttl: float = 86400.0
    idempotency_in_progress_ttl: float = 60.0
    vonage_timeout: float = 10.0
    vonage_max_retries: int = 3
    status_webhook_url: str | None = None

    # Failover and the WhatsApp window (docs/failover.md)
    whatsapp_window_check: bool = True  # free-form WhatsApp only inside the 24 h customer-service window

    # Verify
    verify_api: str = "v2"
    verify_public: bool = False
    cors_origins: tuple[str, ...] = ()
    verify_allowed_countries: tuple[str, ...] = ()
    verify_max_attempts: int = 3
    verify_ttl: float = 600.0
    verify_limit_number: RateLimit = RateLimit(3, 600)
    verify_limit_ip: RateLimit = RateLimit(10, 3600)
    verify_limit_prefix: RateLimit = RateLimit(10, 3600)
    verify_limit_country: RateLimit | None = None
    verify_prefix_drop_digits: int = 3
    trusted_proxy_hops: int = 0

    # Webhooks
    webhook_token: str | None = field(default=None, repr=False)
    webhook_allow_unsigned: bool = False
    signature_max_skew: float = 300.0
    dedupe_ttl: float = 7 * 86400.0
    concat_ttl: float = 86400.0
    inbound_handler: str | None = None
    optout_reply: str = "You have been unsubscribed and will receive no more messages. Reply START to subscribe again."
    optin_reply: str = "You have been subscribed again. Reply STOP to unsubscribe."
    help_reply: str = "Reply STOP to unsubscribe, START to subscribe again."

    # Events (shared/events; docs/events.md)
    events_backend: str = "embedded"
    events_backend_reason: str = "default"
    pubsub_topic: str | None = None
    pubsub_topic_prefix: str | None = None
    inbound_dispatch: str = "inline"
    events_consumers: tuple[str, ...] = ()
    # Money safety (docs/money-safety.md): client IP, spend budgets, public mode, balance
    trusted_proxies: tuple[str, ...] = ()
    send_budget_per_token: RateLimit | None = RateLimit(5000, 86400)
    send_budget_global: RateLimit | None = RateLimit(20000, 86400)
    send_parts_budget_per_token: RateLimit | None = RateLimit(10000, 86400)
    send_parts_budget_global: RateLimit | None = RateLimit(40000, 86400)
    verify_budget_global: RateLimit | None = RateLimit(1000, 86400)
    verify_budget_per_country: RateLimit | None = RateLimit(200, 3600)
    verify_brand: str | None = None
    verify_captcha: str | None = None
    verify_captcha_secret: str | None = field(default=None, repr=False)
    verify_captcha_url: str | None = None
    balance_alert_threshold: float | None = None
    send_allow_control_characters: bool = False

    # HTTP
    max_body_bytes: int = 256 * 1024
    log_level: str = "INFO"

    # Queue (bulk and scheduled sends, docs/queue.md)
    send_max_body_bytes: int = 256 * 1024
    queue_backend: str = "none"
    queue_backend_reason: str = "default"
    cloud_tasks_queue: str | None = None  # projects/P/locations/L/queues/Q
    cloud_tasks_emulator_host: str | None = None
    deliver_url: str | None = None
    deliver_service_account: str | None = None
    deliver_audience: str | None = None
    deliver_secret: str | None = field(default=None, repr=False)
    queue_max_attempts: int = 10
    queue_min_backoff: float = 1.0
    queue_max_backoff: float = 300.0
    queue_lease_seconds: float = 60.0
    queue_workers: int = 4
    unknown_settle_seconds: float = 3 * 86400.0

    # ---- construction -------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the environment; raise one ConfigError listing every problem."""
        env = _Env(os.environ if environ is None else environ)
        backend, reason = _choose_backend(env)
        events_backend, events_reason = _choose_events_backend(env)
        queue_backend, queue_reason = _choose_queue(env)
        queued = queue_backend != "none"
        max_body = env.integer("MAX_BODY_BYTES", 256 * 1024, minimum=1024)
        settings = cls(
            api_key=env.string("VONAGE_API_KEY"),
            api_secret=env.string("VONAGE_API_SECRET"),
            application_id=env.string("VONAGE_APPLICATION_ID"),
            private_key=env.string("VONAGE_PRIVATE_KEY", strip=False),
            brand_number=env.string("VONAGE_BRAND_NUMBER"),
            signature_secret=env.string("VONAGE_SIGNATURE_SECRET", strip=False),
            signature_method=env.choice("VONAGE_SIGNATURE_METHOD", SIGNATURE_METHODS, "md5hash"),
            api_base_url=env.url("VONAGE_API_BASE_URL", DEFAULT_API_BASE_URL),
            rest_base_url=env.url("VONAGE_REST_BASE_URL", DEFAULT_REST_BASE_URL),
            api_tokens=tuple(c.token for c in env.callers("API_TOKENS")),
            api_callers=env.callers("API_TOKENS"),
            state_backend=backend,
            state_backend_reason=reason,
            sqlite_path=env.string("STATE_SQLITE_PATH") or DEFAULT_SQLITE_PATH,
            google_cloud_project=env.string("GOOGLE_CLOUD_PROJECT") or env.string("GCLOUD_PROJECT"),
            firestore_emulator_host=env.string("FIRESTORE_EMULATOR_HOST"),
            firestore_collection_prefix=env.string("FIRESTORE_COLLECTION_PREFIX") or "",
            database_url=env.string("DATABASE_URL"),
            # One connection per server thread (serve.sh: THREADS, default 8) unless told otherwise.
            postgres_pool_size=env.integer("POSTGRES_POOL_SIZE", env.integer("THREADS", 8, minimum=1), minimum=1),
            default_region=env.region("DEFAULT_REGION"),
            max_rps=env.number("VONAGE_MAX_RPS", 30.0, minimum=0.1),
            max_segments=env.integer("SEND_MAX_SEGMENTS", 6, minimum=1),
            bulk_max_recipients=env.integer("BULK_MAX_RECIPIENTS", 100_000 if queued else 1000, minimum=1),
            idempotency_ttl=env.number("IDEMPOTENCY_TTL_SECONDS", 86400.0, minimum=1),
            idempotency_in_progress_ttl=env.number("IDEMPOTENCY_IN_PROGRESS_SECONDS", 60.0, minimum=1),
            vonage_timeout=env.number("VONAGE_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            vonage_max_retries=env.integer("VONAGE_MAX_RETRIES", 3, minimum=0),
            status_webhook_url=env.string("STATUS_WEBHOOK_URL"),
            whatsapp_window_check=env.boolean("SEND_WHATSAPP_WINDOW_CHECK", True),
            verify_api=env.choice("VERIFY_API", ("v2", "legacy"), "v2"),
            verify_public=env.boolean("VERIFY_PUBLIC", False),
            cors_origins=env.items("CORS_ORIGINS"),
            verify_allowed_countries=tuple(c.upper() for c in env.items("VERIFY_ALLOWED_COUNTRIES")),
            verify_max_attempts=env.integer("VERIFY_MAX_ATTEMPTS", 3, minimum=1),
            verify_ttl=env.number("VERIFY_TTL_SECONDS", 600.0, minimum=30),
            verify_limit_number=env.rate("VERIFY_LIMIT_PER_NUMBER", RateLimit(3, 600)),
            verify_limit_ip=env.rate("VERIFY_LIMIT_PER_IP", RateLimit(10, 3600)),
            verify_limit_prefix=env.rate("VERIFY_LIMIT_PER_PREFIX", RateLimit(10, 3600)),
            verify_limit_country=env.optional_rate("VERIFY_LIMIT_PER_COUNTRY"),
            verify_prefix_drop_digits=env.integer("VERIFY_PREFIX_DROP_DIGITS", 3, minimum=1),
            trusted_proxy_hops=env.integer("TRUSTED_PROXY_HOPS", 0, minimum=0),
            webhook_token=env.string("WEBHOOK_TOKEN", strip=False),
            webhook_allow_unsigned=env.boolean("WEBHOOK_ALLOW_UNSIGNED", False),
            signature_max_skew=env.number("SIGNATURE_MAX_SKEW_SECONDS", 300.0, minimum=1),
            dedupe_ttl=env.number("DEDUPE_TTL_SECONDS", 7 * 86400.0, minimum=60),
            concat_ttl=env.number("CONCAT_TTL_SECONDS", 86400.0, minimum=10),
            inbound_handler=env.handler("INBOUND_HANDLER"),
            optout_reply=env.text("OPTOUT_REPLY", cls.optout_reply),
            optin_reply=env.text("OPTIN_REPLY", cls.optin_reply),
            help_reply=env.text("HELP_REPLY", cls.help_reply),
            events_backend=events_backend,
            events_backend_reason=events_reason,
            pubsub_topic=env.string("PUBSUB_TOPIC"),
            pubsub_topic_prefix=env.string("PUBSUB_TOPIC_PREFIX"),
            # The reply handler runs from the bus (on_inbound) by default only where the bus is
            # Pub/Sub; elsewhere it stays inside the webhook, as before.
            inbound_dispatch=env.choice(
                "INBOUND_DISPATCH", ("inline", "bus"), "bus" if events_backend == "pubsub" else "inline"
            ),
            events_consumers=tuple(spec for spec in env.items("EVENTS_CONSUMERS") if env.handler_spec("EVENTS_CONSUMERS", spec)),
            trusted_proxies=env.networks("TRUSTED_PROXIES"),
            send_budget_per_token=env.budget("SEND_BUDGET_PER_TOKEN", RateLimit(5000, 86400)),
            send_budget_global=env.budget("SEND_BUDGET_GLOBAL", RateLimit(20000, 86400)),
            send_parts_budget_per_token=env.budget("SEND_PARTS_BUDGET_PER_TOKEN", RateLimit(10000, 86400)),
            send_parts_budget_global=env.budget("SEND_PARTS_BUDGET_GLOBAL", RateLimit(40000, 86400)),
            verify_budget_global=env.budget("VERIFY_BUDGET_GLOBAL", RateLimit(1000, 86400)),
            verify_budget_per_country=env.budget("VERIFY_BUDGET_PER_COUNTRY", RateLimit(200, 3600)),
            verify_brand=env.string("VERIFY_BRAND"),
            verify_captcha=env.choice("VERIFY_CAPTCHA", CAPTCHA_PROVIDERS, "") or None,
            verify_captcha_secret=env.string("VERIFY_CAPTCHA_SECRET"),
            verify_captcha_url=env.url("VERIFY_CAPTCHA_URL", "") or None,
            balance_alert_threshold=env.optional_number("BALANCE_ALERT_THRESHOLD", minimum=0),
            send_allow_control_characters=env.boolean("SEND_ALLOW_CONTROL_CHARACTERS", False),
            max_body_bytes=max_body,
            log_level=env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True),
            queue_backend=queue_backend,
            queue_backend_reason=queue_reason,
            # 100,000 numbers are about 1.7 MB of JSON: with a queue, POST /send (only) takes more.
            send_max_body_bytes=env.integer(
                "SEND_MAX_BODY_BYTES",
                4 * 1024 * 1024 if queued else max_body,
                minimum=1024,
            ),
            cloud_tasks_queue=env.string("CLOUD_TASKS_QUEUE"),
            cloud_tasks_emulator_host=env.string("CLOUD_TASKS_EMULATOR_HOST"),
            deliver_url=env.url("DELIVER_URL", "") or None,
            deliver_service_account=env.string("DELIVER_SERVICE_ACCOUNT"),
            deliver_audience=env.string("DELIVER_AUDIENCE"),
            deliver_secret=env.string("DELIVER_SECRET", strip=False),
            queue_max_attempts=env.integer("QUEUE_MAX_ATTEMPTS", 10, minimum=1),
            queue_min_backoff=env.number("QUEUE_MIN_BACKOFF_SECONDS", 1.0, minimum=0.01),
            queue_max_backoff=env.number("QUEUE_MAX_BACKOFF_SECONDS", 300.0, minimum=0.01),
            queue_lease_seconds=env.number("QUEUE_LEASE_SECONDS", 60.0, minimum=1),
            queue_workers=env.integer("QUEUE_WORKERS", 4, minimum=1),
            unknown_settle_seconds=env.number("UNKNOWN_SETTLE_SECONDS", 3 * 86400.0, minimum=1),
        )
        env.check_pairs()
        if backend == "postgres" and not settings.database_url:
            env.problems.append("DATABASE_URL is not set: STATE_BACKEND=postgres needs a PostgreSQL URL")
        env.check_money_safety(settings)
        if env.problems:
            raise ConfigError(env.problems)
        return settings

    # ---- what each function needs, checked on first use ----------------

    @property
    def has_application(self) -> bool:
        """True when an application id and private key are set (Messages API / Verify v2 JWT)."""
        return bool(self.application_id and self.private_key)

    @property
    def has_key_secret(self) -> bool:
        """True when an API key and secret are set (SMS API, legacy Verify, Basic auth)."""
        return bool(self.api_key and self.api_secret)

    def require_key_secret(self) -> None:
        """Raise ConfigError unless VONAGE_API_KEY and VONAGE_API_SECRET are set."""
        _require(self, ("api_key", "VONAGE_API_KEY"), ("api_secret", "VONAGE_API_SECRET"))

    def require_application(self) -> None:
        """Raise ConfigError unless VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY are set."""
        _require(self, ("application_id", "VONAGE_APPLICATION_ID"), ("private_key", "VONAGE_PRIVATE_KEY"))

    @property
    def callers(self) -> tuple[ApiCaller, ...]:
        """Every API caller; Settings built directly with api_tokens only get default-tenant callers."""
        if self.api_callers:
            return self.api_callers
        return tuple(ApiCaller("default", token) for token in self.api_tokens)

    def require_api_tokens(self) -> None:
        """Raise ConfigError when no API_TOKENS are set: send and verify are never open by accident."""
        if not self.api_tokens:
            raise ConfigError("API_TOKENS is not set: callers of this function must present a bearer token")


def _require(settings: Settings, *pairs: tuple[str, str]) -> None:
    missing = [name for attr, name in pairs if not getattr(settings, attr)]
    if missing:
        problems = [f"{name} is not set" for name in missing]
        if not (settings.has_key_secret or settings.api_key or settings.application_id or settings.private_key):
            # Nothing at all is configured: name both ways in, not only the one this call prefers.
            problems.append(
                "no Vonage credentials are set: set VONAGE_API_KEY and VONAGE_API_SECRET (every API), "
                "or VONAGE_APPLICATION_ID and VONAGE_PRIVATE_KEY (Messages API and Verify v2)"
            )
        raise ConfigError(problems)


# Codes people type that phonenumbers does not know, and what they meant.
_REGION_HINTS = {"UK": "use GB for the United Kingdom", "EN": "use GB for the United Kingdom", "EL": "use GR for Greece"}


def _choose_backend(env: _Env) -> tuple[str, str]:
    explicit = env.choice("STATE_BACKEND", ("firestore", "sqlite", "postgres"), "")
    if explicit:
        return explicit, "STATE_BACKEND"
    if env.string("FIRESTORE_EMULATOR_HOST"):
        return "firestore", "FIRESTORE_EMULATOR_HOST is set"
    # K_SERVICE is set by Cloud Run / Cloud Functions gen2: Firestore is the only store that survives there.
    if env.string("K_SERVICE") and (env.string("GOOGLE_CLOUD_PROJECT") or env.string("GCLOUD_PROJECT")):
        return "firestore", "running on Google Cloud"
    # Replit, Heroku, Render and Fly hand the app its database as DATABASE_URL: shared by every instance.
    if env.string("DATABASE_URL"):
        return "postgres", "DATABASE_URL is set"
    return "sqlite", "neither Firestore nor DATABASE_URL configured"


def _choose_events_backend(env: _Env) -> tuple[str, str]:
    explicit = env.choice("EVENTS_BACKEND", ("pubsub", "embedded", "none"), "")
    if explicit:
        return explicit, "EVENTS_BACKEND"
    if env.string("PUBSUB_TOPIC") or env.string("PUBSUB_TOPIC_PREFIX"):
        return "pubsub", "PUBSUB_TOPIC or PUBSUB_TOPIC_PREFIX is set"
    return "embedded", "no Pub/Sub topic configured"


def _choose_queue(env: _Env) -> tuple[str, str]:
    explicit = env.choice("QUEUE_BACKEND", ("cloudtasks", "embedded", "none"), "")
    if explicit:
        return explicit, "QUEUE_BACKEND"
    if env.string("CLOUD_TASKS_QUEUE"):
        return "cloudtasks", "CLOUD_TASKS_QUEUE is set"
    # Cloud Functions / Cloud Run run no thread between requests, so an embedded worker would
    # never deliver there: without Cloud Tasks, bulk stays synchronous (docs/queue.md).
    if env.string("K_SERVICE"):
        return "none", "running on Google Cloud without CLOUD_TASKS_QUEUE"
    if env.string("AWS_LAMBDA_FUNCTION_NAME"):  # frozen between invocations: no worker can run
        return "none", "running on AWS Lambda"
    return "embedded", "no Cloud Tasks queue configured"


class _Env:
    """Typed reads of an environment mapping that collect problems instead of raising at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def string(self, name: str, *, strip: bool = True) -> str | None:
        value = self.environ.get(name)
        if value is None:
            return None
        if strip:
            value = value.strip()
        return value if value.strip() else None

    def text(self, name: str, default: Any) -> str:
        value = self.environ.get(name)
        return value if value else str(default)

    def choice(self, name: str, allowed: tuple[str, ...], default: str, *, upper: bool = False) -> str:
        value = self.string(name)
        if value is None:
            return default
        value = value.upper() if upper else value.lower()
        if value not in allowed:
            self.problems.append(f"{name} must be one of {', '.join(allowed)}")
            return default
        return value

    def url(self, name: str, default: str) -> str:
        value = self.string(name)
        if value is None:
            return default
        if not value.startswith(("http://", "https://")):
            self.problems.append(f"{name} must be an http:// or https:// URL")
            return default
        return value.rstrip("/")

    def items(self, name: str) -> tuple[str, ...]:
        value = self.string(name)
        if value is None:
            return ()
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def number(self, name: str, default: float, *, minimum: float) -> float:
        value = self.string(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"{name} must be a number")
            return default
        if not number >= minimum:  # also catches NaN
            self.problems.append(f"{name} must be at least {minimum:g}")
            return default
        return number

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.string(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"{name} must be a whole number")
            return default
        if number < minimum:
            self.problems.append(f"{name} must be at least {minimum}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.string(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false")
        return default

    def rate(self, name: str, default: RateLimit) -> RateLimit:
        value = self.string(name)
        if value is None:
            return default
        count, sep, window = value.partition("/")
        try:
            if not sep:
                raise ValueError
            limit = RateLimit(int(count), float(window))
            if limit.count < 1 or limit.window <= 0:
                raise ValueError
        except ValueError:
            self.problems.append(f"{name} must look like COUNT/SECONDS, e.g. 5/3600")
            return default
        return limit

    def callers(self, name: str) -> tuple[ApiCaller, ...]:
        """API_TOKENS entries as callers (plain tokens, or name:TOKEN:scopes)."""
        callers, problems = parse_api_tokens(self.items(name))
        for problem in problems:
            if problem not in self.problems:
                self.problems.append(problem)
        return callers

    def optional_rate(self, name: str) -> RateLimit | None:
        """A COUNT/SECONDS limit that is off unless set."""
        if self.string(name) is None:
            return None
        return self.rate(name, RateLimit(1, 1))

    def budget(self, name: str, default: RateLimit) -> RateLimit | None:
        """A COUNT/SECONDS budget; ``off`` disables it (the default applies when unset)."""
        value = self.string(name)
        if value is not None and value.lower() in ("off", "none", "0"):
            return None
        return self.rate(name, default)

    def optional_number(self, name: str, *, minimum: float) -> float | None:
        if self.string(name) is None:
            return None
        return self.number(name, 0.0, minimum=minimum)

    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses or CIDR ranges, normalised."""
        import ipaddress

        result = []
        for item in self.items(name):
            try:
                result.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                self.problems.append(f"{name} must be IP addresses or CIDR ranges such as 10.0.0.0/8")
        return tuple(result)

    def check_money_safety(self, settings: Settings) -> None:
        """Public verify mode is safe by construction: refuse to start without its guards."""
        if settings.verify_public:
            if not settings.verify_allowed_countries:
                self.problems.append(
                    "VERIFY_PUBLIC=true needs VERIFY_ALLOWED_COUNTRIES (the countries you serve): "
                    "anyone may ask for a code, and codes to some countries cost a lot"
                )
            if not settings.verify_brand:
                self.problems.append(
                    "VERIFY_PUBLIC=true needs VERIFY_BRAND: the name in the code message comes from the server, "
                    "never from the caller"
                )
        if settings.verify_brand is not None:
            from shared.text import find_unsafe_character  # noqa: PLC0415 - shared.text imports errors only

            if len(settings.verify_brand) > 18 or any(c in settings.verify_brand for c in "/{}:$") or (
                find_unsafe_character(settings.verify_brand) is not None
            ):
                self.problems.append("VERIFY_BRAND must be 1-18 characters without / { } : $ or control characters")
        if settings.verify_captcha and not settings.verify_captcha_secret:
            self.problems.append("VERIFY_CAPTCHA needs VERIFY_CAPTCHA_SECRET (the provider's secret key)")

    def region(self, name: str) -> str | None:
        value = self.string(name)
        if value is None:
            return None
        if len(value) != 2 or not value.isalpha():
            self.problems.append(f"{name} must be a two-letter region code such as GB or US")
            return None
        region = value.upper()
        import phonenumbers  # only when a region is set: its metadata is not free to load

        if region not in phonenumbers.SUPPORTED_REGIONS:
            # A region phonenumbers does not know reads every national number as invalid, silently.
            hint = _REGION_HINTS.get(region, "use an ISO 3166 code such as GB, US or DE")
            self.problems.append(f"{name}={region} is not a region code phonenumbers knows: {hint}")
            return None
        return region

    def handler(self, name: str) -> str | None:
        value = self.string(name)
        if value is None:
            return None
        module, sep, func = value.partition(":")
        if not sep or not module or not func:
            self.problems.append(f"{name} must look like package.module:function")
            return None
        return value

    def handler_spec(self, name: str, spec: str) -> bool:
        """True for one ``package.module:function`` item of a list variable (else a problem is noted)."""
        module, sep, func = spec.partition(":")
        if not sep or not module or not func:
            self.problems.append(f"{name} items must look like package.module:function")
            return False
        return True

    def check_pairs(self) -> None:
        """Credentials that only work together must be set together."""
        for a, b in (("VONAGE_APPLICATION_ID", "VONAGE_PRIVATE_KEY"),):
            if bool(self.string(a)) != bool(self.string(b)):
                present, missing = (a, b) if self.string(a) else (b, a)
                self.problems.append(f"{missing} is not set but {present} is: set both or neither")
