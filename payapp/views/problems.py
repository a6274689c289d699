"""Staff pages for patients' problem reports: the list (open, resolved, all) and resolving."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

from .. import problems
from ..db import get_or_404, get_session, page_number, paginate
from ..htmx import render
from ..i18n import translate
from ..models import ProblemReport
from .guards import login_required

bp = Blueprint("problems", __name__)


class ResolveForm(FlaskForm):
    note = TextAreaField(lazy_gettext("Note (what you did)"), validators=[Length(max=4000)])


@bp.get("/problems")
@login_required
def list_problems():
    state = request.args.get("state", "open")
    if state not in problems.STATES:
        state = "open"
    found = paginate(
        get_session(),
        problems.reports_statement(state),
        page=page_number(request.args.get("page")),
        per_page=current_app.config["LINKS_PER_PAGE"],
    )
    return render(
        "problems/list.html",
        reports=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        state=state,
        counts=problems.count_reports(get_session()),
        form=ResolveForm(),
    )


@bp.post("/problems/<id:report_id>/resolve")
@login_required
def resolve_problem(report_id: int):
    get_or_404(ProblemReport, report_id)
    form = ResolveForm()
    back = url_for("problems.list_problems", state=request.args.get("state", "open"))
    if not form.validate():
        flash(_("The note is too long. Shorten it and try again."), "error")
        return redirect(back, code=303)
    try:
        problems.resolve_report(get_session(), report_id, g.staff.id, form.note.data or "")
    except problems.ProblemError as exc:
        flash("; ".join(map(translate, exc.errors.values())), "error")
    else:
        flash(_("Problem report resolved."), "success")
    return redirect(back, code=303)
