"""Settings: defaults here < instance/config.py < PAYAPP_* environment < a test mapping."""

from __future__ import annotations

import os

import click

from .paths import DEFAULT_INSTANCE_DIR
from .ratelimit_store import sqlite_uri

# The value shipped in code; production refuses to start with it (or with none).
DEV_SECRET_KEY = "dev-only-not-secret"  # noqa: S105


class Defaults:
    ENV = "development"
    SECRET_KEY = DEV_SECRET_KEY
    DATABASE_URL = None  # default: sqlite in the instance folder
    PUBLIC_BASE_URL = None  # default: http://HOST:PORT, the address `flask run` serves

    # Reverse proxies in front of gunicorn whose X-Forwarded-For/-Proto to believe. 0: payapp is
    # reached directly and ignores those headers (anyone could send them); 1 behind Caddy.
    TRUSTED_PROXIES = 0
    # Where gunicorn listens (deploy/gunicorn.conf.py reads it; check-deployment checks it).
    BIND = "127.0.0.1:8000"
    # gunicorn processes (deploy/gunicorn.conf.py): one per CPU. Demo mode always runs one,
    # because the demo card gateway keeps its payments in that process's memory.
    WORKERS = 2

    CLINIC_NAME = "Demo Family Dental"
    CLINIC_PHONE = "(555) 010-0199"
    CLINIC_TIMEZONE = "America/New_York"
    DEFAULT_PHONE_REGION = "US"
    CURRENCY = "USD"
    DEFAULT_LANGUAGE = "en"  # a new link's language on the staff form: "en" or "es"

    AMOUNT_MIN_CENTS = 100
    AMOUNT_MAX_CENTS = 2_500_000
    LINK_EXPIRY_DAYS_DEFAULT = 14
    LINK_EXPIRY_DAYS_MAX = 90
    MAX_DECLINES = 5
    LINKS_PER_PAGE = 25
    EXPORT_BATCH_SIZE = 500  # rows per query while a CSV export streams

    SMTP_URL = None
    SMTP_TIMEOUT = 15
    MAIL_FROM = "payments@clinic.invalid"
    FRONT_DESK_EMAIL = None  # who is emailed about patients' problem reports; default MAIL_FROM
    PROBLEM_NOTICE_QUIET_MINUTES = 60  # at most one such email per link in this time
    # "Send me a new link" on an expired or locked link: "ask" makes a front-desk task (the
    # balance may have changed); "reissue" sends a new link with the same amount at once.
    NEW_LINK_REQUESTS = "ask"
    OUTBOX_DIR = None  # default: <instance>/outbox
    BACKUP_DIR = None  # default: <instance>/backups (deploy/backup.sh writes there)

    SQUARE_ACCESS_TOKEN = None
    SQUARE_APPLICATION_ID = None
    SQUARE_LOCATION_ID = None
    SQUARE_ENVIRONMENT = "sandbox"
    SQUARE_BASE_URL = None  # overrides the API host (tests and the local Square stand-in)
    SQUARE_TIMEOUT = 20  # seconds per Square API call
    SQUARE_WEBHOOK_SIGNATURE_KEY = None
    SQUARE_WEBHOOK_URL = None  # the exact notification URL registered with Square
    # Apple Pay: the domain-association file Square's dashboard gives for this site's domain,
    # served verbatim at /.well-known/apple-developer-merchantid-domain-association.
    APPLE_PAY_DOMAIN_ASSOCIATION = None  # a file path

    # Texts through Twilio when the account, token and a sender (number or messaging service)
    # are set; the outbox folder otherwise.
    TWILIO_ACCOUNT_SID = None
    TWILIO_AUTH_TOKEN = None
    TWILIO_FROM = None  # the sending number, E.164 (+15551234567)
    TWILIO_MESSAGING_SERVICE_SID = None  # MG...: used instead of TWILIO_FROM when set
    TWILIO_BASE_URL = None  # overrides https://api.twilio.com (tests and the local stand-in)
    TWILIO_TIMEOUT = 15
    TWILIO_WEBHOOK_URL = None  # default: PUBLIC_BASE_URL + /webhooks/twilio
    # Texts go out only within these clinic-local hours on these days; outside them they wait
    # for run-jobs. "" for any time.
    TEXT_HOURS = "08:00-18:00"
    TEXT_DAYS = "Mon-Fri"

    # Rate-limit counters. Default: a SQLite file in the instance folder (ratelimits.db), shared
    # by every gunicorn process on this machine (payapp/ratelimit_store.py). Several machines:
    # "redis://host:6379". "memory://" counts in each process alone (one process only).
    RATELIMIT_STORAGE_URI = None
    # If the store is unreachable, keep limiting per process instead of failing every request.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_LOGIN = "10 per minute;50 per hour"
    RATELIMIT_PAY_VIEW = "60 per minute"
    RATELIMIT_PAY_SUBMIT = "10 per minute;30 per hour"
    RATELIMIT_PAY_GLOBAL = "300 per minute"  # all addresses together: a card-testing botnet
    RATELIMIT_INVALID_TOKEN = "20 per hour"  # noqa: S105 - bad /pay tokens per address
    RATELIMIT_CSP_REPORT = "30 per minute"
    # Failure surges (alerts.py): in the last SURGE_WINDOW_MINUTES, at least the kind's minimum
    # failures AND a failure rate >= SURGE_RATE_FACTOR x the rate of the SURGE_BASELINE_DAYS before.
    SURGE_WINDOW_MINUTES = 60
    SURGE_BASELINE_DAYS = 7
    SURGE_RATE_FACTOR = 3
    SURGE_MIN_PAYMENT_FAILURES = 10  # declined or failed card payments
    SURGE_MIN_MESSAGE_FAILURES = 5  # emails and texts that could not be sent
    SURGE_MIN_GATEWAY_ERRORS = 3  # payment system set-up errors (gateway.error)
    RATELIMIT_PROBLEM_REPORT = "5 per hour"  # "Problem paying?" reports per address
    # Statement-number lookups at /pay: per address, and all addresses together.
    RATELIMIT_PAY_LOOKUP = "5 per minute;20 per hour;50 per day"
    RATELIMIT_PAY_LOOKUP_GLOBAL = "300 per hour"
    RATELIMIT_HEADERS_ENABLED = False
    RATELIMIT_REMINDER_OPT_OUT = "10 per minute"
    RATELIMIT_NEW_LINK_PER_LINK = "3 per day"  # "Send me a new link" presses per link
    RATELIMIT_NEW_LINK_PER_ADDRESS = "10 per day"  # ... and per address, over all links

    # Reminders (reminders.py, sent by run-jobs): days after the link was sent, days before it
    # expires, at most this many per link, and only inside the clinic's hours (its time zone).
    REMINDER_AFTER_SEND_DAYS = 3
    REMINDER_BEFORE_EXPIRY_DAYS = 2
    REMINDER_MAX = 2
    CLINIC_HOURS = "08:00-18:00"
    CLINIC_DAYS = "Mon-Fri"

    MAX_CONTENT_LENGTH = 64 * 1024
    MAX_FORM_PARTS = 50  # no form of ours has more fields; more is an attack, not a patient
    MAX_FORM_MEMORY_SIZE = 64 * 1024
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session: a tab left open still pays
    WTF_CSRF_SSL_STRICT = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_NAME = "payapp_session"
    # The cookie outlives a working day so a patient's open tab can still pay (CSRF lives in it);
    # staff sessions end sooner, by these two checks in views/guards.py.
    PERMANENT_SESSION_LIFETIME = 24 * 3600
    STAFF_IDLE_TIMEOUT = 15 * 60
    STAFF_SESSION_MAX_AGE = 10 * 3600
    # Staff accounts (login.py): second factor, re-authentication, per-account login throttling.
    REQUIRE_MFA_FOR_STAFF = False  # admins always need it
    REAUTH_WINDOW = 5 * 60  # seconds a password/code confirmation covers refunds and user changes
    LOGIN_DELAY_AFTER = 5  # failed logins in a row before each further try must wait
    LOGIN_DELAY_BASE = 60  # seconds of the first wait; each further failure doubles it
    LOGIN_DELAY_MAX = 15 * 60
    LOGIN_LOCK_AFTER = 10  # failed logins in a row that lock the account
    LOGIN_LOCK_SECONDS = None  # None: locked until an admin clears it; else it clears itself


