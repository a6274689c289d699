"""The dashboard (`/dashboard`): how collection goes over a period staff choose; the page staff
land on after logging in. Figures come from metrics.py; this only reads the period and renders."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext

from .. import link_requests, metrics
from ..charts import bars
from ..db import get_session
from ..htmx import render
from ..i18n import translate
from ..money import format_cents
from .guards import login_required

bp = Blueprint("dashboard", __name__)

CHOICES = (
    ("today", lazy_gettext("Today")),
    ("7", lazy_gettext("7 days")),
    ("30", lazy_gettext("30 days")),
    ("90", lazy_gettext("90 days")),
)


def _duration(seconds: int | None) -> str:
    """'2\u00a0days 3\u00a0h', '3\u00a0days', '5\u00a0h 10\u00a0min', '12\u00a0min': how long
    patients took to pay. A no-break space joins each number to its unit, so a narrow card never
    leaves "h" alone on a line; a zero second part is left out ("3 days", not "3 d 0 h")."""
    if seconds is None:
        return "—"
    minutes = seconds // 60
    days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
    in_days = ngettext("%(num)s\u00a0day", "%(num)s\u00a0days", days)
    in_hours = _("%(num)s\u00a0h", num=hours)
    in_minutes = _("%(num)s\u00a0min", num=mins)
    if days:
        return in_days + " " + in_hours if hours else in_days
    if hours:
        return in_hours + " " + in_minutes if mins else in_hours
    return in_minutes


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


@bp.get("/dashboard")
@login_required
def show_dashboard():
    args = request.args
    tz = current_app.config["CLINIC_TIMEZONE"]
    now = datetime.now(UTC)
    error = None
    try:
        choice, period = metrics.period_for(
            args.get("period", "30", type=str)[:10],
            now,
            tz,
            args.get("from", "", type=str)[:10],
            args.get("to", "", type=str)[:10],
        )
    except metrics.PeriodError as exc:
        error = translate(exc.args[0])
        choice, period = metrics.period_for("30", now, tz)
    figures = metrics.dashboard(get_session(), period, now)
    chart = bars([(f"{d.day:%b} {d.day.day}", d.cents) for d in figures.trend])
    return render(
        "dashboard/index.html",
        "panels",
        status_code=422 if error else 200,
        figures=figures,
        chart=chart,
        choice=choice,
        choices=CHOICES,
        period=period,
        error=error,
        custom_from=args.get("from", "", type=str)[:10],
        custom_to=args.get("to", "", type=str)[:10],
        duration=_duration,
        percent=_percent,
        money=format_cents,
        link_requests=link_requests.open_requests(get_session()),
        link_request_count=link_requests.count_open(get_session()),
    )
