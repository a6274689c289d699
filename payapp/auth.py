"""Staff accounts: password rules, login in two steps (password, then a TOTP or recovery code),
per-account throttling and lockout, sessions (rotation, timeouts, log out everywhere),
re-authentication before sensitive actions, roles, and each user's own account pages.

The functions here take plain values and a database session, plus the guards and session
handling the views use; the pages themselves are in views/account.py.
"""

from __future__ import annotations

import functools
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import click
from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit, mfa
from .db import get_session
from .models import StaffUser, utcnow
from .plaintext import has_invisible_characters, invisible_message
from .states import AuditAction

ROLES = ("admin", "staff")
PASSWORD_MIN = 12
PASSWORD_MAX = 256
PASSWORD_MIN_DISTINCT = 5
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt"
# How long the second login step may wait after a right password.
SECOND_STEP_SECONDS = 5 * 60
# Checked against when the password is not checked (unknown email, waiting or locked account),
# so every login attempt costs one scrypt verification.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")

# One message for every refused login, whatever the reason: it must not tell whether the
# account exists, was mistyped, is waiting after failures, or is locked.
LOGIN_REFUSED = (
    "Email or password is incorrect. Check both and try again. After several failed attempts "
    "you have to wait a few minutes between tries; if you are stuck, ask your clinic's payapp "
    "administrator."
)
CODE_REFUSED = (
    "That code did not work. Enter the newest 6-digit code from your authenticator app (check "
    "that your phone's clock is right), or one of your recovery codes."
)
TOO_MANY_TRIES = (
    "Too many wrong attempts. Wait a few minutes and try again, or ask your clinic's payapp "
    "administrator to unlock your account."
)


class AuthError(Exception):
    """A login step or confirmation refused; the message is safe to show as it is."""

    def __init__(self, message: str = LOGIN_REFUSED):
        super().__init__(message)
        self.message = message


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why, ``field`` which
    form field it is about (if one)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# --- Passwords ---------------------------------------------------------------------------------


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def password_problem(password: str | None, email: str = "") -> str | None:
    """Why this password is refused (a sentence for the user), or None if it is acceptable.

    NIST SP 800-63B: a minimum length, no composition rules, and a check against passwords that
    are commonly used or expected (here: a list of common ones, with digits or symbols added
    before or after, one character repeated, the email address)."""
    password = password or ""
    if len(password) < PASSWORD_MIN:
        return f"The password must be at least {PASSWORD_MIN} characters."
    if len(password) > PASSWORD_MAX:
        return f"The password can be at most {PASSWORD_MAX} characters."
    lowered = password.lower()
    email = (email or "").strip().lower()
    local_part = email.partition("@")[0]
    core = lowered.strip(string.digits + string.punctuation + " ")
    if email and (lowered == email or core in (email, local_part)):
        return "The password must not be your email address. Choose something else."
    common = common_passwords()
    if lowered in common or lowered.replace(" ", "") in common or core in common:
        return (
            "That password is one of the most commonly used, so it is easy to guess. Choose "
            "another: a few unrelated words together work well."
        )
    if len(set(lowered)) < PASSWORD_MIN_DISTINCT:
        return "That password repeats too few characters to be safe. Choose another."
    return None


def check_password_rules(password: str | None, email: str = "") -> None:
    problem = password_problem(password, email)
    if problem:
        raise UserError(problem, "password")


def hash_password(password: str) -> str:
    return generate_password_hash(password, method="scrypt")


def _actor(by: StaffUser | None) -> dict:
    """Audit who-fields: the admin who did it, or the command line."""
    return {"actor": "staff", "staff_id": by.id} if by else {"actor": "system"}


