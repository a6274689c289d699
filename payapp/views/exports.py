"""Staff CSV exports: GET /exports (the date-range form), /exports/links.csv and
/exports/payments.csv (streamed; exports.py makes the lines)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, Response, current_app, g, request, stream_with_context

from .. import exports
from ..clinic import Clinic
from ..db import get_session
from ..htmx import render
from ..i18n import translate
from ..models import utcnow
from .guards import login_required

bp = Blueprint("exports", __name__)


def _default_dates(clinic: Clinic) -> tuple[str, str]:
    today = utcnow().astimezone(ZoneInfo(clinic.timezone)).date()
    return today.replace(day=1).isoformat(), today.isoformat()


def _form(first: str, last: str, error: str | None = None, status_code: int = 200):
    return render(
        "exports/index.html",
        first=first,
        last=last,
        error=error,
        max_days=exports.MAX_DAYS,
        status_code=status_code,
    )


@bp.get("/exports")
@login_required
def show_exports():
    first, last = _default_dates(Clinic.from_config(current_app.config))
    return _form(request.args.get("from", first)[:20], request.args.get("to", last)[:20])


def _download(kind: str):
    clinic = Clinic.from_config(current_app.config)
    first, last = request.args.get("from", "")[:40], request.args.get("to", "")[:40]
    try:
        dates = exports.parse_range(first, last, clinic)
    except exports.ExportError as exc:
        return _form(first[:20], last[:20], translate(exc.args[0]), status_code=422)
    session = get_session()
    exports.record_export(session, kind, dates, staff_id=g.staff.id)
    make = exports.link_lines if kind == "links" else exports.money_lines
    lines = make(session, clinic, dates, batch_size=current_app.config["EXPORT_BATCH_SIZE"])
    return Response(
        stream_with_context(closing_session(session, lines)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{kind}_{dates.filename_part}.csv"'},
    )


def closing_session(session, lines):
    """The lines, then their session closed, however the download ends. Flask's teardown closes
    the request's session when the view returns, before the first line is sent; the lines then
    read through it again, so it holds a connection (on PostgreSQL, idle in a transaction) that
    nothing else would give back to the pool until the garbage collector found the session."""
    try:
        yield from lines
    finally:
        session.close()


@bp.get("/exports/links.csv")
@login_required
def export_links():
    return _download("links")


@bp.get("/exports/payments.csv")
@login_required
def export_payments():
    return _download("payments")
