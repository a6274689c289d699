"""The audit trail: one append-only row per staff action, patient step and security event."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from .models import AuditEvent, utcnow
from .states import AuditAction


def record(
    session: Session,
    action: AuditAction | str,
    *,
    actor: str = "system",
    staff_id: int | None = None,
    link_id: int | None = None,
    detail: str = "",
    when: datetime | None = None,
) -> AuditEvent:
    """Add an event to the session (the caller's commit makes it durable with the change).
    ``action`` must be an AuditAction (or its value): a misspelled one raises ValueError."""
    event = AuditEvent(
        actor=actor,
        staff_id=staff_id,
        action=AuditAction(action).value,
        link_id=link_id,
        detail=detail[:500],
        created_at=when or utcnow(),
    )
    session.add(event)
    return event


def link_timeline(session: Session, link_id: int) -> list[AuditEvent]:
    """Everything that happened to one link, oldest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.link_id == link_id)
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )
    return list(session.scalars(stmt))


# What staff should check when the card gateway refuses payapp's own requests.
GATEWAY_HINTS = {
    "AUTHENTICATION_ERROR": "Square rejected payapp's access token: check "
    "PAYAPP_SQUARE_ACCESS_TOKEN (and that it belongs to PAYAPP_SQUARE_ENVIRONMENT), then run "
    "`flask --app payapp check-square`.",
    "NOT_FOUND": "Square could not find something payapp asked for (usually the location: check "
    "PAYAPP_SQUARE_LOCATION_ID, or keys from the other environment); run "
    "`flask --app payapp check-square`.",
    "RATE_LIMITED": "Square is rate-limiting payapp; payments should recover by themselves.",
}


def gateway_hint(detail: str) -> str:
    category, _, code = detail.partition("/")
    return (
        GATEWAY_HINTS.get(code)
        or GATEWAY_HINTS.get(category)
        or (f"Square refused a payment request ({detail}). Patients were told nothing was charged.")
    )


_PAY_TOKEN_IN_URL = re.compile(r"/pay/[^/?#\s\"']+")


def redact_url(text: str) -> str:
    """Payment-link tokens never get stored outside their link: /pay/<token> -> /pay/[token]."""
    return _PAY_TOKEN_IN_URL.sub("/pay/[token]", text)


def csv_cell(value) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote them (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@event.listens_for(Session, "before_flush")
def _audit_is_append_only(session, _context, _instances):
    """The application can add audit events but never change or delete one."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("audit events are append-only")
