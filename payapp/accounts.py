"""Staff accounts as admins (or the command line) manage them: create a user, roles, the refund
permission, deactivate and reactivate, unlock, reset the second factor, a temporary password.

Functions take plain values and a database session, and commit what they change."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .models import StaffUser
from .passwords import hash_password, password_problem
from .plaintext import has_invisible_characters, invisible_message, staff_text
from .states import AuditAction

ROLES = ("admin", "staff")


class UserError(ValueError):
    """A user cannot be created or changed as asked; the message says why, ``field`` which
    form field it is about (if one)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def check_password_rules(password: str | None, email: str = "") -> None:
    """UserError (about the password field) if the password breaks a rule in passwords.py."""
    problem = password_problem(password, email)
    if problem:
        raise UserError(problem, "password")


def normalize_email(email: str | None) -> str:
    """Emails are compared and stored lower-case, without surrounding spaces."""
    return (email or "").strip().lower()


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
    email = normalize_email(email)
    if has_invisible_characters(email):
        raise UserError(invisible_message("email"), "email")
    try:
        # Syntax only: a clinic's mail server may not be reachable from where payapp runs.
        validate_email(email, check_deliverability=False)
    except EmailNotValidError:
        raise UserError(staff_text("Give a valid email address."), "email") from None
    if role not in ROLES:
        raise UserError(staff_text("Role must be admin or staff."), "role")
    check_password_rules(password, email)
    if find_user(session, email):
        raise UserError(
            staff_text("A user with email %(email)s already exists.", email=email), "email"
        )
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


def list_users(session: Session) -> list[StaffUser]:
    """Every staff account, active ones first, then by email."""
    return list(
        session.scalars(select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.email))
    )


def find_user(session: Session, email: str) -> StaffUser | None:
    """The account with this email (any case), or None."""
    return session.scalar(select(StaffUser).where(StaffUser.email == normalize_email(email)))


def clear_failures(user: StaffUser) -> None:
    """Forget failed login attempts, the wait they caused and the lock (not committed)."""
    user.failed_logins = 0
    user.locked_until = None
    user.locked_at = None


def deactivate_user(session: Session, user: StaffUser, by: StaffUser | None) -> None:
    """The account can no longer log in, and its sessions end (committed)."""
    if by is not None and by.id == user.id:
        raise UserError(staff_text("You can't deactivate your own account. Ask another admin."))
    user.active = False
    user.session_generation += 1
    audit.record(session, AuditAction.USER_DEACTIVATED, detail=f"user {user.id}", **_actor(by))
    session.commit()


def reactivate_user(session: Session, user: StaffUser, by: StaffUser | None) -> None:
    """The account can log in again (committed)."""
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
    """Let a staff account refund payments, or not (committed); admins always can."""
    if user.role == "admin" and by is not None:
        raise UserError(staff_text("Admins can always refund payments."))
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
        raise UserError(staff_text("Change your own password on the Your account page."))
    check_password_rules(password, user.email)
    user.password_hash = hash_password(password)
    user.password_must_change = True
    clear_failures(user)
    user.session_generation += 1
    audit.record(session, AuditAction.USER_PASSWORD_RESET, detail=f"user {user.id}", **_actor(by))
    session.commit()