def create_user(
    session: Session,
    email: str,
    password: str,
    role: str,
    *,
    can_refund: bool = False,
    must_change_password: bool = False,
    by: StaffUser | None = None,
) -> StaffUser:
    """Add a staff account (committed)."""
    email = (email or "").strip().lower()
    if has_invisible_characters(email):
        raise UserError(invisible_message("the email address"), "email")
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise UserError("Give a valid email address.", "email")
    if role not in ROLES:
        raise UserError("Role must be admin or staff.", "role")
    check_password_rules(password, email)
    if session.scalar(select(StaffUser).where(StaffUser.email == email)):
        raise UserError(f"A user with email {email} already exists.", "email")
    user = StaffUser(
        email=email,
        password_hash=hash_password(password),
        role=role,
        can_refund=can_refund and role == "staff",
        password_must_change=must_change_password,
    )
    session.add(user)
    session.flush()
    audit.record(
        session, AuditAction.USER_CREATED, detail=f"user {user.id}, role {role}", **_actor(by)
    )
    session.commit()
    return user


def find_user(session: Session, email: str) -> StaffUser | None:
    return session.scalar(select(StaffUser).where(StaffUser.email == (email or "").strip().lower()))


def list_users(session: Session) -> list[StaffUser]:
    """Every staff account, active ones first, then by email."""
    return list(
        session.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.email))
    )


