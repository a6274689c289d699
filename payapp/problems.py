"""Problem reports: what a patient says went wrong with a payment link, and staff resolving it.

Everything here is patient-typed and untrusted: the category must be one of ours, the text is
short and refuses invisible characters, the call-back number must be a real phone number. The
form asks for no clinical detail, but the text may still hold anything, so it is shown only on
the staff page (behind login), never emailed or written to the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session, selectinload

from . import audit
from .links import normalize_phone
from .models import PaymentLink, ProblemReport, utcnow
from .plaintext import (
    LINE_BREAKS,
    has_invisible_characters,
    invisible_message,
    patient_text,
    staff_text,
)
from .states import AuditAction, ProblemCategory

TEXT_MAX = 1000
NOTE_MAX = 1000


class ProblemError(ValueError):
    """A report or a resolution that cannot be stored; ``errors`` maps field -> message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors

    @classmethod
    def already_resolved(cls) -> ProblemError:
        return cls({"form": staff_text("Someone has already resolved this report.")})


@dataclass
class ProblemDraft:
    """What the patient's form posted, as typed."""

    category: str = ""
    text: str = ""
    callback_phone: str = ""


def clean_draft(draft: ProblemDraft, phone_region: str) -> tuple[ProblemCategory, str, str | None]:
    """The category, text and E.164 phone, or ProblemError with a message per bad field."""
    errors: dict[str, str] = {}
    category = ProblemCategory.lookup(draft.category)
    if category is None:
        errors["category"] = patient_text("Choose what went wrong.")
    text = (draft.text or "").strip()
    if len(text) > TEXT_MAX:
        errors["text"] = patient_text(
            "Keep it under %(max)s characters (%(count)s now).", max=TEXT_MAX, count=len(text)
        )
    elif has_invisible_characters(text, allow=LINE_BREAKS):
        errors["text"] = invisible_message("message")
    phone = None
    if (draft.callback_phone or "").strip():
        phone = normalize_phone(draft.callback_phone[:100], phone_region)
        if phone is None:
            errors["callback_phone"] = patient_text(
                "Enter a phone number we can call, like (212) 555-0123."
            )
    if errors:
        raise ProblemError(errors)
    return category, text, phone


def create_report(
    session: Session,
    link: PaymentLink,
    draft: ProblemDraft,
    *,
    phone_region: str = "US",
    now: datetime | None = None,
) -> ProblemReport:
    """Store a patient's report on ``link`` (whatever its state) and audit it (category only)."""
    category, text, phone = clean_draft(draft, phone_region)
    now = now or utcnow()
    report = ProblemReport(
        link_id=link.id, category=category, text=text, callback_phone=phone, created_at=now
    )
    session.add(report)
    audit.record(
        session,
        AuditAction.PROBLEM_REPORTED,
        actor="patient",
        link_id=link.id,
        detail=category.label,
        when=now,
    )
    session.commit()
    return report


def resolve_report(
    session: Session,
    report_id: int,
    staff_id: int,
    note: str = "",
    *,
    now: datetime | None = None,
) -> ProblemReport:
    """Mark a report resolved by ``staff_id`` with an optional note. Two people pressing Resolve
    at once: one UPDATE wins, the other gets ProblemError.already_resolved()."""
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise ProblemError(
            {"note": staff_text("Keep the note under %(max)s characters.", max=NOTE_MAX)}
        )
    if has_invisible_characters(note, allow=LINE_BREAKS):
        raise ProblemError({"note": invisible_message("note")})
    now = now or utcnow()
    done = session.execute(
        update(ProblemReport)
        .where(ProblemReport.id == report_id, ProblemReport.resolved_at.is_(None))
        .values(resolved_at=now, resolved_by_id=staff_id, note=note)
    )
    if done.rowcount != 1:
        session.rollback()
        raise ProblemError.already_resolved()
    report = session.get(ProblemReport, report_id)
    session.refresh(report)
    audit.record(
        session,
        AuditAction.PROBLEM_RESOLVED,
        actor="staff",
        staff_id=staff_id,
        link_id=report.link_id,
        detail=f"report {report_id}",
        when=now,
    )
    session.commit()
    return report


def is_first_in_a_while(session: Session, report: ProblemReport, minutes: int) -> bool:
    """Whether ``report`` is the first on its link for ``minutes``: the front desk is emailed
    once per link per quiet period, so one patient (or a script) cannot flood its inbox; every
    report is still stored and listed."""
    since = report.created_at - timedelta(minutes=minutes)
    earlier = session.scalar(
        select(func.count())
        .select_from(ProblemReport)
        .where(
            ProblemReport.link_id == report.link_id,
            ProblemReport.id != report.id,
            ProblemReport.created_at > since,
            ProblemReport.created_at <= report.created_at,
        )
    )
    return not earlier


STATES = ("open", "resolved", "all")


def reports_statement(state: str = "open") -> Select:
    """Reports newest first: ``open``, ``resolved`` or ``all``, with link and resolver loaded."""
    stmt = (
        select(ProblemReport)
        .options(selectinload(ProblemReport.link), selectinload(ProblemReport.resolved_by))
        .order_by(ProblemReport.created_at.desc(), ProblemReport.id.desc())
    )
    if state == "open":
        stmt = stmt.where(ProblemReport.resolved_at.is_(None))
    elif state == "resolved":
        stmt = stmt.where(ProblemReport.resolved_at.is_not(None))
    return stmt


@dataclass(frozen=True)
class ProblemCounts:
    open: int
    resolved: int


def count_reports(
    session: Session, since: datetime | None = None, until: datetime | None = None
) -> ProblemCounts:
    """How many reports are open and resolved (made in [since, until) when given), in one query:
    for the staff menu and the dashboard."""
    stmt = select(
        func.count().filter(ProblemReport.resolved_at.is_(None)),
        func.count().filter(ProblemReport.resolved_at.is_not(None)),
    ).select_from(ProblemReport)
    if since is not None:
        stmt = stmt.where(ProblemReport.created_at >= since)
    if until is not None:
        stmt = stmt.where(ProblemReport.created_at < until)
    open_count, resolved_count = session.execute(stmt).one()
    return ProblemCounts(open=int(open_count or 0), resolved=int(resolved_count or 0))
