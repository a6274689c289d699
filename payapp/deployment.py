"""`check-deployment`: is this installation set up the way a payment site must be? (requirement K2)

Plain checks over the configuration and the instance folder; each returns a line an IT person
can act on. Nothing here changes anything.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from .config import DEV_SECRET_KEY, bind_addresses, parse_text_hours
from .models import SiteSetting, utcnow

REVIEW_KEY = "security.last_review"
REVIEW_EVERY = timedelta(days=90)
BACKUP_MAX_AGE = timedelta(hours=26)


@dataclass(frozen=True)
class Check:
    ok: bool
    name: str
    detail: str


def run_checks(cfg, session: Session, now: datetime | None = None) -> list[Check]:
    now = now or utcnow()
    checks = []
    secret = str(cfg.get("SECRET_KEY") or "")
    strong = secret != DEV_SECRET_KEY and len(secret) >= 32 and len(set(secret)) >= 10
    checks.append(
        Check(
            strong,
            "Secret key",
            "long and random-looking"
            if strong
            else 'set PAYAPP_SECRET_KEY to 64 random hex characters (python3 -c "import secrets; '
            'print(secrets.token_hex(32))")',
        )
    )
    https = cfg["PRODUCTION"] and cfg["PUBLIC_BASE_URL"].startswith("https://")
    checks.append(
        Check(
            https,
            "HTTPS",
            "production mode with an https:// address"
            if https
            else "set PAYAPP_ENV=production and an https:// PAYAPP_PUBLIC_BASE_URL",
        )
    )
    live = not cfg["DEMO_MODE"] and cfg["SQUARE_ENVIRONMENT"] == "production"
    checks.append(
        Check(
            live,
            "Square",
            "production keys"
            if live
            else "demo mode"
            if cfg["DEMO_MODE"]
            else "sandbox keys: no real payments",
        )
    )
    if not cfg["DEMO_MODE"]:
        checks.append(apple_pay_check(cfg))
    checks.append(
        Check(
            bool(cfg.get("SQUARE_WEBHOOK_SIGNATURE_KEY")),
            "Square webhooks",
            "signature key set"
            if cfg.get("SQUARE_WEBHOOK_SIGNATURE_KEY")
            else "not configured: refunds made in Square's dashboard won't show up",
        )
    )
    smtp = str(cfg.get("SMTP_URL") or "")
    smtp_tls = smtp.startswith(("smtps://", "smtp+starttls://"))
    checks.append(
        Check(
            smtp_tls,
            "Email",
            "sent over TLS"
            if smtp_tls
            else "plain SMTP (only for a relay on this machine)"
            if smtp
            else "not sent: written to the outbox folder (set PAYAPP_SMTP_URL)",
        )
    )
    checks.extend(twilio_checks(cfg))
    checks.append(proxy_check(cfg))
    checks.append(rate_limit_check(cfg))
    checks.append(_backup_check(Path(cfg["BACKUP_DIR"]), now))
    checks.append(_review_check(session, now))
    return checks


def apple_pay_check(cfg) -> Check:
    """Square mode: Apple Pay shows only on a domain registered in Square's dashboard, which
    checks the association file this site serves (PAYAPP_APPLE_PAY_DOMAIN_ASSOCIATION)."""
    path = cfg.get("APPLE_PAY_DOMAIN_ASSOCIATION")
    if path and Path(path).is_file():
        return Check(
            True,
            "Apple Pay",
            "domain-association file served; register this domain under Apple Pay in Square's "
            "dashboard (Developer Console > Apple Pay) if not done yet",
        )
    return Check(
        False,
        "Apple Pay",
        "file not found: download the domain-association file for this domain from Square's "
        "dashboard (Developer Console > Apple Pay), set PAYAPP_APPLE_PAY_DOMAIN_ASSOCIATION to "
        "its path, then register the domain there"
        if path
        else "no domain-association file: download it from Square's dashboard (Developer "
        "Console > Apple Pay), set PAYAPP_APPLE_PAY_DOMAIN_ASSOCIATION to its path, then "
        "register this domain there",
    )


TWILIO_SETTINGS = (
    "PAYAPP_TWILIO_ACCOUNT_SID, PAYAPP_TWILIO_AUTH_TOKEN and PAYAPP_TWILIO_FROM "
    "(or PAYAPP_TWILIO_MESSAGING_SERVICE_SID)"
)
# US quiet hours for marketing-like texts (TCPA): nothing before 08:00 or after 21:00 local time.
QUIET_BEFORE, QUIET_AFTER = 8 * 60, 21 * 60


def twilio_checks(cfg) -> list[Check]:
    """The Twilio settings: complete, well-formed, an https webhook address (Twilio signs the
    exact URL it posts to), and texting hours a patient would accept. One line each."""
    sid = str(cfg.get("TWILIO_ACCOUNT_SID") or "")
    token = str(cfg.get("TWILIO_AUTH_TOKEN") or "")
    sender = str(cfg.get("TWILIO_FROM") or "")
    service = str(cfg.get("TWILIO_MESSAGING_SERVICE_SID") or "")
    if not (sid or token or sender or service):
        return [
            Check(
                True,
                "Texts",
                f"not sent: written to the outbox folder (optional; set {TWILIO_SETTINGS})",
            )
        ]
    if not (sid and token and (sender or service)):
        missing = [
            name
            for name, value in (
                ("PAYAPP_TWILIO_ACCOUNT_SID", sid),
                ("PAYAPP_TWILIO_AUTH_TOKEN", token),
                ("PAYAPP_TWILIO_FROM or PAYAPP_TWILIO_MESSAGING_SERVICE_SID", sender or service),
            )
            if not value
        ]
        return [
            Check(
                False,
                "Twilio settings",
                f"incomplete: {', '.join(missing)} not set; set {TWILIO_SETTINGS} together, "
                "or none of them",
            )
        ]
    checks = [
        Check(
            bool(re.fullmatch(r"AC[0-9a-f]{32}", sid)),
            "Twilio account SID",
            "well-formed (AC + 32 hex characters)"
            if re.fullmatch(r"AC[0-9a-f]{32}", sid)
            else "PAYAPP_TWILIO_ACCOUNT_SID must be AC followed by 32 hex characters (Twilio "
            "console, Account Info); an SK... API key SID is not the account SID",
        )
    ]
    if service:
        good = bool(re.fullmatch(r"MG[0-9a-f]{32}", service))
        checks.append(
            Check(
                good,
                "Twilio sender",
                f"messaging service {service}"
                if good
                else "PAYAPP_TWILIO_MESSAGING_SERVICE_SID must be MG followed by 32 hex "
                "characters (Twilio console, Messaging, Services)",
            )
        )
    else:
        good = bool(re.fullmatch(r"\+[1-9][0-9]{7,14}", sender))
        checks.append(
            Check(
                good,
                "Twilio sender",
                f"number {sender}"
                if good
                else f"PAYAPP_TWILIO_FROM = {sender!r} is not in E.164 form: write it as "
                "+15551234567 (a plus, the country code, the number, no spaces)",
            )
        )
    webhook = str(cfg.get("TWILIO_WEBHOOK_URL") or "")
    https = webhook.startswith("https://")
    checks.append(
        Check(
            https,
            "Twilio webhook",
            f"in the Twilio console, set {webhook} as the number's (or messaging service's) "
            '"A message comes in" webhook (HTTP POST); payapp asks for delivery status there too'
            if https
            else f"{webhook or 'the webhook address'} is not https://: Twilio signs the exact "
            "URL it posts to, so set an https:// PAYAPP_PUBLIC_BASE_URL (or "
            "PAYAPP_TWILIO_WEBHOOK_URL), then enter it in the Twilio console",
        )
    )
    checks.append(text_hours_check(cfg))
    return checks


def text_hours_check(cfg) -> Check:
    hours, days = cfg.get("TEXT_HOURS") or "", cfg.get("TEXT_DAYS") or ""
    try:
        parsed = parse_text_hours(hours, days)
    except ValueError as exc:
        return Check(False, "Texting hours", f"PAYAPP_TEXT_HOURS / PAYAPP_TEXT_DAYS: {exc}")
    if parsed is None:
        return Check(
            False,
            "Texting hours",
            'PAYAPP_TEXT_HOURS is empty, so texts go out at any hour: set e.g. "08:00-18:00"',
        )
    start, end, weekdays = parsed
    if start < QUIET_BEFORE or end > QUIET_AFTER:
        return Check(
            False,
            "Texting hours",
            f"PAYAPP_TEXT_HOURS = {hours!r} texts patients before 08:00 or after 21:00: keep "
            'them inside 08:00-21:00, e.g. "08:00-18:00"',
        )
    if not weekdays:
        return Check(False, "Texting hours", "PAYAPP_TEXT_DAYS names no day: texts never go out")
    return Check(True, "Texting hours", f"{hours} on {days or 'every day'}, clinic time")


def proxy_check(cfg, environ=None) -> Check:
    """Believing X-Forwarded-For is only safe when nothing but the proxy can reach gunicorn:
    otherwise any client names its own address and walks past every per-address limit."""
    binds = gunicorn_binds(cfg, os.environ if environ is None else environ)
    proxies = int(cfg.get("TRUSTED_PROXIES") or 0)
    where = ", ".join(binds)
    exposed = [b for b in binds if not is_loopback_bind(b)]
    if not proxies and cfg["PRODUCTION"] and not exposed:
        # Only this machine can reach gunicorn, so a proxy (Caddy) is in front: without trusting
        # it every request looks like plain HTTP from 127.0.0.1 (an HTTPS redirect loop, and one
        # rate-limit bucket for every patient).
        return Check(
            False,
            "Proxy headers",
            f"gunicorn listens only on {where}, so browsers reach payapp through a proxy, but "
            "TRUSTED_PROXIES = 0: set TRUSTED_PROXIES = 1 behind the documented Caddy",
        )
    if not proxies:
        return Check(True, "Proxy headers", f"not trusted (TRUSTED_PROXIES = 0); gunicorn: {where}")
    if cfg["PRODUCTION"] and exposed:
        return Check(
            False,
            "Proxy headers",
            f"TRUSTED_PROXIES = {proxies} but gunicorn listens on {', '.join(exposed)}, which "
            'others can reach with a made-up X-Forwarded-For: set BIND = "127.0.0.1:8000" '
            "(behind Caddy on this machine) or TRUSTED_PROXIES = 0",
        )
    return Check(
        True, "Proxy headers", f"X-Forwarded-For from {proxies} proxy(ies); gunicorn on {where}"
    )


def rate_limit_check(cfg) -> Check:
    """deploy/gunicorn.conf.py runs 2 processes: their counters must be shared."""
    if not cfg.get("RATELIMIT_ENABLED", True):
        return Check(False, "Rate limits", "off (RATELIMIT_ENABLED = False): turn them back on")
    scheme = str(cfg["RATELIMIT_STORAGE_URI"]).partition("://")[0]
    if scheme == "sqlite":
        return Check(True, "Rate limits", "counted in a file shared by this machine's processes")
    if scheme != "memory":
        return Check(True, "Rate limits", f"counted in {scheme}, shared by every server using it")
    return Check(
        False,
        "Rate limits",
        "counted in each gunicorn process's memory alone; remove RATELIMIT_STORAGE_URI (a file "
        "shared on this machine) or point every server at Redis",
    )


def gunicorn_binds(cfg, environ) -> list[str]:
    """Where gunicorn listens: BIND, unless GUNICORN_CMD_ARGS overrides it with --bind/-b."""
    args = shlex.split(environ.get("GUNICORN_CMD_ARGS", ""))
    from_args = []
    for i, arg in enumerate(args):
        if arg in ("-b", "--bind") and i + 1 < len(args):
            from_args.append(args[i + 1])
        elif arg.startswith("--bind="):
            from_args.append(arg.partition("=")[2])
    return from_args or bind_addresses(cfg.get("BIND") or "127.0.0.1:8000")


def is_loopback_bind(bind: str) -> bool:
    """'127.0.0.1:8000', 'localhost:8000', '[::1]:8000' and unix sockets stay on this machine."""
    if bind.startswith(("unix:", "fd://")):
        return True
    host = bind.rpartition(":")[0] if ":" in bind else bind
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or an empty host (all interfaces)


def _backup_check(folder: Path, now: datetime) -> Check:
    backups = sorted(folder.glob("payapp-*.db*")) if folder.is_dir() else []
    if not backups:
        return Check(False, "Backups", f"none in {folder}; schedule deploy/backup.sh daily")
    newest = max(b.stat().st_mtime for b in backups)
    age = now - datetime.fromtimestamp(newest, tz=now.tzinfo)
    hours = int(age.total_seconds() // 3600)
    return Check(age <= BACKUP_MAX_AGE, "Backups", f"newest is {hours} hour(s) old ({folder})")


def _review_check(session: Session, now: datetime) -> Check:
    setting = session.get(SiteSetting, REVIEW_KEY)
    if setting is None:
        return Check(
            False,
            "Security review",
            "never recorded: review docs/security/README.md "
            "with the team, then run `flask --app payapp record-security-review`",
        )
    when = datetime.fromisoformat(json.loads(setting.value)["at"])
    days = (now - when).days
    return Check(
        now - when <= REVIEW_EVERY,
        "Security review",
        f"last one {days} day(s) ago"
        + (" — due again (every 90 days)" if now - when > REVIEW_EVERY else ""),
    )


def record_review(session: Session, by: str, now: datetime | None = None) -> None:
    now = now or utcnow()
    setting = session.get(SiteSetting, REVIEW_KEY) or SiteSetting(key=REVIEW_KEY)
    setting.value = json.dumps({"at": now.isoformat(), "by": by})
    setting.updated_at = now
    session.add(setting)
    session.commit()
