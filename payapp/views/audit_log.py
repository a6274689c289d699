"""Admin pages of the audit trail and of security reports, and the CSP report endpoint.

The blueprint keeps the name ``audit`` (endpoints ``audit.show_audit`` ...); the module is
audit_log so that it is not mistaken for the domain's payapp.audit.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, g, request

from .. import audit, audit_export, csp_reports, integrity
from ..clinic import Clinic
from ..db import get_session, page_number, paginate
from ..extensions import csrf, limiter
from ..htmx import render
from .guards import role_required

bp = Blueprint("audit", __name__)

PAGE_SIZE = 100


@bp.get("/audit")
@role_required("admin")
def show_audit():
    action = request.args.get("action", "")[:40]
    found = paginate(
        get_session(),
        audit.events_statement(action),
        page=page_number(request.args.get("page")),
        per_page=PAGE_SIZE,
    )
    return render("audit/events.html", block="event_list", events=found.items, action=action)


@bp.get("/audit.csv")
@role_required("admin")
def export_audit():
    text = audit_export.export_csv(
        get_session(), Clinic.from_config(current_app.config), staff_id=g.staff.id
    )
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="payapp-audit.csv"'},
    )


@bp.get("/security")
@role_required("admin")
def show_security():
    session = get_session()
    return render(
        "audit/security.html",
        reports=csp_reports.recent_reports(session, limit=50),
        alerts=integrity.recent_events(session, limit=20),
        baseline=integrity.baseline(session),
        inventory=current_app.extensions["payapp.inventory"],
    )


@bp.post("/csp-report")
@csrf.exempt  # browsers send these without cookies or tokens
@limiter.limit(lambda: current_app.config["RATELIMIT_CSP_REPORT"])
def receive_csp_report():
    if (request.content_length or 0) > csp_reports.MAX_BYTES:
        abort(413)
    try:
        csp_reports.record_report(get_session(), request.get_data(as_text=True))
    except csp_reports.CspReportError:
        abort(400)
    return "", 204
