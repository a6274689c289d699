"""The patient's page: GET shows the link, POST (htmx) charges it and returns a fragment."""

from __future__ import annotations

import functools
import inspect
import logging
import re
import secrets
from functools import partial

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from markupsafe import escape
from wtforms import HiddenField, StringField, TextAreaField
from wtforms.validators import Length

from .. import (
    alerts,
    i18n,
    link_requests,
    links,
    lookup,
    notify,
    payments,
    problems,
    ratelimits,
    reminders,
)
from ..clinic import Clinic
from ..db import get_session
from ..extensions import limiter
from ..gateways.square_browser import BROWSER_SDK
from ..htmx import is_htmx_request, render
from ..lru import LruCache
from ..models import PaymentLink
from ..money import cents_to_decimal_string
from ..plaintext import patient_text
from ..security import allow_square_scripts, csrf_token
from ..states import LINK_CLOSED_STATES, LinkStatus, MessageStatus, SurgeKind

bp = Blueprint("pay", __name__)
log = logging.getLogger(__name__)

# A failed charge is checked against the surge rules of its kinds (a set-up error is both).
SURGE_KINDS = {
    "declined": (SurgeKind.PAYMENT,),
    "unavailable": (SurgeKind.PAYMENT, SurgeKind.GATEWAY),
}


class PayForm(FlaskForm):
    # The card token, the ZIP code and the attempt key, never card data; for a link that allows
    # paying part now, the patient's choice. payments.charge_link() validates them, with the
    # messages the patient reads, and decides the amount (pay_amount below).
    source_id = HiddenField()
    postal_code = HiddenField()
    attempt_key = HiddenField()
    wallet = HiddenField()  # "apple_pay" | "google_pay" when a wallet button made the token
    pay_choice = HiddenField()  # radio buttons: "full" (the default) or "other"
    other_amount = StringField(validators=[Length(max=100)])
    # The balance the page showed as "the full $X": it is charged only while it is still the
    # balance (a page left open while another payment went in is told the new balance).
    balance_cents = HiddenField(validators=[Length(max=20)])


def pay_amount(form: PayForm) -> int | None:
    """The cents the patient chose to pay, or None for the link's whole balance now; raises
    PaymentError (bad_amount) for another amount that is not an amount."""
    if form.pay_choice.data == "other":
        return payments.parse_patient_amount(form.other_amount.data)
    seen = form.balance_cents.data or ""
    return int(seen) if seen.isascii() and seen.isdigit() else None


class ProblemForm(FlaskForm):
    # Generous bounds only stop oversized posts; problems.clean_draft() gives the real messages.
    category = StringField("What went wrong?", validators=[Length(max=100)])  # radio buttons
    text = TextAreaField("Anything else we should know (optional)", validators=[Length(max=4000)])
    callback_phone = StringField(
        "A number we can call you back on (optional)", validators=[Length(max=100)]
    )


class LookupForm(FlaskForm):
    # Generous bounds only stop oversized posts; lookup.clean_query() gives the real messages.
    statement = StringField("Statement number", validators=[Length(max=1000)])
    # One field for either detail: digits are a ZIP code (lookup.clean_query).
    last_name = StringField("Last name or ZIP code", validators=[Length(max=1000)])


def new_attempt_key() -> str:
    return secrets.token_urlsafe(24)


def resolve_or_404(token: str):
    try:
        link = links.resolve_token(get_session(), token, current_app.config["SECRET_KEY"])
    except links.LinkError:
        abort(404)
    i18n.use_link_language(link.language)
    return link


def page_context(link, status: str | None = None, **extra):
    cfg = current_app.config
    square = not cfg["DEMO_MODE"]
    return {
        "link": link,
        "status": status or links.effective_status(link),
        "amount_decimal": cents_to_decimal_string(link.balance_cents or link.amount_cents),
        "square_app_id": cfg["SQUARE_APPLICATION_ID"] if square else "demo-app",
        "square_location_id": cfg["SQUARE_LOCATION_ID"] if square else "demo-location",
        "square_js_url": BROWSER_SDK[cfg["SQUARE_ENVIRONMENT"]] if square else None,
        **extra,
    }


def _invalid_token(response) -> bool:
    return response.status_code == 404