class ConfigError(click.ClickException):
    """The configuration is unsafe or inconsistent; the app refuses to start.

    A ClickException so that `flask --app payapp ...` prints one clear line, not a traceback."""


def load_config(app, test_config: dict | None = None) -> None:
    """Layer the settings onto ``app.config`` and check them."""
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("PAYAPP")
    # PAYAPP_PASSWORD is create-user's input, not a setting: don't keep it in app.config.
    app.config.pop("PASSWORD", None)
    if test_config:
        app.config.update(test_config)

    cfg = app.config
    # from_prefixed_env parses JSON, so "5550100" would arrive as an int: text settings stay text.
    for key in ("SECRET_KEY", "CLINIC_NAME", "CLINIC_PHONE", "MAIL_FROM"):
        cfg[key] = str(cfg[key])
    if not cfg["PUBLIC_BASE_URL"]:
        cfg["PUBLIC_BASE_URL"] = local_base_url(os.environ)
    cfg["PUBLIC_BASE_URL"] = str(cfg["PUBLIC_BASE_URL"])
    cfg["ENV"] = str(cfg["ENV"]).lower()
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = "sqlite:///" + os.path.join(app.instance_path, "payapp.db")
    if not cfg["RATELIMIT_STORAGE_URI"]:
        cfg["RATELIMIT_STORAGE_URI"] = sqlite_uri(os.path.join(app.instance_path, "ratelimits.db"))
    if not cfg["OUTBOX_DIR"]:
        cfg["OUTBOX_DIR"] = os.path.join(app.instance_path, "outbox")
    if not cfg["BACKUP_DIR"]:
        cfg["BACKUP_DIR"] = os.path.join(app.instance_path, "backups")
    cfg["PUBLIC_BASE_URL"] = str(cfg["PUBLIC_BASE_URL"]).rstrip("/")
    for key in ("TWILIO_FROM", "TWILIO_AUTH_TOKEN"):
        if cfg[key]:
            cfg[key] = str(cfg[key])
    if not cfg["TWILIO_WEBHOOK_URL"]:
        cfg["TWILIO_WEBHOOK_URL"] = cfg["PUBLIC_BASE_URL"] + "/webhooks/twilio"
    cfg["TWILIO_ENABLED"] = bool(
        cfg["TWILIO_ACCOUNT_SID"]
        and cfg["TWILIO_AUTH_TOKEN"]
        and (cfg["TWILIO_FROM"] or cfg["TWILIO_MESSAGING_SERVICE_SID"])
    )
    cfg["PRODUCTION"] = cfg["ENV"] == "production"
    cfg["SESSION_COOKIE_SECURE"] = cfg["PRODUCTION"]
    cfg["DEMO_MODE"] = is_demo_mode(cfg)
    check_config(cfg)


