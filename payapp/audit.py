"""The audit trail: one append-only row per staff action, patient step and security event."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, event, false, select
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


def events_statement(action: str = "") -> Select:
    """All events newest first, or only those with ``action``: for the audit page to page."""
    stmt = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if "\x00" in action:
        # No stored action holds a NUL, and PostgreSQL refuses one in a parameter (a 500).
        return stmt.where(false())
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return stmt


@event.listens_for(Session, "before_flush")
def _audit_is_append_only(session, _context, _instances):
    """The application can add audit events but never change or delete one."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("audit events are append-only")
