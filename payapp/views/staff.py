"""Staff pages: the link list, creating, sending, cancelling and reissuing links."""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, current_app, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import Length

from .. import audit, link_requests, links, notify, payments, refunds, reminders
from ..clinic import Clinic
from ..db import get_or_404, get_session, is_valid_id
from ..errors import render_error
from ..htmx import is_htmx_request, render
from ..i18n import translate
from ..models import LinkRequest, Payment, PaymentLink
from ..money import AmountError, format_cents, parse_amount
from ..qr import qr_svg
from ..states import LinkStatus, MessageStatus, RefundStatus
from .guards import login_required, reauth_required

bp = Blueprint("staff", __name__)


class NewLinkForm(FlaskForm):
    # Generous bounds here only stop oversized posts; links.clean_draft() gives the real messages.
    patient_name = StringField(lazy_gettext("Patient name"), validators=[Length(max=500)])
    email = StringField(lazy_gettext("Email"), validators=[Length(max=500)])
    phone = StringField(lazy_gettext("Mobile number"), validators=[Length(max=100)])
    amount = StringField(lazy_gettext("Amount (USD)"), validators=[Length(max=50)])
    reference = StringField(
        lazy_gettext("Statement or invoice number"), validators=[Length(max=500)]
    )
    description = TextAreaField(
        lazy_gettext("Short description (staff only)"), validators=[Length(max=2000)]
    )
    expires_in_days = StringField(
        lazy_gettext("Link expires after (days)"), validators=[Length(max=20)]
    )
    send_now = BooleanField(lazy_gettext("Send the link to the patient now"), default=True)
    language = StringField(lazy_gettext("Patient's language"), validators=[Length(max=20)])
    postal_code = StringField(
        lazy_gettext("Patient ZIP code (for pay by statement number)"),
        validators=[Length(max=50)],
    )
    min_payment = StringField(
        lazy_gettext("Allow paying part now, minimum (USD)"), validators=[Length(max=50)]
    )


class ActionForm(FlaskForm):
    """Just the CSRF token, for the action buttons."""


def link_rules() -> links.LinkRules:
    return links.LinkRules.from_config(current_app.config)


def patient_url(link: PaymentLink) -> str:
    cfg = current_app.config
    return links.link_url(cfg["PUBLIC_BASE_URL"], link, cfg["SECRET_KEY"])


def send_and_report(link: PaymentLink) -> None:
    messages = notify.send_link(
        get_session(),
        current_app.jinja_env,
        notify.Transports.from_config(current_app.config),
        link,
        patient_url(link),
        Clinic.from_config(current_app.config),
        staff_id=g.staff.id,
    )
    if not messages:
        flash(
            _(
                "This link has no email address or mobile number, so nothing was sent: show the "
                "patient its QR code, or make a new link with their contact details."
            ),
            "error",
        )
    for m in messages:
        where = _("email") if m.channel == "email" else _("text message")
        said = {"where": where, "recipient": m.recipient, "error": m.error}
        if m.status == MessageStatus.SENT:
            flash(_("Sent by %(where)s to %(recipient)s.", **said), "success")
        elif m.status == MessageStatus.QUEUED:
            flash(
                _("The %(where)s to %(recipient)s goes out in clinic hours: %(error)s", **said),
                "info",
            )
        else:
            flash(_("Could not send the %(where)s to %(recipient)s: %(error)s", **said), "error")


@bp.get("/")
def index():
    return redirect(url_for("dashboard.show_dashboard"))


@bp.get("/links")
@login_required
def list_links():
    query = request.args.get("q", "")[:100]
    status = request.args.get("status", "")
    if not LinkStatus.lookup(status):
        status = ""
    found = links.list_links(
        get_session(),
        query=query,
        status=status,
        after=link_cursor(request.args.get("after")),
        before=link_cursor(request.args.get("before")),
        per_page=current_app.config["LINKS_PER_PAGE"],
    )
    return render(
        "staff/links.html",
        block="link_list",
        found=found,
        links_page=found.links,
        query=query,
        status=status,
        statuses=list(LinkStatus),
        action_form=ActionForm(),
    )