# A guessed or mangled token costs the guesser: few 404s per address before 429s.
invalid_token_limit = limiter.shared_limit(
    lambda: current_app.config["RATELIMIT_INVALID_TOKEN"],
    scope="invalid-pay-token",
    deduct_when=_invalid_token,
)


def limited_when_enabled(view):
    """A view decorated with flask-limiter's limits, calling the undecorated view while limits are
    off (RATELIMIT_ENABLED=false): there each decorator still identified the request and looked
    the view up before finding nothing to check (about 10 us a page, issue 10's fifth round).
    Enabled, every call goes through the limits exactly as decorated."""
    plain = inspect.unwrap(view)

    @functools.wraps(view)
    def dispatch(*args, **kwargs):
        if limiter.enabled and limiter.initialized:
            return view(*args, **kwargs)
        return plain(*args, **kwargs)

    return dispatch


@bp.get("/pay/<token>")
@limited_when_enabled
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_VIEW"])
@invalid_token_limit
def show_pay_page(token: str):
    # An open link seen before (the common case) needs only its row: one plain read, no ORM.
    app = current_app._get_current_object()
    config = app.config
    row = links.find_link_row(app.extensions["payapp.engine"], token, config["SECRET_KEY"])
    if row is None:
        abort(404)
    i18n.use_link_language(row.language)
    status = links.effective_status(row)
    if status == LinkStatus.OPEN and row.first_viewed_at is not None:
        if not config["DEMO_MODE"]:
            allow_square_scripts()
        if "_flashes" not in session:
            return open_page(app, row, status)
    link = resolve_or_404(token)
    links.mark_viewed(get_session(), link)
    status = links.effective_status(link)
    if status in LINK_CLOSED_STATES:
        return render("pay/closed.html", status_code=410, **closed_context(link))
    if not current_app.config["DEMO_MODE"] and status == LinkStatus.OPEN:
        allow_square_scripts()
    payment = link.completed_payment
    context = page_context(link, payment=payment)
    return render("pay/page.html", attempt_key=new_attempt_key(), **context)


# The open page is most of what patients load (issue 10: a third of its time went to Jinja). Its
# HTML is rendered once per link row and kept, with markers where this response's CSRF token,
# CSP nonce and attempt key go; every request fills in fresh ones.


class OpenPages:
    """Rendered open pay pages, keyed by the URL path, the link's effective status, the page's
    language (the patient's choice is not in the row) and every column of its row as read by
    this request: a changed link is a new key, so no stale page, no page in the other language
    and no other link's page can be served. The markers are random per process (no stored text can
    hold them). A page is kept cut at its markers, so filling it is one join."""

    def __init__(self, size: int = 512):
        self.pages = LruCache(size)
        mark = secrets.token_hex(16)
        self.markers = {name: f"\x00{mark}-{name}\x00" for name in ("csrf", "nonce", "attempt")}
        self._names = {marker: name for name, marker in self.markers.items()}
        self._cut = re.compile("|".join(map(re.escape, self.markers.values())))

    def key(self, path: str, row, status: str) -> tuple:
        # i18n.patient_language() on this page (the view has just made the row's language the
        # link's), without working out again that this is a patient's page.
        language = i18n.page_language(session.get(i18n.CHOICE_KEY), row.language)
        return (path, status, language.value, tuple(row))

    def render(self, row, status: str) -> str:
        markers = self.markers
        # A detached model built from the row (never added to a session): the templates read
        # its columns and properties (first_name...) exactly as on the page's other paths.
        link = PaymentLink(**row._mapping)
        return render_template(
            "pay/page.html",
            csrf_token=lambda: markers["csrf"],
            csp_nonce=lambda: markers["nonce"],
            attempt_key=markers["attempt"],
            **page_context(link, status=status, payment=None),
        )

    def cut(self, html: str) -> tuple[list[str], list[tuple[int, str]]]:
        """The page as pieces, and (index, marker name) for each piece a value goes in."""
        pieces, slots = [], []
        start = 0
        for match in self._cut.finditer(html):
            pieces.append(html[start : match.start()])
            slots.append((len(pieces), self._names[match.group()]))
            pieces.append("")
            start = match.end()
        pieces.append(html[start:])
        return pieces, slots

    def fill(self, page: tuple[list[str], list[tuple[int, str]]]) -> str:
        """The page with this response's values, escaped as Jinja would have escaped them."""
        pieces, slots = page
        values = {
            "csrf": escaped(csrf_token()),
            "nonce": escaped(getattr(request, "csp_nonce", "")),
            "attempt": escaped(new_attempt_key()),
        }
        filled = pieces.copy()
        for index, name in slots:
            filled[index] = values[name]
        return "".join(filled)