# --- Failed attempts: growing delays, then a lock ----------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    """After ``delay_after`` failures in a row each try must wait (doubling from ``delay_base``
    seconds up to ``delay_max``); after ``lock_after`` the account is locked until an admin
    clears it, or for ``lock_seconds`` if that is set."""

    delay_after: int = 5
    delay_base: int = 60
    delay_max: int = 15 * 60
    lock_after: int = 10
    lock_seconds: int | None = None

    @classmethod
    def from_config(cls, cfg) -> LoginPolicy:
        return cls(
            delay_after=int(cfg["LOGIN_DELAY_AFTER"]),
            delay_base=int(cfg["LOGIN_DELAY_BASE"]),
            delay_max=int(cfg["LOGIN_DELAY_MAX"]),
            lock_after=int(cfg["LOGIN_LOCK_AFTER"]),
            lock_seconds=None
            if cfg["LOGIN_LOCK_SECONDS"] is None
            else int(cfg["LOGIN_LOCK_SECONDS"]),
        )

    def delay_for(self, failures: int) -> timedelta | None:
        if failures < self.delay_after:
            return None
        seconds = self.delay_base * 2 ** min(failures - self.delay_after, 30)
        return timedelta(seconds=min(seconds, self.delay_max))


def is_locked(user: StaffUser, policy: LoginPolicy, now: datetime) -> bool:
    if user.locked_at is None:
        return False
    return policy.lock_seconds is None or now < user.locked_at + timedelta(
        seconds=policy.lock_seconds
    )


def is_waiting(user: StaffUser, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


def is_blocked(user: StaffUser, policy: LoginPolicy, now: datetime) -> bool:
    """Whether a password or code for this account may be checked at all right now."""
    return is_locked(user, policy, now) or is_waiting(user, now)


def record_failure(
    session: Session, user: StaffUser, policy: LoginPolicy, now: datetime, reason: str
) -> None:
    """Count a wrong password or code: make the next try wait, or lock the account."""
    user.failed_logins += 1
    audit.record(session, AuditAction.LOGIN_FAILED, staff_id=user.id, detail=reason, when=now)
    if user.failed_logins >= policy.lock_after:
        if user.locked_at is None or not is_locked(user, policy, now):
            user.locked_at = now
            audit.record(
                session,
                AuditAction.ACCOUNT_LOCKED,
                staff_id=user.id,
                detail=f"{user.failed_logins} failed attempts in a row",
                when=now,
            )
        user.locked_until = None
    else:
        delay = policy.delay_for(user.failed_logins)
        user.locked_until = now + delay if delay else None
    session.commit()


def clear_failures(user: StaffUser) -> None:
    user.failed_logins = 0
    user.locked_until = None
    user.locked_at = None


# --- Logging in ----------------------------------------------------------------------------------


def authenticate(
    session: Session,
    email: str,
    password: str,
    now: datetime | None = None,
    policy: LoginPolicy | None = None,
) -> StaffUser:
    """The first login step: the active user with this email and password, or AuthError.

    Every refusal raises the same AuthError after one scrypt verification, whether the email is
    unknown, the password wrong, or the account waiting or locked. A user without a second
    factor is logged in by this step (``finish_login``); one with a second factor is not yet."""
    now = now or utcnow()
    policy = policy or LoginPolicy()
    user = find_user(session, email)
    if user is None or not user.active:
        check_password_hash(_DUMMY_HASH, password or "")
        audit.record(
            session,
            AuditAction.LOGIN_FAILED,
            staff_id=user.id if user else None,
            detail="inactive account" if user else "unknown email",
            when=now,
        )
        session.commit()
        raise AuthError()
    if is_blocked(user, policy, now):
        check_password_hash(_DUMMY_HASH, password or "")
        why = "account locked" if is_locked(user, policy, now) else "waiting after failures"
        audit.record(
            session, AuditAction.LOGIN_FAILED, staff_id=user.id, detail=f"refused: {why}", when=now
        )
        session.commit()
        raise AuthError()
    if not check_password_hash(user.password_hash, password or ""):
        record_failure(session, user, policy, now, "wrong password")
        raise AuthError()
    if not user.mfa_enabled:
        finish_login(session, user, now, "password")
    return user


def verify_second_factor(
    session: Session,
    user: StaffUser,
    code: str,
    now: datetime | None = None,
    policy: LoginPolicy | None = None,
) -> str:
    """The second login step: a TOTP code (each accepted once) or a recovery code (then used
    up). Returns ``"totp"`` or ``"recovery code"`` and completes the login; AuthError if not."""
    now = now or utcnow()
    policy = policy or LoginPolicy()
    if not user.active or not user.mfa_enabled:
        raise AuthError(LOGIN_REFUSED)
    if is_blocked(user, policy, now):
        audit.record(
            session,
            AuditAction.LOGIN_FAILED,
            staff_id=user.id,
            detail="refused: code step",
            when=now,
        )
        session.commit()
        raise AuthError(TOO_MANY_TRIES)
    method = None
    if mfa.looks_like_totp(code):
        counter = mfa.verify_totp(user.totp_secret, code, user.totp_last_counter, now)
        if counter is not None:
            user.totp_last_counter = counter
            method = "totp"
    else:
        remaining = mfa.use_recovery_code(user.recovery_codes, code)
        if remaining is not None:
            user.recovery_codes = remaining
            method = "recovery code"
            audit.record(
                session,
                AuditAction.MFA_RECOVERY_CODE_USED,
                actor="staff",
                staff_id=user.id,
                detail=f"{mfa.count_recovery_codes(remaining)} left",
                when=now,
            )
    if method is None:
        record_failure(session, user, policy, now, "wrong code")
        raise AuthError(TOO_MANY_TRIES if is_blocked(user, policy, now) else CODE_REFUSED)
    finish_login(session, user, now, f"password and {method}")
    return method


def finish_login(session: Session, user: StaffUser, now: datetime, how: str) -> None:
    clear_failures(user)
    user.last_login_at = now
    audit.record(session, AuditAction.LOGIN, actor="staff", staff_id=user.id, detail=how, when=now)
    session.commit()


def confirm_identity(
    session: Session,
    user: StaffUser,
    *,
    password: str | None = None,
    code: str | None = None,
    now: datetime | None = None,
    policy: LoginPolicy | None = None,
) -> None:
    """Re-authentication inside a session: the password, or a TOTP code. AuthError if wrong;
    wrong answers count towards the same delays and lock as failed logins."""
    now = now or utcnow()
    policy = policy or LoginPolicy()
    if is_blocked(user, policy, now):
        raise AuthError(TOO_MANY_TRIES)
    if code is not None:
        counter = mfa.verify_totp(user.totp_secret, code, user.totp_last_counter, now)
        ok = user.mfa_enabled and counter is not None
        if ok:
            user.totp_last_counter = counter
        wrong = "That code did not work. Enter the newest 6-digit code from your authenticator app."
    else:
        ok = check_password_hash(user.password_hash, password or "")
        wrong = "That password is not right. Try again."
    if not ok:
        record_failure(
            session, user, policy, now, f"wrong {'code' if code else 'password'} to confirm"
        )
        raise AuthError(TOO_MANY_TRIES if is_blocked(user, policy, now) else wrong)
    user.failed_logins = 0
    user.locked_until = None
    audit.record(session, AuditAction.REAUTH, actor="staff", staff_id=user.id, when=now)
    session.commit()


# --- A user's own account -----------------------------------------------------------------------


def change_password(
    session: Session,
    user: StaffUser,
    current: str,
    new: str,
    now: datetime | None = None,
    policy: LoginPolicy | None = None,
) -> None:
    """Set a new password (committed); every other session of this user ends."""
    now = now or utcnow()
    policy = policy or LoginPolicy()
    if is_blocked(user, policy, now):
        raise AuthError(TOO_MANY_TRIES)
    if not check_password_hash(user.password_hash, current or ""):
        record_failure(session, user, policy, now, "wrong current password")
        raise AuthError(
            TOO_MANY_TRIES
            if is_blocked(user, policy, now)
            else "Your current password is not right. Try again."
        )
    check_password_rules(new, user.email)
    if check_password_hash(user.password_hash, new):
        raise UserError("The new password must be different from the current one.")
    user.password_hash = hash_password(new)
    user.password_must_change = False
    user.failed_logins = 0
    user.locked_until = None
    user.session_generation += 1
    audit.record(session, AuditAction.PASSWORD_CHANGED, actor="staff", staff_id=user.id, when=now)
    session.commit()


def log_out_everywhere(session: Session, user: StaffUser) -> None:
    """End every session of this user, on every device (committed)."""
    user.session_generation += 1
    audit.record(session, AuditAction.SESSIONS_REVOKED, actor="staff", staff_id=user.id)
    session.commit()


def start_mfa_enrolment(session: Session, user: StaffUser) -> str:
    """The secret to show for enrolment: a new one, or the one of an enrolment in progress."""
    if user.mfa_enabled:
        raise UserError("Two-step verification is already on for this account.")
    if not user.totp_secret:
        user.totp_secret = mfa.new_secret()
        session.commit()
    return user.totp_secret


def confirm_mfa_enrolment(
    session: Session, user: StaffUser, code: str, now: datetime | None = None
) -> list[str]:
    """Turn TOTP on once the user proves their app has the secret; returns the recovery codes
    (shown once; only their digests are kept)."""
    now = now or utcnow()
    if user.mfa_enabled:
        raise UserError("Two-step verification is already on for this account.")
    counter = mfa.verify_totp(user.totp_secret or "", code, None, now)
    if counter is None:
        raise UserError(
            "That code did not match. Check that you added the key shown here, then enter the "
            "newest 6-digit code your app shows."
        )
    codes = mfa.new_recovery_codes()
    user.mfa_enabled_at = now
    user.totp_last_counter = counter
    user.recovery_codes = mfa.store_recovery_codes(codes)
    audit.record(session, AuditAction.MFA_ENROLLED, actor="staff", staff_id=user.id, when=now)
    session.commit()
    return codes


def regenerate_recovery_codes(session: Session, user: StaffUser) -> list[str]:
    """New recovery codes replace all the old ones (committed)."""
    if not user.mfa_enabled:
        raise UserError("Turn on two-step verification first.")
    codes = mfa.new_recovery_codes()
    user.recovery_codes = mfa.store_recovery_codes(codes)
    audit.record(session, AuditAction.MFA_RECOVERY_CODES_REPLACED, actor="staff", staff_id=user.id)
    session.commit()
    return codes


# --- Admins changing users ----------------------------------------------------------------------


def deactivate_user(session: Session, user: StaffUser, by: StaffUser | None) -> None:
    """The account can no longer log in, and its sessions end (committed)."""
    if by is not None and by.id == user.id:
        raise UserError("You can't deactivate your own account. Ask another admin.")
    user.active = False
    user.session_generation += 1
    audit.record(session, AuditAction.USER_DEACTIVATED, detail=f"user {user.id}", **_actor(by))
    session.commit()


def reactivate_user(session: Session, user: StaffUser, by: StaffUser | None) -> None:
    user.active = True
    audit.record(session, AuditAction.USER_REACTIVATED, detail=f"user {user.id}", **_actor(by))
    session.commit()


def unlock_user(session: Session, user: StaffUser, by: StaffUser | None) -> None:
    """Clear failed attempts, waits and the lock (committed)."""
    clear_failures(user)
    audit.record(session, AuditAction.USER_UNLOCKED, detail=f"user {user.id}", **_actor(by))
    session.commit()


def set_refund_permission(
    session: Session, user: StaffUser, allowed: bool, by: StaffUser | None
) -> None:
    if user.role == "admin" and by is not None:
        raise UserError("Admins can always refund payments.")
    user.can_refund = allowed
    action = AuditAction.USER_REFUNDS_GRANTED if allowed else AuditAction.USER_REFUNDS_REVOKED
    audit.record(session, action, detail=f"user {user.id}", **_actor(by))
    session.commit()


def reset_mfa(session: Session, user: StaffUser, by: StaffUser | None) -> None:
    """Remove the second factor and recovery codes; the user sets it up again at next login
    (if their role needs it). Their sessions end (committed)."""
    user.totp_secret = None
    user.mfa_enabled_at = None
    user.totp_last_counter = None
    user.recovery_codes = ""
    user.session_generation += 1
    audit.record(session, AuditAction.USER_MFA_RESET, detail=f"user {user.id}", **_actor(by))
    session.commit()


def set_temporary_password(
    session: Session, user: StaffUser, password: str, by: StaffUser | None
) -> None:
    """An admin's reset for a forgotten password: the user must choose their own at next login;
    the lock is cleared and their sessions end (committed)."""
    if by is not None and by.id == user.id:
        raise UserError("Change your own password on the Your account page.")
    check_password_rules(password, user.email)
    user.password_hash = hash_password(password)
    user.password_must_change = True
    clear_failures(user)
    user.session_generation += 1
    audit.record(session, AuditAction.USER_PASSWORD_RESET, detail=f"user {user.id}", **_actor(by))
    session.commit()


# --- Sessions and guards ------------------------------------------------------------------------


def now_ts() -> int:
    return int(utcnow().timestamp())


def login_policy() -> LoginPolicy:
    return LoginPolicy.from_config(current_app.config)


def mfa_required(user: StaffUser) -> bool:
    return user.role == "admin" or bool(current_app.config["REQUIRE_MFA_FOR_STAFF"])


# Pages a logged-in user may still open while setup (two-step, own password) is outstanding.
SETUP_ENDPOINTS = {
    "auth.show_mfa_setup",
    "auth.submit_mfa_setup",
    "auth.show_change_password",
    "auth.submit_change_password",
}


def pending_setup(user: StaffUser) -> str | None:
    """The endpoint of what this user must do before anything else, if anything."""
    if mfa_required(user) and not user.mfa_enabled:
        return "auth.show_mfa_setup"
    if user.password_must_change:
        return "auth.show_change_password"
    return None


def start_session(user: StaffUser) -> None:
    """A fresh session for this user: nothing from before carries over."""
    session.clear()
    now = now_ts()
    session["staff_id"] = user.id
    session["gen"] = user.session_generation
    session["login_at"] = session["seen_at"] = session["reauth_at"] = now
    session.permanent = True


def load_current_staff() -> None:
    """Set g.staff from the session, ending sessions that sat idle, lived too long, or were
    ended elsewhere (log out everywhere, a password change, deactivation)."""
    g.staff = None
    staff_id = session.get("staff_id")
    if staff_id is None:
        return
    now = now_ts()
    cfg = current_app.config
    idle = now - int(session.get("seen_at", 0))
    age = now - int(session.get("login_at", 0))
    if idle > cfg["STAFF_IDLE_TIMEOUT"] or age > cfg["STAFF_SESSION_MAX_AGE"]:
        session.clear()
        flash("You were logged out after a period of inactivity. Please log in again.", "info")
        return
    user = get_session().get(StaffUser, staff_id)
    if user is None or not user.active or session.get("gen") != user.session_generation:
        session.clear()
        flash("Your session was ended. Please log in again.", "info")
        return
    g.staff = user
    session["seen_at"] = now


def _go(target: str, code: int = 302):
    """Redirect; htmx requests get HX-Redirect so the whole page moves, not a fragment."""
    if request.headers.get("HX-Request") == "true":
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, code=303 if request.method == "POST" else code)


def login_required(view):
    """Logged in, with any required setup (two-step verification, own password) done."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("staff") is None:
            return _go(url_for("auth.show_login", next=request.full_path.rstrip("?")))
        setup = pending_setup(g.staff)
        if setup and request.endpoint not in SETUP_ENDPOINTS:
            return _go(url_for(setup))
        return view(*args, **kwargs)

    return wrapped


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