def link_cursor(value: str | None) -> int | None:
    """An ``?after=``/``?before=`` link id; anything else is no cursor (the first page)."""
    cursor = int(value) if value and value.isascii() and value.isdigit() else None
    return cursor if is_valid_id(cursor) else None


@bp.get("/links/new")
@login_required
def show_new_link():
    form = NewLinkForm(
        expires_in_days=str(current_app.config["LINK_EXPIRY_DAYS_DEFAULT"]),
        language=current_app.config["DEFAULT_LANGUAGE"],
    )
    return render("staff/link_new.html", form=form, errors={})


@bp.post("/links/new")
@login_required
def submit_new_link():
    form = NewLinkForm()
    if not form.validate():
        errors = {name: field.errors[0] for name, field in form._fields.items() if field.errors}
        errors.setdefault("form", _("Some fields are too long. Shorten them and try again."))
        return render("staff/link_new.html", form=form, errors=errors, status_code=422)
    draft = links.LinkDraft(
        patient_name=form.patient_name.data or "",
        email=form.email.data or "",
        phone=form.phone.data or "",
        amount=form.amount.data or "",
        reference=form.reference.data or "",
        description=form.description.data or "",
        expires_in_days=form.expires_in_days.data or "",
        send_now=bool(form.send_now.data),
        language=form.language.data or "",
        postal_code=form.postal_code.data or "",
        min_payment=form.min_payment.data or "",
    )
    try:
        link = links.create_link(get_session(), draft, link_rules(), created_by_id=g.staff.id)
    except links.LinkInputError as exc:
        errors = {name: translate(message) for name, message in exc.errors.items()}
        return render("staff/link_new.html", form=form, errors=errors, status_code=422)
    flash(_("Payment link created."), "success")
    if form.send_now.data:
        send_and_report(link)
    return redirect(url_for("staff.show_link", link_id=link.id), code=303)


@bp.get("/links/<id:link_id>")
@login_required
def show_link(link_id: int):
    link = get_or_404(PaymentLink, link_id)
    url = patient_url(link)
    return render(
        "staff/link_detail.html",
        link=link,
        status=links.effective_status(link),
        url=url,
        qr=qr_svg(url, title=_("QR code for this link")),
        timeline=audit.link_timeline(get_session(), link.id),
        link_request=link_requests.open_request_for(get_session(), link.id),
        duplicates=payments.duplicate_charges(link),
        action_form=ActionForm(),
        may_refund=refunds.can_refund(g.staff),
        refund_key=secrets.token_urlsafe(16),
    )


@bp.post("/links/<id:link_id>/refund")
@reauth_required
def refund_link(link_id: int):
    link = get_or_404(PaymentLink, link_id)
    if not refunds.can_refund(g.staff):
        abort(403)
    payment = get_or_404(Payment, request.form.get("payment_id", type=int) or 0)
    if payment.link_id != link.id:
        abort(404)
    try:
        # No upper bound here: refund_payment names what is left to refund, as the form's hint does.
        amount = parse_amount(request.form.get("amount", ""), 1, None)
        refund = refunds.refund_payment(
            get_session(),
            current_app.extensions["payapp.gateway"],
            payment,
            amount_cents=amount,
            reason=request.form.get("reason", ""),
            staff_id=g.staff.id,
            request_key=request.form.get("refund_key", ""),
        )
    except AmountError as exc:
        flash(_("Refund not made: %(reason)s", reason=translate(exc.message)), "error")
    except refunds.RefundError as exc:
        flash(_("Refund not made: %(reason)s", reason=translate(exc.message)), "error")
    else:
        notify.send_due_notices_for(current_app, get_session())
        amount = format_cents(refund.amount_cents, payment.currency)
        if refund.status == RefundStatus.COMPLETED:
            flash(_("Refund of %(amount)s made.", amount=amount), "success")
        else:
            flash(_("Refund of %(amount)s sent to Square.", amount=amount), "success")
    return redirect(url_for("staff.show_link", link_id=link.id), code=303)


