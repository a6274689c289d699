"""Logging in and proving it is you: the password step, the second factor (TOTP or a recovery
code), re-authentication, changing one's own password, setting up the second factor, and the
growing delays and lock after failed attempts.

Functions take plain values and a database session; the sessions (cookies) that carry a login
are the views' business (views/guards.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from . import audit, mfa
from .accounts import UserError, check_password_rules, clear_failures, find_user
from .models import StaffUser, utcnow
from .passwords import hash_password, verify_no_password, verify_password
from .plaintext import staff_text
from .states import AuditAction

# How long the second login step may wait after a right password.
SECOND_STEP_SECONDS = 5 * 60

# One message for every refused login, whatever the reason: it must not tell whether the
# account exists, was mistyped, is waiting after failures, or is locked.
LOGIN_REFUSED = staff_text(
    "Email or password is incorrect. Check both and try again. After several failed attempts "
    "you have to wait a few minutes between tries; if you are stuck, ask your clinic's payapp "
    "administrator."
)
CODE_REFUSED = staff_text(
    "That code did not work. Enter the newest 6-digit code from your authenticator app (check "
    "that your phone's clock is right), or one of your recovery codes."
)
TOO_MANY_TRIES = staff_text(
    "Too many wrong attempts. Wait a few minutes and try again, or ask your clinic's payapp "
    "administrator to unlock your account."
)


class AuthError(Exception):
    """A login step or confirmation refused; the message is safe to show as it is."""

    def __init__(self, message: str = LOGIN_REFUSED):
        super().__init__(message)
        self.message = message


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
    def from_config(cls, cfg: Mapping) -> LoginPolicy:
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
    """Locked after too many failures, until an admin clears it (or the lock runs out)."""
    if user.locked_at is None:
        return False
    return policy.lock_seconds is None or now < user.locked_at + timedelta(
        seconds=policy.lock_seconds
    )


def is_waiting(user: StaffUser, now: datetime) -> bool:
    """Inside the wait that follows several failures."""
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


# --- Logging in ----------------------------------------------------------------------------------


def mfa_required(user: StaffUser, required_for_staff: bool) -> bool:
    """Whether this user must use a second factor: admins always, staff if the clinic says so."""
    return user.role == "admin" or bool(required_for_staff)


def setup_pending(user: StaffUser, required_for_staff: bool) -> str | None:
    """What this user must do before anything else: ``"mfa"`` (set up the second factor),
    ``"password"`` (replace a temporary password), or None."""
    if mfa_required(user, required_for_staff) and not user.mfa_enabled:
        return "mfa"
    if user.password_must_change:
        return "password"
    return None


def authenticate(
    session: Session,
    email: str,
    password: str,
    now: datetime | None = None,
    policy: LoginPolicy | None = None,
) -> StaffUser:
    """The first login step: the active user with this email and password, or AuthError.

    Every refusal raises the same AuthError after one password verification, whether the email
    is unknown, the password wrong, or the account waiting or locked. A user without a second
    factor is logged in by this step (``finish_login``); one with a second factor is not yet."""
    now = now or utcnow()
    policy = policy or LoginPolicy()
    user = find_user(session, email)
    if user is None or not user.active:
        verify_no_password(password)
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
        verify_no_password(password)
        why = "account locked" if is_locked(user, policy, now) else "waiting after failures"
        audit.record(
            session, AuditAction.LOGIN_FAILED, staff_id=user.id, detail=f"refused: {why}", when=now
        )
        session.commit()
        raise AuthError()
    if not verify_password(user.password_hash, password):
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
    """Record a completed login and start the failure count again (committed)."""
    clear_failures(user)
    user.last_login_at = now
    audit.record(session, AuditAction.LOGIN, actor="staff", staff_id=user.id, detail=how, when=now)
    session.commit()


def log_out(session: Session, user: StaffUser) -> None:
    """End this login (committed). Sessions are signed cookies: only a new generation stops a
    copy of this one (from a shared PC or a proxy log) from working on; it ends the user's
    other sessions too."""
    user.session_generation += 1
    audit.record(session, AuditAction.LOGOUT, actor="staff", staff_id=user.id)
    session.commit()


def log_out_everywhere(session: Session, user: StaffUser) -> None:
    """End every session of this user, on every device (committed)."""
    user.session_generation += 1
    audit.record(session, AuditAction.SESSIONS_REVOKED, actor="staff", staff_id=user.id)
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
        wrong = staff_text(
            "That code did not work. Enter the newest 6-digit code from your authenticator app."
        )
    else:
        ok = verify_password(user.password_hash, password)
        wrong = staff_text("That password is not right. Try again.")
    if not ok:
        record_failure(
            session, user, policy, now, f"wrong {'code' if code else 'password'} to confirm"
        )
        raise AuthError(TOO_MANY_TRIES if is_blocked(user, policy, now) else wrong)
    user.failed_logins = 0
    user.locked_until = None
    audit.record(session, AuditAction.REAUTH, actor="staff", staff_id=user.id, when=now)
    session.commit()


# --- A user's own password and second factor ---------------------------------------------------


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
    if not verify_password(user.password_hash, current):
        record_failure(session, user, policy, now, "wrong current password")
        raise AuthError(
            TOO_MANY_TRIES
            if is_blocked(user, policy, now)
            else staff_text("Your current password is not right. Try again.")
        )
    check_password_rules(new, user.email)
    if verify_password(user.password_hash, new):
        raise UserError(staff_text("The new password must be different from the current one."))
    user.password_hash = hash_password(new)
    user.password_must_change = False
    user.failed_logins = 0
    user.locked_until = None
    user.session_generation += 1
    audit.record(session, AuditAction.PASSWORD_CHANGED, actor="staff", staff_id=user.id, when=now)
    session.commit()


def start_mfa_enrolment(session: Session, user: StaffUser) -> str:
    """The secret to show for enrolment: a new one, or the one of an enrolment in progress."""
    if user.mfa_enabled:
        raise UserError(staff_text("Two-step verification is already on for this account."))
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
        raise UserError(staff_text("Two-step verification is already on for this account."))
    counter = mfa.verify_totp(user.totp_secret or "", code, None, now)
    if counter is None:
        raise UserError(
            staff_text(
                "That code did not match. Check that you added the key shown here, then enter the "
                "newest 6-digit code your app shows."
            )
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
        raise UserError(staff_text("Turn on two-step verification first."))
    codes = mfa.new_recovery_codes()
    user.recovery_codes = mfa.store_recovery_codes(codes)
    audit.record(session, AuditAction.MFA_RECOVERY_CODES_REPLACED, actor="staff", staff_id=user.id)
    session.commit()
    return codes