def local_base_url(environ) -> str:
    """The address `flask run` serves (scripts/run passes HOST and PORT; flask reads FLASK_RUN_*),
    so links, QR codes, emails and texts point where the demo really is."""
    host = environ.get("FLASK_RUN_HOST") or environ.get("HOST") or "127.0.0.1"
    port = environ.get("FLASK_RUN_PORT") or environ.get("PORT") or "5000"
    # A wildcard listen address is no address a browser can open: links use loopback instead.
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  # nosec B104 - compared, never bound
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def is_demo_mode(cfg) -> bool:
    """Without all three Square settings, payments go to the offline demo gateway."""
    return not all(
        cfg.get(k) for k in ("SQUARE_ACCESS_TOKEN", "SQUARE_APPLICATION_ID", "SQUARE_LOCATION_ID")
    )


def gunicorn_settings(instance_path: str | None = None):
    """The settings from the same layers as the app (defaults < instance/config.py <
    PAYAPP_*), for deploy/gunicorn.conf.py and check-deployment: one setting, so the two
    cannot disagree."""
    from flask import Config

    folder = instance_path or os.environ.get("PAYAPP_INSTANCE_PATH", str(DEFAULT_INSTANCE_DIR))
    cfg = Config(folder)
    cfg.from_object(Defaults)
    cfg.from_pyfile("config.py", silent=True)
    cfg.from_prefixed_env("PAYAPP")
    return cfg


def gunicorn_bind(instance_path: str | None = None) -> list[str]:
    """Where gunicorn listens: BIND."""
    return bind_addresses(gunicorn_settings(instance_path)["BIND"])


def gunicorn_workers(instance_path: str | None = None) -> int:
    """gunicorn's processes: WORKERS, or 1 in demo mode (the demo gateway's payments live in
    one process's memory: a refund answered by another process would not find them)."""
    cfg = gunicorn_settings(instance_path)
    return 1 if is_demo_mode(cfg) else max(1, int(cfg["WORKERS"]))


def bind_addresses(value) -> list[str]:
    """'127.0.0.1:8000', 'a:1, b:2' or a list -> ['127.0.0.1:8000', ...]."""
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in str(value).replace(",", " ").split() if part.strip()]