# What HTML escaping leaves unchanged: the URL-safe base64, hex and dots of tokens and nonces.
UNESCAPED = re.compile(r"[A-Za-z0-9_.\-]*")


def escaped(value: str) -> str:
    """``str(escape(value))``, asking first whether there is anything to escape (never, for the
    tokens and nonces a page is filled with)."""
    return value if UNESCAPED.fullmatch(value) else str(escape(value))


def open_page(app, row, status: str):
    """The page of an open link already viewed, from the cache or rendered into it."""
    pages: OpenPages = app.extensions["payapp.open_pages"]
    key = pages.key(request.path, row, status)
    page = pages.pages.get(key)
    if page is None:
        page = pages.cut(pages.render(row, status))
        pages.pages.put(key, page)
    # The default type, named: werkzeug otherwise looks for a Content-Type first (an exception).
    response = app.response_class(pages.fill(page), mimetype="text/html")
    # What response.vary.add("HX-Request") writes on a response that has no Vary yet.
    response.headers["Vary"] = "HX-Request"
    return response


def init_app(app) -> None:
    app.extensions["payapp.open_pages"] = OpenPages()


@bp.post("/pay/<token>")
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_SUBMIT"])
@invalid_token_limit
def submit_payment(token: str):
    link = resolve_or_404(token)
    # The limit shared by all addresses counts only attempts on a real, open link that passed
    # the per-address limits above (see ratelimits.py): one address cannot spend it for all.
    if (
        links.effective_status(link) == LinkStatus.OPEN
        and not ratelimits.take_global_payment_slot()
    ):
        abort(429)
    form = PayForm()
    result = {}
    if not form.validate():  # the CSRF token (CSRFProtect has checked it) and oversized fields
        result["error"] = payments.PaymentError.bad_request(
            patient_text("Reload the page and try again.")
        )
    else:
        try:
            result["payment"] = payments.charge_link(
                get_session(),
                current_app.extensions["payapp.gateway"],
                link,
                attempt_key=form.attempt_key.data,
                source_id=form.source_id.data,
                postal_code=form.postal_code.data,
                wallet=form.wallet.data or "",
                amount_cents=pay_amount(form),
                max_declines=current_app.config["MAX_DECLINES"],
            )
        except payments.PaymentError as exc:
            result["error"] = exc
            if exc.kind in ("declined", "unavailable"):
                alerts.check_surges(get_session(), current_app.config, kinds=SURGE_KINDS[exc.kind])
        except links.LinkError as exc:
            result["link_error"] = exc
    # For htmx, out-of-band swaps renew the attempt key or retire the form (see pay/page.html).
    context = page_context(
        link,
        attempt_key=new_attempt_key(),
        oob=is_htmx_request(),
        **result,
    )
    error = result.get("error")
    status_code = 422 if error is not None and error.kind == "bad_amount" else 200
    response = render("pay/page.html", block="result", status_code=status_code, **context)
    due = notify.take_due(get_session())
    if due:
        # The receipt goes once the patient has the answer: a slow mail server never holds it up.
        response.call_on_close(partial(send_after_response, current_app._get_current_object(), due))
    return response


def send_after_response(app, due) -> None:
    """Runs after the response was sent, outside the request: its own app context and session."""
    try:
        with app.app_context():
            notify.send_due_notices_for(app, get_session(), due)
    except Exception:  # noqa: BLE001 - nothing may escape into the WSGI server
        log.exception("could not send receipts after a payment")


@bp.post("/pay/<token>/reminders/stop")
@limiter.limit(lambda: current_app.config["RATELIMIT_REMINDER_OPT_OUT"])
@invalid_token_limit
def stop_reminders(token: str):
    """The patient's "Don't remind me": no more reminders for this link (CSRF checked app-wide)."""
    link = resolve_or_404(token)
    reminders.stop_reminders(get_session(), link, by_patient=True, detail="on the payment page")
    flash(_("We won't send you reminders about this payment."), "success")
    return redirect(url_for("pay.show_pay_page", token=token), code=303)


# --- the "stop reminders" link inside reminders ---------------------------------------------------
# GET only shows the question (mail scanners open links); the POST button stops the reminders.


