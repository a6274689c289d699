"""The audit trail as a CSV file for admins (and the spreadsheets they open it in)."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .clinic import Clinic
from .models import AuditEvent
from .states import AuditAction

COLUMNS = ("id", "when_utc", "when_local", "actor", "staff_email", "action", "link_id", "detail")


def csv_cell(value) -> str:
    """Spreadsheets run cells starting with = + - @ as formulas: quote them (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(session: Session, clinic: Clinic, *, staff_id: int) -> str:
    """Record that ``staff_id`` exported the trail, then return all of it (the export included)
    as CSV text, oldest first."""
    audit.record(session, AuditAction.AUDIT_EXPORTED, actor="staff", staff_id=staff_id)
    session.commit()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # Times as ISO 8601 with their offset: UTC for sorting and other systems, and the clinic's
    # local time as the staff pages show it.
    writer.writerow(COLUMNS)
    for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all():
        writer.writerow(
            [
                csv_cell(v)
                for v in (
                    e.id,
                    e.created_at.isoformat(),
                    clinic.local_time(e.created_at, "iso"),
                    e.actor,
                    e.staff.email if e.staff else "",
                    e.action,
                    e.link_id or "",
                    e.detail,
                )
            ]
        )
    return buffer.getvalue()