def check_config(cfg) -> None:
    """Refuse settings that would be unsafe in production or make no sense anywhere."""
    if cfg["ENV"] not in ("development", "production"):
        raise ConfigError("PAYAPP_ENV must be 'development' or 'production'.")
    if cfg["PRODUCTION"]:
        secret = cfg.get("SECRET_KEY") or ""
        if secret == DEV_SECRET_KEY or len(secret) < 32:
            raise ConfigError(
                "Refusing to start in production: set PAYAPP_SECRET_KEY to at least 32 random "
                'characters, e.g. python -c "import secrets; print(secrets.token_hex(32))"'
            )
        if not cfg["PUBLIC_BASE_URL"].startswith("https://"):
            raise ConfigError(
                "Refusing to start in production: PAYAPP_PUBLIC_BASE_URL must be https://"
            )
    if not cfg["DEMO_MODE"]:
        check_square_config(cfg)
    proxies = cfg.get("TRUSTED_PROXIES")
    if isinstance(proxies, bool) or not isinstance(proxies, int) or not 0 <= proxies <= 5:
        raise ConfigError(
            "PAYAPP_TRUSTED_PROXIES must be a whole number of reverse proxies in front of payapp: "
            "0 when browsers reach gunicorn directly, 1 behind the documented Caddy."
        )
    strategy = str(cfg.get("RATELIMIT_STRATEGY") or "fixed-window")
    if str(cfg["RATELIMIT_STORAGE_URI"]).startswith("sqlite:") and strategy not in (
        "fixed-window",
        "moving-window",
    ):
        raise ConfigError(
            f"RATELIMIT_STRATEGY {strategy!r} needs Redis (RATELIMIT_STORAGE_URI = "
            '"redis://..."); the default rate-limit file serves fixed-window and moving-window.'
        )
    twilio = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    if any(cfg.get(k) for k in twilio) and not cfg.get("TWILIO_ENABLED"):
        # Half a Twilio set-up would silently leave texts in the outbox folder.
        raise ConfigError(
            "Set PAYAPP_TWILIO_ACCOUNT_SID, PAYAPP_TWILIO_AUTH_TOKEN and PAYAPP_TWILIO_FROM (or "
            "PAYAPP_TWILIO_MESSAGING_SERVICE_SID) together, or none of them."
        )
    if cfg["NEW_LINK_REQUESTS"] not in ("ask", "reissue"):
        raise ConfigError("PAYAPP_NEW_LINK_REQUESTS must be 'ask' or 'reissue'.")
    if cfg["DEFAULT_LANGUAGE"] not in ("en", "es"):
        raise ConfigError("PAYAPP_DEFAULT_LANGUAGE must be 'en' or 'es'.")
    try:
        parse_text_hours(cfg["TEXT_HOURS"], cfg["TEXT_DAYS"])
    except ValueError as exc:
        raise ConfigError(f"PAYAPP_TEXT_HOURS / PAYAPP_TEXT_DAYS: {exc}") from None
    if not 0 < cfg["AMOUNT_MIN_CENTS"] <= cfg["AMOUNT_MAX_CENTS"]:
        raise ConfigError("AMOUNT_MIN_CENTS must be positive and not above AMOUNT_MAX_CENTS.")


def square_environment_of(application_id: str) -> str | None:
    """Square's browser SDK host follows the application id: sandbox-sq0idb-... is sandbox."""
    if application_id.startswith("sandbox-sq0idb-"):
        return "sandbox"
    if application_id.startswith("sq0idp-"):
        return "production"
    return None


def check_square_config(cfg) -> None:
    environment = str(cfg["SQUARE_ENVIRONMENT"]).lower()
    if environment not in ("sandbox", "production"):
        raise ConfigError("PAYAPP_SQUARE_ENVIRONMENT must be 'sandbox' or 'production'.")
    cfg["SQUARE_ENVIRONMENT"] = environment
    by_app_id = square_environment_of(str(cfg["SQUARE_APPLICATION_ID"]))
    if by_app_id is None:
        raise ConfigError(
            "PAYAPP_SQUARE_APPLICATION_ID should look like sandbox-sq0idb-... (sandbox) or "
            "sq0idp-... (production); copy it from the Square Developer Console."
        )
    if by_app_id != environment:
        raise ConfigError(
            f"PAYAPP_SQUARE_APPLICATION_ID is a {by_app_id} id but PAYAPP_SQUARE_ENVIRONMENT is "
            f"{environment}; use the keys of one environment."
        )
    if bool(cfg["SQUARE_WEBHOOK_SIGNATURE_KEY"]) != bool(cfg["SQUARE_WEBHOOK_URL"]):
        raise ConfigError(
            "Set both PAYAPP_SQUARE_WEBHOOK_SIGNATURE_KEY and PAYAPP_SQUARE_WEBHOOK_URL "
            "(the exact notification URL registered in the Square Developer Console), or neither."
        )


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_text_hours(hours, days) -> tuple[int, int, frozenset[int]] | None:
    """'08:00-18:00' and 'Mon-Fri' (or 'Mon,Wed,Sat') -> (start minute, end minute, weekdays);
    None when hours is empty: texts may go out at any time."""
    if not hours:
        return None
    try:
        start, end = (
            int(h) * 60 + int(m)
            for h, m in (part.strip().split(":") for part in str(hours).split("-"))
        )
    except ValueError:
        raise ValueError(f"hours must look like 08:00-18:00, not {hours!r}") from None
    if not 0 <= start < end <= 24 * 60:
        raise ValueError(f"{hours!r}: the start must come before the end, within one day")
    weekdays: set[int] = set()
    for part in str(days or "Mon-Sun").lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"days must look like Mon-Fri or Mon,Wed,Sat, not {days!r}")
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        weekdays.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return start, end, frozenset(weekdays)
