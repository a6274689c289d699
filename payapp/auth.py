"""Staff accounts: passwords, login/logout, and the login_required guard."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

import click
from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Length

from . import audit
from .db import get_session
from .extensions import limiter
from .htmx import render
from .models import StaffUser, utcnow

bp = Blueprint("auth", __name__)

ROLES = ("admin", "staff")
PASSWORD_MIN = 12
MAX_FAILED_LOGINS = 10
LOCKOUT = timedelta(minutes=15)
# Checked against when the email is unknown, so both cases cost one scrypt verification.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


class AuthError(Exception):
    """Login refused; the message is the same whatever the reason, so it reveals nothing."""

    def __init__(self, message: str = "Email or password is incorrect."):
        super().__init__(message)
        self.message = message


class UserError(ValueError):
    """A user cannot be created as asked."""


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def create_user(session: Session, email: str, password: str, role: str) -> StaffUser:
    """Add a staff account (committed)."""
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 254:
        raise UserError("Give a valid email address.")
    if role not in ROLES:
        raise UserError("Role must be admin or staff.")
    if len(password or "") < PASSWORD_MIN:
        raise UserError(f"The password must be at least {PASSWORD_MIN} characters.")
    if session.scalar(select(StaffUser).where(StaffUser.email == email)):
        raise UserError(f"A user with email {email} already exists.")
    user = StaffUser(email=email, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    audit.record(session, "user.created", detail=f"role {role}")
    session.commit()
    return user


def authenticate(session: Session, email: str, password: str, now: datetime | None = None):
    """The active user with this email and password, or AuthError."""
    now = now or utcnow()
    user = session.scalar(select(StaffUser).where(StaffUser.email == (email or "").strip().lower()))
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password or "")
        audit.record(session, "login.failed", detail="unknown or inactive account", when=now)
        session.commit()
        raise AuthError()
    if user.locked_until and user.locked_until > now:
        check_password_hash(_DUMMY_HASH, password or "")
        audit.record(session, "login.locked", staff_id=user.id, when=now)
        session.commit()
        raise AuthError("Too many failed attempts. Try again in 15 minutes or ask an admin.")
    if not check_password_hash(user.password_hash, password or ""):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            audit.record(session, "account.locked", staff_id=user.id, when=now)
        audit.record(session, "login.failed", staff_id=user.id, when=now)
        session.commit()
        raise AuthError()
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    audit.record(session, "login", actor="staff", staff_id=user.id, when=now)
    session.commit()
    return user


def safe_next(target: str | None) -> str | None:
    """Only a path on this site: never //evil.example or a scheme."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(c in target for c in "\r\n\\"):
        return None
    return target


def load_current_staff() -> None:
    """Set g.staff from the session, ending sessions that sat idle or lived too long."""
    g.staff = None
    staff_id = session.get("staff_id")
    if staff_id is None:
        return
    now = int(utcnow().timestamp())
    cfg = current_app.config
    idle = now - int(session.get("seen_at", 0))
    age = now - int(session.get("login_at", 0))
    if idle > cfg["STAFF_IDLE_TIMEOUT"] or age > cfg["STAFF_SESSION_MAX_AGE"]:
        session.clear()
        flash("You were logged out after a period of inactivity. Please log in again.", "info")
        return
    user = get_session().get(StaffUser, staff_id)
    if user is not None and user.active:
        g.staff = user
        session["seen_at"] = now


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("staff") is None:
            target = url_for("auth.show_login", next=request.full_path.rstrip("?"))
            if request.headers.get("HX-Request") == "true":
                response = current_app.response_class(status=204)
                response.headers["HX-Redirect"] = target
                return response
            return redirect(target)
        return view(*args, **kwargs)

    return wrapped


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    next = HiddenField()


@bp.get("/login")
def show_login():
    form = LoginForm(next=safe_next(request.args.get("next")) or "")
    return render("auth/login.html", form=form)


@bp.post("/login")
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN"])
def submit_login():
    form = LoginForm()
    if not form.validate():
        return render("auth/login.html", form=form, status_code=422)
    try:
        user = authenticate(get_session(), form.email.data, form.password.data)
    except AuthError as exc:
        return render("auth/login.html", form=form, error=exc.message, status_code=422)
    session.clear()  # a fresh session on login: nothing from before carries over
    session["staff_id"] = user.id
    session["login_at"] = session["seen_at"] = int(utcnow().timestamp())
    session.permanent = True
    return redirect(safe_next(form.next.data) or url_for("staff.list_links"), code=303)


@bp.post("/logout")
def submit_logout():
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.show_login"), code=303)


@click.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.password_option(envvar="PAYAPP_PASSWORD", help="Password (or set PAYAPP_PASSWORD).")
def create_user_command(email, role, password):
    """Create a staff account; the password comes from PAYAPP_PASSWORD or a prompt."""
    try:
        user = create_user(get_session(), email, password, role)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Created {user.role} {user.email}.")


@click.command("allow-refunds")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the permission away instead.")
def allow_refunds_command(email, revoke):
    """Let a staff account refund payments (admins always can)."""
    session = get_session()
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    user.can_refund = not revoke
    audit.record(
        session,
        "user.changed",
        staff_id=None,
        detail=f"{'revoked' if revoke else 'granted'} refunds for user {user.id}",
    )
    session.commit()
    click.echo(f"{user.email} {'can no longer' if revoke else 'can now'} refund payments.")


def init_app(app) -> None:
    app.before_request(load_current_staff)
    app.register_blueprint(bp)
    app.cli.add_command(create_user_command)
    app.cli.add_command(allow_refunds_command)