def referring_page() -> str:
    """The local page a POST's form was on (from the Referer), else the link list."""
    referer = request.headers.get("Referer", "")
    parts = urlsplit(referer)
    if referer and parts.netloc in ("", request.host):
        target = safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
        if target and not target.startswith(url_for("auth.show_reauth")):
            return target
    return url_for("staff.list_links")


def reauth_required(view):
    """Logged in, and the password or a TOTP code confirmed within REAUTH_WINDOW seconds.

    Otherwise a GET goes to /reauth and comes back; a POST is not replayed: it goes (303) to
    /reauth with next= the page its form was on, where the user can submit it again."""

    @functools.wraps(view)
    def checked(*args, **kwargs):
        confirmed_at = int(session.get("reauth_at", 0))
        if now_ts() - confirmed_at > int(current_app.config["REAUTH_WINDOW"]):
            # A GET comes back to itself; a POST to the page its form was on (never replayed).
            back = request.full_path.rstrip("?") if request.method == "GET" else referring_page()
            flash("For your security, confirm it's you before you continue.", "info")
            return _go(url_for("auth.show_reauth", next=back))
        return view(*args, **kwargs)

    return login_required(checked)


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


def after_login_target(user: StaffUser, wanted: str | None) -> str:
    setup = pending_setup(user)
    if setup:
        session["after_setup"] = safe_next(wanted) or ""
        return url_for(setup)
    return safe_next(wanted) or url_for("staff.list_links")


