"""Alerts staff must see: gateway configuration errors, decline spikes (card testing),
integrity changes and CSP violations. Each is an audit event; this module finds the live ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit
from .models import AuditEvent, Payment, utcnow
from .states import AuditAction, PaymentStatus

# action -> who sees it on the staff banner
ALERT_ACTIONS = {
    AuditAction.GATEWAY_ERROR: "staff",
    AuditAction.DECLINES_SPIKE: "admin",
    AuditAction.INTEGRITY_ALERT: "admin",
    AuditAction.PAYMENT_PAID_TWICE: "staff",  # two charges on one link: refund one
    # run-jobs could not learn whether a charge went through
    AuditAction.PAYMENT_UNRESOLVED: "staff",
}


def active_alerts(session: Session, role: str, now: datetime | None = None, hours: int = 24):
    """The newest alert of each kind from the last day that this role should see."""
    since = (now or utcnow()) - timedelta(hours=hours)
    visible = [a for a, who in ALERT_ACTIONS.items() if who == "staff" or role == "admin"]
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action.in_(visible), AuditEvent.created_at >= since)
        .order_by(AuditEvent.created_at.desc())
    ).all()
    newest = {}
    for event in events:
        newest.setdefault(event.action, event)
    return list(newest.values())


def check_decline_spike(session: Session, cfg, now: datetime | None = None) -> bool:
    """Raise an admin alert when declines across all links exceed the threshold in the window
    (a card-testing attack); at most one alert per window."""
    now = now or utcnow()
    window = timedelta(minutes=int(cfg["DECLINE_SPIKE_WINDOW_MINUTES"]))
    declines = session.scalar(
        select(func.count())
        .select_from(Payment)
        .where(Payment.status == PaymentStatus.FAILED, Payment.created_at >= now - window)
    )
    if declines < int(cfg["DECLINE_SPIKE_THRESHOLD"]):
        return False
    already = session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.action == AuditAction.DECLINES_SPIKE, AuditEvent.created_at >= now - window
        )
    )
    if already:
        return False
    audit.record(
        session,
        AuditAction.DECLINES_SPIKE,
        when=now,
        detail=f"{declines} declined payments in the last {window.seconds // 60} minutes",
    )
    session.commit()
    return True
