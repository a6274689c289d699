"""Staff login sessions on Flask-Login, and the guards staff views put on themselves.

A session ends when it sits idle (STAFF_IDLE_TIMEOUT), when it grows too old
(STAFF_SESSION_MAX_AGE), and everywhere at once when the user's session generation changes (log
out, log out everywhere, a password change or reset, deactivation): Flask-Login's user id is
"<user id>:<session generation>", so an old cookie names a user that no longer loads.
``g.staff`` is the logged-in StaffUser (or None) for views and templates."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

import flask_login
from flask import abort, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_login import UserMixin, confirm_login, login_user, logout_user

from .. import login
from ..accounts import ROLES
from ..db import get_session
from ..extensions import login_manager
from ..models import StaffUser, utcnow

# Pages a logged-in user may still open while setup (two-step, own password) is outstanding.
SETUP_ENDPOINTS = {
    "auth.show_mfa_setup",
    "auth.submit_mfa_setup",
    "auth.show_change_password",
    "auth.submit_change_password",
}
SETUP_PAGES = {"mfa": "auth.show_mfa_setup", "password": "auth.show_change_password"}


class StaffLogin(UserMixin):
    """What Flask-Login holds for a logged-in StaffUser. A wrapper, not a mixin on the model,
    so models.py stays free of Flask."""

    def __init__(self, user: StaffUser):
        self.user = user

    def get_id(self) -> str:
        return f"{self.user.id}:{self.user.session_generation}"

    @property
    def is_active(self) -> bool:
        return bool(self.user.active)


def load_staff_login(login_id: str) -> StaffLogin | None:
    """Flask-Login's user loader: None for an unknown, inactive or ended ("<id>:<old gen>")."""
    user_id, _sep, generation = login_id.partition(":")
    if not user_id.isdigit() or not generation.isdigit():
        return None
    user = get_session().get(StaffUser, int(user_id))
    if user is None or not user.active or user.session_generation != int(generation):
        return None
    return StaffLogin(user)


def now_ts() -> int:
    return int(utcnow().timestamp())


def login_policy() -> login.LoginPolicy:
    return login.LoginPolicy.from_config(current_app.config)


def mfa_required(user: StaffUser) -> bool:
    return login.mfa_required(user, current_app.config["REQUIRE_MFA_FOR_STAFF"])


def pending_setup(user: StaffUser) -> str | None:
    """The endpoint of what this user must do before anything else, if anything."""
    setup = login.setup_pending(user, current_app.config["REQUIRE_MFA_FOR_STAFF"])
    return SETUP_PAGES[setup] if setup else None


def start_session(user: StaffUser) -> None:
    """A fresh session for this user: nothing from before carries over."""
    session.clear()
    login_user(StaffLogin(user), fresh=True)
    session["login_at"] = session["seen_at"] = session["reauth_at"] = now_ts()
    session.permanent = True


def renew_session(user: StaffUser) -> None:
    """This session carries on under the user's new session generation (after their own
    password change), where every other session of theirs has ended; it counts as confirmed."""
    login_user(StaffLogin(user), fresh=True)
    session["reauth_at"] = now_ts()


def mark_confirmed() -> None:
    """The user just proved it is them (password or code): sensitive actions are open again."""
    confirm_login()
    session["reauth_at"] = now_ts()


def end_session() -> None:
    """Log out in this browser: Flask-Login's keys and everything else in the session go."""
    logout_user()
    session.clear()


def load_current_staff() -> None:
    """Set g.staff from the session, ending sessions that sat idle, lived too long, or were
    ended elsewhere (log out everywhere, a password change, deactivation)."""
    g.staff = None
    if "login_at" not in session:
        return
    now = now_ts()
    cfg = current_app.config
    idle = now - int(session.get("seen_at", 0))
    age = now - int(session.get("login_at", 0))
    if idle > cfg["STAFF_IDLE_TIMEOUT"] or age > cfg["STAFF_SESSION_MAX_AGE"]:
        end_session()
        flash(_("You were logged out after a period of inactivity. Please log in again."), "info")
        return
    if not flask_login.current_user.is_authenticated:
        end_session()
        flash(_("Your session was ended. Please log in again."), "info")
        return
    g.staff = flask_login.current_user.user
    session["seen_at"] = now
    # Flask-Login's freshness has no clock: a confirmation older than REAUTH_WINDOW goes stale.
    if now - int(session.get("reauth_at", 0)) > int(cfg["REAUTH_WINDOW"]):
        session["_fresh"] = False


def _go(target: str, code: int = 302):
    """Redirect; htmx requests get HX-Redirect so the whole page moves, not a fragment."""
    if request.headers.get("HX-Request") == "true":
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303 if request.method == "POST" else code)


def send_to_login():
    """Flask-Login's unauthorized handler: to the login page, and back here afterwards."""
    return _go(url_for("auth.show_login", next=request.full_path.rstrip("?")))


def send_to_reauth():
    """Flask-Login's needs-refresh handler. A GET comes back to itself; a POST is not replayed:
    it goes (303) to /reauth with next= the page its form was on, where it can be sent again."""
    back = request.full_path.rstrip("?") if request.method == "GET" else referring_page()
    flash(_("For your security, confirm it's you before you continue."), "info")
    return _go(url_for("auth.show_reauth", next=back))


def login_required(view):
    """Logged in, with any required setup (two-step verification, own password) done."""

    @functools.wraps(view)
    def checked(*args, **kwargs):
        setup = pending_setup(g.staff) if g.get("staff") is not None else None
        if setup and request.endpoint not in SETUP_ENDPOINTS:
            return _go(url_for(setup))
        return view(*args, **kwargs)

    return flask_login.login_required(checked)


def role_required(role: str):
    """Logged in and of this role; 403 for other roles."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def decorate(view):
        @functools.wraps(view)
        def checked(*args, **kwargs):
            if g.staff.role != role:
                abort(403)
            return view(*args, **kwargs)

        return login_required(checked)

    return decorate


def reauth_required(view):
    """Logged in, and the password or a TOTP code confirmed within REAUTH_WINDOW seconds
    (Flask-Login's fresh login); otherwise to /reauth first (``send_to_reauth``)."""
    return login_required(flask_login.fresh_login_required(view))


def referring_page() -> str:
    """The local page a POST's form was on (from the Referer), else the link list."""
    referer = request.headers.get("Referer", "")
    parts = urlsplit(referer)
    if referer and parts.netloc in ("", request.host):
        target = safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
        if target and not target.startswith(url_for("auth.show_reauth")):
            return target
    return url_for("staff.list_links")


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never //evil.example or a scheme. Control characters are
    refused too: browsers (and werkzeug's Location header) drop tabs, so a slash, a tab and
    "/evil.example" would become "//evil.example"."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(c == "\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def init_app(app) -> None:
    login_manager.init_app(app)
    login_manager.user_loader(load_staff_login)
    login_manager.unauthorized_handler(send_to_login)
    login_manager.needs_refresh_handler(send_to_reauth)
    # Off: "basic" trusts X-Forwarded-For as sent by anyone; the session generation and the
    # timeouts above are what end a session.
    login_manager.session_protection = None
    app.before_request(load_current_staff)
    # The staff menu hides its links while the user still has to finish setup.
    app.jinja_env.globals["staff_setup_pending"] = lambda: bool(
        g.get("staff") and pending_setup(g.staff)
    )