# --- Command line -------------------------------------------------------------------------------


def _user_or_fail(email: str) -> StaffUser:
    user = find_user(get_session(), email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    return user


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
    if user.role == "admin":
        click.echo("At first login they set up two-step verification with an authenticator app.")


@click.command("allow-refunds")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the permission away instead.")
def allow_refunds_command(email, revoke):
    """Let a staff account refund payments (admins always can)."""
    user = _user_or_fail(email)
    set_refund_permission(get_session(), user, not revoke, by=None)
    click.echo(f"{user.email} {'can no longer' if revoke else 'can now'} refund payments.")


@click.command("unlock-user")
@click.argument("email")
def unlock_user_command(email):
    """Clear a locked account's failed logins (for when no admin can log in)."""
    user = _user_or_fail(email)
    unlock_user(get_session(), user, by=None)
    click.echo(f"{user.email} is unlocked and can log in again.")


@click.command("reset-mfa")
@click.argument("email")
def reset_mfa_command(email):
    """Remove an account's two-step verification (a lost phone); set up again at next login."""
    user = _user_or_fail(email)
    reset_mfa(get_session(), user, by=None)
    click.echo(f"Two-step verification removed for {user.email}; they set it up at next login.")


def init_app(app) -> None:
    app.before_request(load_current_staff)
    # The staff menu hides its links while the user still has to finish setup.
    app.jinja_env.globals["staff_setup_pending"] = lambda: bool(
        g.get("staff") and pending_setup(g.staff)
    )
    from .views.account import bp

    app.register_blueprint(bp)
    for command in (
        create_user_command,
        allow_refunds_command,
        unlock_user_command,
        reset_mfa_command,
    ):
        app.cli.add_command(command)
