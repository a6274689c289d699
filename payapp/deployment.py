"""`check-deployment`: is this installation set up the way a payment site must be? (SECURITY.md K2)

Plain checks over the configuration and the instance folder; each returns a line an IT person
can act on. Nothing here changes anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from .config import DEV_SECRET_KEY
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
    checks.append(_backup_check(Path(cfg["BACKUP_DIR"]), now))
    checks.append(_review_check(session, now))
    return checks


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
