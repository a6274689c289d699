"""Alerts staff must see: gateway configuration errors, integrity changes, double charges,
unresolved payments (each an audit event; this module finds the live ones), and failure surges.

A failure surge is one rule for every kind of failure (``SurgeKind``): in the last
``SURGE_WINDOW_MINUTES``, at least the kind's minimum count of failures AND a failure rate at least
``SURGE_RATE_FACTOR`` times the rate of the ``SURGE_BASELINE_DAYS`` before. Each surge is one
incident (a ``FailureSurge`` row): admins get one email when it starts and one when a later check
finds the rate back under the threshold; the banner shows it until an admin acknowledges it.
Counted with one SQL aggregate per kind, so checking on every failure stays cheap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit, notify
from .clinic import Clinic
from .models import AuditEvent, FailureSurge, Message, Payment, StaffUser, utcnow
from .plaintext import staff_text
from .states import AuditAction, MessageStatus, PaymentStatus, SurgeKind

log = logging.getLogger(__name__)

# action -> who sees it on the staff banner
ALERT_ACTIONS = {
    AuditAction.GATEWAY_ERROR: "staff",
    AuditAction.INTEGRITY_ALERT: "admin",
    AuditAction.PAYMENT_PAID_TWICE: "staff",  # two charges on one link: refund one
    # run-jobs could not learn whether a charge went through
    AuditAction.PAYMENT_UNRESOLVED: "staff",
}

MIN_FAILURES_SETTING = {
    SurgeKind.PAYMENT: "SURGE_MIN_PAYMENT_FAILURES",
    SurgeKind.MESSAGE: "SURGE_MIN_MESSAGE_FAILURES",
    SurgeKind.GATEWAY: "SURGE_MIN_GATEWAY_ERRORS",
}
# A recovery notice stays on the banner this long unless acknowledged.
RECOVERY_NOTICE_HOURS = 24


def active_alerts(session: Session, role: str, now: datetime | None = None, hours: int = 24):
    """The newest alert of each kind from the last day that this role should see, newest first.

    One indexed lookup per kind ((action, created_at), LIMIT 1): every staff page shows the
    banner, and a busy site writes tens of thousands of audit events a day."""
    since = (now or utcnow()) - timedelta(hours=hours)
    visible = [a for a, who in ALERT_ACTIONS.items() if who == "staff" or role == "admin"]
    newest = [
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.created_at >= since)
            .order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
            .limit(1)
        ).first()
        for action in visible
    ]
    return sorted(
        (event for event in newest if event is not None),
        key=lambda event: (event.created_at, event.id),
        reverse=True,
    )


# --- failure surges -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureCounts:
    """Failures and attempts of one kind in the recent window and in the baseline before it."""

    failures: int
    total: int
    baseline_failures: int
    baseline_total: int

    @property
    def rate(self) -> float:
        return self.failures / max(self.total, self.failures, 1)

    @property
    def baseline_rate(self) -> float:
        return self.baseline_failures / max(self.baseline_total, self.baseline_failures, 1)


def _sources(kind: SurgeKind):
    """(table's time column, 'is a failure', 'counts at all') for one kind."""
    if kind == SurgeKind.PAYMENT:
        return Payment.created_at, Payment.status == PaymentStatus.FAILED, None
    if kind == SurgeKind.MESSAGE:
        return Message.created_at, Message.status == MessageStatus.FAILED, None
    # Set-up errors out of payment attempts (both audit events, indexed by action and time).
    return (
        AuditEvent.created_at,
        AuditEvent.action == AuditAction.GATEWAY_ERROR,
        AuditEvent.action.in_((AuditAction.GATEWAY_ERROR, AuditAction.PAYMENT_ATTEMPTED)),
    )


def count_failures(session: Session, kind: SurgeKind, cfg, now: datetime) -> FailureCounts:
    """One aggregate query: failures and totals in the window and in the baseline before it."""
    created, failed, relevant = _sources(kind)
    recent_from = now - timedelta(minutes=int(cfg["SURGE_WINDOW_MINUTES"]))
    baseline_from = recent_from - timedelta(days=int(cfg["SURGE_BASELINE_DAYS"]))
    recent = created >= recent_from

    def total(*conditions):
        return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)

    is_attempt = AuditEvent.action == AuditAction.PAYMENT_ATTEMPTED
    counted = is_attempt if kind == SurgeKind.GATEWAY else true()
    query = select(
        total(recent, failed),
        total(recent, counted),
        total(~recent, failed),
        total(~recent, counted),
    ).where(created >= baseline_from, created <= now)
    if relevant is not None:
        query = query.where(relevant)
    return FailureCounts(*(int(n) for n in session.execute(query).one()))


