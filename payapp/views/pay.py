"""The patient's page: GET shows the link, POST (htmx) charges it and returns a fragment."""

from __future__ import annotations

import logging
import secrets
from functools import partial

from flask import Blueprint, abort, current_app
from flask_wtf import FlaskForm
from wtforms import HiddenField

from .. import alerts, links, notify, payments, ratelimits
from ..db import get_session
from ..extensions import limiter
from ..gateways.square_browser import BROWSER_SDK
from ..htmx import is_htmx_request, render
from ..money import cents_to_decimal_string
from ..security import allow_square_scripts
from ..states import LINK_CLOSED_STATES, LinkStatus

bp = Blueprint("pay", __name__)
log = logging.getLogger(__name__)


class PayForm(FlaskForm):
    # Only the card token, the ZIP code and the attempt key: never card data, never an amount.
    # payments.charge_link() validates them, with the messages the patient reads.
    source_id = HiddenField()
    postal_code = HiddenField()
    attempt_key = HiddenField()


def new_attempt_key() -> str:
    return secrets.token_urlsafe(24)


def resolve_or_404(token: str):
    try:
        return links.resolve_token(get_session(), token, current_app.config["SECRET_KEY"])
    except links.LinkError:
        abort(404)


def page_context(link, **extra):
    cfg = current_app.config
    square = not cfg["DEMO_MODE"]
    return {
        "link": link,
        "status": links.effective_status(link),
        "amount_decimal": cents_to_decimal_string(link.amount_cents),
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


@bp.get("/pay/<token>")
@limiter.limit(lambda: current_app.config["RATELIMIT_PAY_VIEW"])
@invalid_token_limit
def show_pay_page(token: str):
    link = resolve_or_404(token)
    links.mark_viewed(get_session(), link)
    status = links.effective_status(link)
    if status in LINK_CLOSED_STATES:
        return render("pay/closed.html", status_code=410, **page_context(link))
    form = PayForm(attempt_key=new_attempt_key())
    if not current_app.config["DEMO_MODE"] and status == LinkStatus.OPEN:
        allow_square_scripts()
    return render("pay/page.html", form=form, **page_context(link, payment=link.completed_payment))


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
    if not form.validate():  # only the CSRF token (CSRFProtect has checked it already)
        result["error"] = payments.PaymentError.bad_request("Reload the page and try again.")
    else:
        try:
            result["payment"] = payments.charge_link(
                get_session(),
                current_app.extensions["payapp.gateway"],
                link,
                attempt_key=form.attempt_key.data,
                source_id=form.source_id.data,
                postal_code=form.postal_code.data,
                max_declines=current_app.config["MAX_DECLINES"],
            )
        except payments.PaymentError as exc:
            result["error"] = exc
            if exc.kind == "declined":
                alerts.check_decline_spike(get_session(), current_app.config)
        except links.LinkError as exc:
            result["link_error"] = exc
    # For htmx, out-of-band swaps renew the attempt key or retire the form (see pay/page.html).
    context = page_context(
        link,
        form=PayForm(formdata=None, attempt_key=new_attempt_key()),
        oob=is_htmx_request(),
        **result,
    )
    response = render("pay/page.html", block="result", **context)
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
