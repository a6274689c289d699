"""Error pages in one place: a full page, or for htmx an alert fragment retargeted to #flash."""

from __future__ import annotations

import logging
import time

from flask import g, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError

from . import audit, i18n
from .db import get_session
from .htmx import is_htmx_request, render
from .plaintext import patient_text, staff_text
from .states import AuditAction

log = logging.getLogger(__name__)

# What a patient (or any visitor off the staff side) reads, in the page's language.
MESSAGES = {
    400: (
        patient_text("Something was wrong with that request"),
        patient_text("Go back, reload the page and try again."),
    ),
    403: (
        patient_text("You don't have permission to do that"),
        patient_text("Ask your payapp administrator if you need to."),
    ),
    404: (
        patient_text("Page not found"),
        patient_text(
            "Check the link you were sent. If it still does not work, call the "
            "clinic and ask for a new payment link."
        ),
    ),
    405: (patient_text("That is not allowed here"), patient_text("Go back and try again.")),
    409: (
        patient_text("That could not be done"),
        patient_text("Reload the page to see the current state."),
    ),
    413: (
        patient_text("That was too much to send"),
        patient_text("Shorten what you typed and try again, or call the clinic."),
    ),
    429: (
        patient_text("Too many attempts"),
        patient_text(
            "For your security we paused this for a minute. Wait a minute and "
            "try again, or call the clinic to pay by phone."
        ),
    ),
    500: (
        patient_text("Something went wrong on our side"),
        patient_text(
            "Nothing was charged by this error. Try again in a minute, or call the clinic."
        ),
    ),
}
CSRF_ADVICE = patient_text(
    "This form expired or came from somewhere else. Reload the page and try again."
)

# Staff read different advice: they have the menu, and no bill to ask the clinic about.
STAFF_MESSAGES = {
    403: (
        staff_text("You don't have permission to do that"),
        staff_text("This page is for admins. Ask your payapp administrator if you need it."),
    ),
    404: (
        staff_text("Page not found"),
        staff_text(
            "It may have been mistyped, or the link or account no longer exists. "
            "Go back, or open Links in the menu."
        ),
    ),
    413: (
        staff_text("That was too much to send"),
        staff_text("Shorten what you typed and try again."),
    ),
    429: (
        staff_text("Too many attempts"),
        staff_text("For your security we paused this for a minute. Wait and try again."),
    ),
    500: (
        staff_text("Something went wrong on our side"),
        staff_text("Try again in a minute. If it keeps happening, tell your payapp administrator."),
    ),
}
# The blueprints of the staff side.
STAFF_AREAS = frozenset({"staff", "audit", "users", "auth", "problems"})


def is_staff_page() -> bool:
    """Staff areas, and stray URLs of a logged-in staff member, get the staff layout and menu;
    the patient's pay pages always keep the patient layout."""
    if request.blueprint in STAFF_AREAS:
        return True
    return (
        request.blueprint is None
        and g.get("staff") is not None
        and not request.path.startswith("/pay/")
    )


def render_error(code: int, detail: str | None = None):
    staff_page = is_staff_page()
    messages = {**MESSAGES, **STAFF_MESSAGES} if staff_page else MESSAGES
    title, advice = messages.get(code, messages[500])
    if detail:
        advice = detail
    if not staff_page and i18n.on_patient_page():
        # The patient's language (staff and other pages stay English: their locale is "en").
        try:
            i18n.use_language_of_the_token()
        except Exception:  # noqa: BLE001 - e.g. the database is down: the page in English
            log.warning("could not read the link's language for an error page")
        title, advice = gettext(title), gettext(advice)
    elif staff_page:
        # Staff pages are English for now; a message the domain wrote (``detail``) is translated
        # here, where it is shown, like every staff message.
        title, advice = i18n.translate(title), i18n.translate(advice)
    if is_htmx_request():
        message = f"{title}. {advice}"
        response = render("_flash.html", status_code=code, messages=[("error", message)])
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return render(
        "errors/error.html",
        status_code=code,
        code=code,
        title=title,
        advice=advice,
        staff_page=staff_page,
    )


def handle_csrf_error(exc: CSRFError):
    return render_error(400, CSRF_ADVICE)


def handle_http_error(exc):
    if exc.code == 429:
        record_rate_limit_hit()
    return render_error(exc.code)


_last_recorded: dict[tuple[str, str], int] = {}


def record_rate_limit_hit() -> None:
    """A security event, at most one per address and area per minute (a flood must not become
    a flood of audit rows)."""
    area = request.path.split("/")[1] if request.path.count("/") else request.path
    key = (request.remote_addr or "?", area)
    minute = int(time.time() // 60)
    if _last_recorded.get(key) == minute:
        return
    if len(_last_recorded) > 10_000:
        _last_recorded.clear()
    _last_recorded[key] = minute
    session = get_session()
    audit.record(session, AuditAction.RATELIMIT_HIT, detail=f"/{area} from {key[0]}")
    session.commit()


def handle_unexpected(exc):
    log.exception("unhandled error")
    return render_error(500)


def init_app(app) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    for code in (400, 403, 404, 405, 413, 429):
        app.register_error_handler(code, handle_http_error)
    # Only reached when exceptions do not propagate (not in tests): the patient sees a calm page.
    app.register_error_handler(500, handle_unexpected)