@bp.post("/links/<id:link_id>/cancel")
@login_required
def cancel_link(link_id: int):
    link = get_or_404(PaymentLink, link_id)
    ActionForm().validate_on_submit()  # CSRF is already enforced app-wide; this binds the form
    try:
        links.cancel_link(get_session(), link, staff_id=g.staff.id)
    except links.LinkError as exc:
        if is_htmx_request():
            return render_error(409, exc.message)
        flash(translate(exc.message), "error")
        return redirect(url_for("staff.show_link", link_id=link.id), code=303)
    if is_htmx_request():
        # The list's row swaps in place; the page stays where it is.
        return render(
            "staff/_link_row.html",
            link=link,
            action_form=ActionForm(),
            status_now=links.effective_status(link),
        )
    flash(_("Link cancelled. The patient can no longer pay with it."), "success")
    return redirect(url_for("staff.show_link", link_id=link.id), code=303)


@bp.post("/links/<id:link_id>/resend")
@login_required
def resend_link(link_id: int):
    link = get_or_404(PaymentLink, link_id)
    status = links.effective_status(link)
    if status != LinkStatus.OPEN:
        flash(
            _(
                "Only open links can be sent; this one is %(status)s.",
                status=status.replace("_", " "),
            ),
            "error",
        )
    else:
        send_and_report(link)
    return redirect(url_for("staff.show_link", link_id=link.id), code=303)


@bp.post("/links/<id:link_id>/reminders/stop")
@login_required
def stop_reminders(link_id: int):
    link = get_or_404(PaymentLink, link_id)
    if reminders.stop_reminders(get_session(), link, by_patient=False, staff_id=g.staff.id):
        flash(_("Reminders stopped for this link."), "success")
    else:
        flash(_("Reminders were already stopped for this link."), "info")
    return redirect(url_for("staff.show_link", link_id=link.id), code=303)


@bp.post("/links/<id:link_id>/reissue")
@login_required
def reissue_link(link_id: int):
    old = get_or_404(PaymentLink, link_id)
    try:
        new = links.reissue_link(get_session(), old, link_rules(), staff_id=g.staff.id)
    except links.LinkError as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("staff.show_link", link_id=old.id), code=303)
    except links.LinkInputError as exc:
        # Details stored before today's rules (e.g. an invisible character in the reference).
        flash(
            _(
                "Not reissued: %(errors)s Create a new link.",
                errors=" ".join(map(translate, exc.errors.values())),
            ),
            "error",
        )
        return redirect(url_for("staff.show_link", link_id=old.id), code=303)
    link_requests.settle_for_link(get_session(), old.id, staff_id=g.staff.id, new_link_id=new.id)
    flash(_("A new link was created with the same details."), "success")
    send_and_report(new)
    return redirect(url_for("staff.show_link", link_id=new.id), code=303)


# --- patients' "Send me a new link" (the dashboard's panel and the link page) -------------------


@bp.post("/link-requests/<id:request_id>/reissue")
@login_required
def reissue_requested_link(request_id: int):
    """One click: a new link with the same details, sent to the contact on file; task done."""
    task = get_or_404(LinkRequest, request_id)
    try:
        _task, new = link_requests.reissue_request(
            get_session(), task.id, staff_id=g.staff.id, rules=link_rules()
        )
    except (link_requests.LinkRequestError, links.LinkError) as exc:
        flash(translate(exc.message), "error")
        return redirect(url_for("dashboard.show_dashboard"), code=303)
    except links.LinkInputError as exc:
        flash(
            _(
                "Not reissued: %(errors)s Create a new link.",
                errors=" ".join(map(translate, exc.errors.values())),
            ),
            "error",
        )
        return redirect(url_for("dashboard.show_dashboard"), code=303)
    flash(_("A new link was created with the same details."), "success")
    send_and_report(new)
    return redirect(url_for("staff.show_link", link_id=new.id), code=303)


@bp.post("/link-requests/<id:request_id>/dismiss")
@login_required
def dismiss_link_request(request_id: int):
    task = get_or_404(LinkRequest, request_id)
    try:
        link_requests.dismiss_request(get_session(), task.id, staff_id=g.staff.id)
    except link_requests.LinkRequestError as exc:
        flash(translate(exc.message), "error")
    else:
        flash(_("Request dismissed; nothing was sent."), "success")
    return redirect(url_for("dashboard.show_dashboard"), code=303)