def refused_opt_out(exc):
    """The page for a forged, mangled or expired opt-out link: says so, changes nothing."""
    status = 410 if exc.kind == "expired" else 404
    return render("pay/stop_reminders.html", error=exc, status_code=status)


@bp.get("/reminders/stop/<token>")
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_VIEW"])
@invalid_token_limit
def show_stop_reminders(token: str):
    try:
        link = reminders.resolve_opt_out(get_session(), token, current_app.config["SECRET_KEY"])
    except reminders.OptOutError as exc:
        return refused_opt_out(exc)
    i18n.use_link_language(link.language)
    return render("pay/stop_reminders.html", link=link, error=None)


@bp.post("/reminders/stop/<token>")
@limiter.limit(lambda: current_app.config["RATELIMIT_REMINDER_OPT_OUT"])
@invalid_token_limit
def confirm_stop_reminders(token: str):
    """The patient pressed "Stop reminders" on the page a reminder's link opened."""
    try:
        link = reminders.resolve_opt_out(get_session(), token, current_app.config["SECRET_KEY"])
    except reminders.OptOutError as exc:
        return refused_opt_out(exc)
    reminders.stop_reminders(
        get_session(), link, by_patient=True, detail="from the link in a reminder"
    )
    return redirect(url_for("pay.show_stop_reminders", token=token), code=303)


# --- "Problem paying?" ---------------------------------------------------------------------------


def notify_front_desk(report) -> None:
    cfg = current_app.config
    notify.send_problem_notice(
        get_session(),
        current_app.jinja_env,
        notify.Transports.from_config(cfg),
        report,
        to=str(cfg["FRONT_DESK_EMAIL"] or cfg["MAIL_FROM"]),
        staff_url=cfg["PUBLIC_BASE_URL"]
        + url_for("problems.list_problems", state="open", _anchor=f"problem-{report.id}"),
        clinic=Clinic.from_config(cfg),
    )


@bp.get("/pay/<token>/problem")
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_VIEW"])
@invalid_token_limit
def show_problem_form(token: str):
    link = resolve_or_404(token)
    return render("pay/problem.html", form=ProblemForm(), errors={}, **page_context(link))


@bp.post("/pay/<token>/problem")
@limiter.limit(lambda: current_app.config["RATELIMIT_PROBLEM_REPORT"])
@invalid_token_limit
def submit_problem(token: str):
    link = resolve_or_404(token)
    form = ProblemForm()
    if not form.validate():
        errors = {name: field.errors[0] for name, field in form._fields.items() if field.errors}
        errors.setdefault("form", "Something in the form was too long. Shorten it and try again.")
        return render(
            "pay/problem.html", form=form, errors=errors, status_code=422, **page_context(link)
        )
    draft = problems.ProblemDraft(
        category=form.category.data or "",
        text=form.text.data or "",
        callback_phone=form.callback_phone.data or "",
    )
    try:
        report = problems.create_report(
            get_session(),
            link,
            draft,
            phone_region=str(current_app.config["DEFAULT_PHONE_REGION"]),
        )
    except problems.ProblemError as exc:
        return render(
            "pay/problem.html",
            form=form,
            errors=exc.errors,
            status_code=422,
            **page_context(link),
        )
    if problems.is_first_in_a_while(
        get_session(), report, current_app.config["PROBLEM_NOTICE_QUIET_MINUTES"]
    ):
        notify_front_desk(report)
    return redirect(url_for("pay.show_problem_sent", token=token), code=303)


@bp.get("/pay/<token>/problem/sent")
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_VIEW"])
@invalid_token_limit
def show_problem_sent(token: str):
    link = resolve_or_404(token)
    return render("pay/problem_sent.html", **page_context(link))


# --- "Send me a new link" (expired or locked links) ---------------------------------------------


def closed_context(link):
    """The closed page, with the "Send me a new link" button where it is offered."""
    offered = link_requests.can_request(link)
    return page_context(
        link,
        new_link_offered=offered,
        new_link_hint=link_requests.contact_hint(link) if offered else "",
        new_link_asked=offered and link_requests.open_request_for(get_session(), link.id),
    )


def _link_key() -> str:
    # Per link, whatever address asks (the token names the link; a made-up one 404s anyway).
    return "new-link:" + (request.view_args or {}).get("token", "")[:200]