def _min_failures(kind: SurgeKind, cfg) -> int:
    return int(cfg[MIN_FAILURES_SETTING[kind]])


def is_surge(counts: FailureCounts, kind: SurgeKind, cfg, threshold_rate: float) -> bool:
    return counts.failures >= _min_failures(kind, cfg) and counts.rate >= threshold_rate


def open_incident(session: Session, kind: SurgeKind) -> FailureSurge | None:
    return session.scalar(select(FailureSurge).where(FailureSurge.open_kind == kind))


def check_surges(
    session: Session,
    cfg,
    transports: notify.Transports | None = None,
    *,
    kinds=tuple(SurgeKind),
    now: datetime | None = None,
) -> list[tuple[SurgeKind, str]]:
    """Open an incident for each kind now surging and close each open one that has recovered;
    email every active admin once per start and once per recovery. Returns what changed, as
    (kind, "started" | "recovered") pairs. Safe to run from several processes at once: the
    database decides which of them opens or closes an incident, and only that one emails."""
    now = now or utcnow()
    changes = []
    for kind in kinds:
        kind = SurgeKind(kind)
        counts = count_failures(session, kind, cfg, now)
        incident = open_incident(session, kind)
        if incident is None:
            threshold = float(cfg["SURGE_RATE_FACTOR"]) * counts.baseline_rate
            if is_surge(counts, kind, cfg, threshold) and _start(
                session, kind, counts, threshold, now
            ):
                changes.append((kind, "started"))
        elif not is_surge(counts, kind, cfg, incident.threshold_rate) and _recover(
            session, incident, counts, now
        ):
            changes.append((kind, "recovered"))
    for kind, change in changes:
        incident = session.scalar(
            select(FailureSurge)
            .where(FailureSurge.kind == kind)
            .order_by(FailureSurge.id.desc())
            .limit(1)
        )
        _email_admins(session, cfg, transports, incident, change)
    return changes


def _start(session, kind, counts, threshold, now) -> bool:
    incident = FailureSurge(
        kind=kind,
        open_kind=kind,
        failures=counts.failures,
        total=max(counts.total, counts.failures),
        baseline_rate=counts.baseline_rate,
        threshold_rate=threshold,
        started_at=now,
    )
    session.add(incident)
    try:
        session.flush()
    except IntegrityError:  # another process opened this kind's incident first
        session.rollback()
        return False
    audit.record(session, AuditAction.SURGE_STARTED, when=now, detail=str(describe(incident)))
    session.commit()
    return True


def _recover(session, incident: FailureSurge, counts: FailureCounts, now) -> bool:
    closed = session.execute(
        update(FailureSurge)
        .where(FailureSurge.id == incident.id, FailureSurge.open_kind.is_not(None))
        .values(open_kind=None, recovered_at=now)
    ).rowcount
    if not closed:  # another process closed it first
        session.rollback()
        return False
    audit.record(
        session,
        AuditAction.SURGE_RECOVERED,
        when=now,
        detail=f"{SurgeKind(incident.kind).label}: back to {counts.failures} in the window "
        f"({counts.rate:.0%})",
    )
    session.commit()
    session.refresh(incident)
    return True


# One whole sentence per kind (each reads its kind's label mid-sentence), for the catalogue.
DESCRIPTIONS = {
    SurgeKind.PAYMENT: staff_text(
        "%(failures)s card payment failures of %(total)s in the window (%(rate)s; usually "
        "%(baseline)s)"
    ),
    SurgeKind.MESSAGE: staff_text(
        "%(failures)s email and text delivery failures of %(total)s in the window (%(rate)s; "
        "usually %(baseline)s)"
    ),
    SurgeKind.GATEWAY: staff_text(
        "%(failures)s payment system set-up errors of %(total)s in the window (%(rate)s; "
        "usually %(baseline)s)"
    ),
}


