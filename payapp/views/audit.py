"""Admin views of the audit trail and of security reports, and the CSP report endpoint."""

from __future__ import annotations

import csv
import io
import json

from flask import Blueprint, Response, abort, current_app, g, request
from sqlalchemy import select

from .. import audit
from ..db import get_session
from ..extensions import csrf, limiter
from ..htmx import render
from ..models import AuditEvent, CspReport, SiteSetting
from ..notify import Clinic
from .guards import role_required

bp = Blueprint("audit", __name__)

PAGE_SIZE = 100
CSP_REPORT_MAX = 8 * 1024


@bp.get("/audit")
@role_required("admin")
def show_audit():
    action = request.args.get("action", "")[:40]
    stmt = select(AuditEvent).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    events = get_session().scalars(stmt.limit(PAGE_SIZE)).all()
    return render("audit/events.html", block="event_list", events=events, action=action)


@bp.get("/audit.csv")
@role_required("admin")
def export_audit():
    audit.record(get_session(), "audit.exported", actor="staff", staff_id=g.staff.id)
    get_session().commit()
    rows = get_session().scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    clinic = Clinic.from_config(current_app.config)
    # Times as ISO 8601 with their offset: UTC for sorting and other systems, and the clinic's
    # local time as the staff pages show it.
    writer.writerow(
        ["id", "when_utc", "when_local", "actor", "staff_email", "action", "link_id", "detail"]
    )
    for e in rows:
        writer.writerow(
            [
                audit.csv_cell(v)
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
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="payapp-audit.csv"'},
    )


@bp.get("/security")
@role_required("admin")
def show_security():
    session = get_session()
    reports = session.scalars(select(CspReport).order_by(CspReport.id.desc()).limit(50)).all()
    alerts = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action.in_(("integrity.alert", "integrity.baseline")))
        .order_by(AuditEvent.id.desc())
        .limit(20)
    ).all()
    baseline = session.get(SiteSetting, "integrity.baseline")
    inventory = current_app.extensions["payapp.inventory"]
    return render(
        "audit/security.html",
        reports=reports,
        alerts=alerts,
        baseline=baseline,
        inventory=inventory,
    )


@bp.post("/csp-report")
@csrf.exempt  # browsers send these without cookies or tokens
@limiter.limit(lambda: current_app.config["RATELIMIT_CSP_REPORT"])
def receive_csp_report():
    if (request.content_length or 0) > CSP_REPORT_MAX:
        abort(413)
    raw = request.get_data(as_text=True)[:CSP_REPORT_MAX]
    try:
        body = json.loads(raw)
    except ValueError:
        abort(400)
    # report-uri sends {"csp-report": {...}}; the Reporting API sends [{"type":..., "body": {...}}]
    report = body.get("csp-report") if isinstance(body, dict) else None
    if report is None and isinstance(body, list) and body and isinstance(body[0], dict):
        report = body[0].get("body")
    if not isinstance(report, dict):
        abort(400)

    def field(*names):
        for name in names:
            if report.get(name):
                return str(report[name])[:490]
        return ""

    session = get_session()
    session.add(
        CspReport(
            document_uri=audit.redact_url(field("document-uri", "documentURL")),
            violated_directive=field(
                "violated-directive", "effective-directive", "effectiveDirective"
            ),
            blocked_uri=audit.redact_url(field("blocked-uri", "blockedURL")),
            raw=audit.redact_url(raw)[:4000],
        )
    )
    audit.record(
        session,
        "csp.violation",
        actor="system",
        detail=field("violated-directive", "effective-directive", "effectiveDirective"),
    )
    session.commit()
    return "", 204