@bp.post("/pay/<token>/new-link")
@limiter.limit(lambda: current_app.config["RATELIMIT_NEW_LINK_PER_ADDRESS"])
@limiter.limit(lambda: current_app.config["RATELIMIT_NEW_LINK_PER_LINK"], key_func=_link_key)
@invalid_token_limit
def request_new_link(token: str):
    """The patient's "Send me a new link": only to the contact on file (the form has no field)."""
    link = resolve_or_404(token)
    cfg = current_app.config
    back = redirect(url_for("pay.show_pay_page", token=token), code=303)
    try:
        outcome = link_requests.request_new_link(
            get_session(),
            link,
            mode=cfg["NEW_LINK_REQUESTS"],
            rules=links.LinkRules.from_config(cfg),
        )
    except link_requests.LinkRequestError as exc:
        flash(_(exc.message), "error")
        return back
    hint = link_requests.contact_hint(link)
    clinic = Clinic.from_config(cfg)
    if outcome.kind == "asked":
        notify.send_link_request_notice(
            get_session(),
            current_app.jinja_env,
            notify.Transports.from_config(cfg),
            link,
            to=str(cfg["FRONT_DESK_EMAIL"] or cfg["MAIL_FROM"]),
            staff_url=cfg["PUBLIC_BASE_URL"]
            + url_for("dashboard.show_dashboard", _anchor="link-requests"),
            clinic=clinic,
        )
        flash(
            _(
                "We've asked the front desk to send you a new link to %(contact)s. "
                "You'll usually hear back within one business day.",
                contact=hint,
            ),
            "success",
        )
    elif outcome.kind == "already_asked":
        flash(
            _(
                "You've already asked: the front desk will send a new link to %(contact)s. "
                "You'll usually hear back within one business day.",
                contact=hint,
            ),
            "info",
        )
    elif outcome.kind == "reissued":
        new = outcome.new_link
        sent = notify.send_link(
            get_session(),
            current_app.jinja_env,
            notify.Transports.from_config(cfg),
            new,
            links.link_url(cfg["PUBLIC_BASE_URL"], new, cfg["SECRET_KEY"]),
            clinic,
        )
        states = {message.status for message in sent}
        if MessageStatus.SENT in states:
            flash(_("We've sent a new link to %(contact)s.", contact=hint), "success")
        elif MessageStatus.QUEUED in states:  # a text waiting for the clinic's texting hours
            flash(
                _("We'll text a new link to %(contact)s when the clinic opens.", contact=hint),
                "success",
            )
        else:
            flash(
                _(
                    "We couldn't send the new link to %(contact)s just now. "
                    "Call %(clinic)s at %(phone)s and they'll help you pay.",
                    contact=hint,
                    clinic=clinic.name,
                    phone=clinic.phone,
                ),
                "error",
            )
    else:  # already_sent
        flash(
            _(
                "We've already sent a new link to %(contact)s. If it hasn't arrived, call us.",
                contact=hint,
            ),
            "info",
        )
    return back


# --- pay by statement number (no link to click) --------------------------------------------------


@bp.get("/pay")
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_VIEW"])
def show_lookup():
    return render("pay/lookup.html", form=LookupForm(), errors={}, not_found=False)


@bp.post("/pay")
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_LOOKUP"])
def find_by_statement():
    """The statement number and last name or ZIP code lead to the link's own signed URL, or to
    one answer for every failure (unknown, wrong detail, closed) that says nothing about which."""
    form = LookupForm()
    try:
        if not form.validate():
            raise lookup.LookupInputError(
                {"statement": "That was too long. Check the statement number and try again."}
            )
        query = lookup.clean_query(form.statement.data, form.last_name.data)
    except lookup.LookupInputError as exc:
        return render(
            "pay/lookup.html", form=form, errors=exc.errors, not_found=False, status_code=422
        )
    # All addresses together, counted only for lookups the per-address limits let through.
    if not ratelimits.take_global_lookup_slot():
        abort(429)
    link = lookup.find_by_statement(get_session(), query)
    if link is None:
        # A fresh, empty form: echoing what was typed would tell the answers apart.
        return render(
            "pay/lookup.html",
            form=LookupForm(formdata=None),
            errors={},
            not_found=True,
            status_code=404,
        )
    token = links.sign_token(link, current_app.config["SECRET_KEY"])
    return redirect(url_for("pay.show_pay_page", token=token), code=303)