def describe(incident: FailureSurge) -> str:
    """What the banner and the email say about an incident: English as a ``str`` (the audit
    detail and the email keep it so), translated where the banner shows it."""
    return staff_text(
        DESCRIPTIONS[SurgeKind(incident.kind)],
        failures=incident.failures,
        total=incident.total,
        rate=f"{incident.failures / max(incident.total, 1):.0%}",
        baseline=f"{incident.baseline_rate:.0%}",
    )


def _email_admins(session, cfg, transports, incident: FailureSurge, change: str) -> None:
    transports = transports or notify.Transports.from_config(cfg)
    clinic = Clinic.from_config(cfg)
    kind = SurgeKind(incident.kind)
    if change == "started":
        subject = f"{clinic.name}: surge of {kind.label}"
        body = (
            f"payapp saw a surge of {kind.label} at {clinic.name}, starting "
            f"{clinic.local_time(incident.started_at)}:\n\n  {describe(incident)}\n\n"
            f"{ADVICE[kind]}\n\nLog in to payapp to acknowledge this alert. You will get one more "
            "email when the failure rate is back to normal.\n"
        )
    else:
        subject = f"{clinic.name}: {kind.label} back to normal"
        body = (
            f"The surge of {kind.label} at {clinic.name} that started "
            f"{clinic.local_time(incident.started_at)} is over "
            f"({clinic.local_time(incident.recovered_at)}).\n"
        )
    admins = session.scalars(
        select(StaffUser.email).where(StaffUser.role == "admin", StaffUser.active.is_(True))
    ).all()
    for n, email in enumerate(admins):
        name = f"surge-{incident.id}-{change}-{n}"
        try:
            notify.send_staff_email(transports, email, subject, body, name)
        except Exception:  # noqa: BLE001 - the banner still shows it; never fail the caller
            log.exception("surge email %s could not be sent", name)


ADVICE = {
    SurgeKind.PAYMENT: "Many declines in a short time can be card testing: check recent links, "
    "and consider cancelling links you did not send.",
    SurgeKind.MESSAGE: "Payment links are not reaching patients: check the email and text "
    "settings (SMTP_URL) and the errors on recent links, then resend.",
    SurgeKind.GATEWAY: "Patients may not be able to pay online: check the Square settings "
    "(flask --app payapp check-square).",
}


def banner_incidents(session: Session, now: datetime | None = None) -> list[FailureSurge]:
    """Incidents an admin has not acknowledged yet: open ones, and recoveries of the last day
    (acknowledging an open incident hides it until it recovers; the recovery notice shows then)."""
    now = now or utcnow()
    unacknowledged = or_(
        FailureSurge.acknowledged_at.is_(None),
        FailureSurge.acknowledged_at < FailureSurge.recovered_at,
    )
    return list(
        session.scalars(
            select(FailureSurge)
            .where(
                or_(
                    and_(
                        FailureSurge.open_kind.is_not(None), FailureSurge.acknowledged_at.is_(None)
                    ),
                    and_(
                        FailureSurge.recovered_at >= now - timedelta(hours=RECOVERY_NOTICE_HOURS),
                        unacknowledged,
                    ),
                )
            )
            .order_by(FailureSurge.started_at.desc())
        )
    )


def acknowledge(
    session: Session, incident: FailureSurge, staff_id: int, now: datetime | None = None
) -> None:
    """An admin has seen this incident (or its recovery notice): off the banner, on the record."""
    now = now or utcnow()
    incident.acknowledged_at = now
    incident.acknowledged_by_id = staff_id
    what = "recovery notice" if incident.recovered_at else "alert"
    audit.record(
        session,
        AuditAction.SURGE_ACKNOWLEDGED,
        actor="staff",
        staff_id=staff_id,
        when=now,
        detail=f"{what}: {SurgeKind(incident.kind).label} since "
        f"{incident.started_at:%Y-%m-%d %H:%M} UTC",
    )
    session.commit()
