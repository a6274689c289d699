"""Admins acknowledge a failure surge (or its recovery notice): POST /alerts/<id>/acknowledge
takes it off the banner and records who and when in the audit trail (alerts.acknowledge)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, url_for
from flask_babel import gettext as _

from .. import alerts
from ..db import get_or_404, get_session
from ..models import FailureSurge
from .guards import role_required

bp = Blueprint("alerts", __name__, url_prefix="/alerts")


@bp.post("/<id:incident_id>/acknowledge")
@role_required("admin")
def acknowledge_surge(incident_id: int):
    session = get_session()
    incident = get_or_404(FailureSurge, incident_id, session)
    alerts.acknowledge(session, incident, g.staff.id)
    flash(_("Alert acknowledged."), "success")
    return redirect(url_for("staff.list_links"), code=303)
