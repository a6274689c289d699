"""Admin pages for staff accounts under /users: list, create, and the changes an admin makes
(deactivate, reactivate, clear a lockout, refund permission, reset two-step, temporary password).

Every page is for admins only (403 for staff) and needs a recent re-authentication; every
change is a POST (CSRF-checked app-wide), answered 303, and recorded in the audit trail by the
domain functions in accounts.py.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, StringField
from wtforms.validators import Length

from .. import accounts, login, mfa
from ..db import get_or_404, get_session
from ..htmx import render
from ..i18n import translate
from ..models import StaffUser, utcnow
from ..passwords import PASSWORD_MAX
from .guards import login_policy, reauth_required, role_required

bp = Blueprint("users", __name__, url_prefix="/users")


ROLE_CHOICES = [
    ("staff", lazy_gettext("Staff — creates and sends payment links")),
    ("admin", lazy_gettext("Admin — also refunds, users and settings")),
]


class NewUserForm(FlaskForm):
    email = EmailField(lazy_gettext("Email"), validators=[Length(max=254)])
    role = StringField(
        lazy_gettext("Role"), default="staff", validators=[Length(max=10)]
    )  # accounts checks it
    password = PasswordField(
        lazy_gettext("Temporary password"), validators=[Length(max=PASSWORD_MAX)]
    )
    can_refund = BooleanField(lazy_gettext("Can refund payments"))


class TemporaryPasswordForm(FlaskForm):
    password = PasswordField(
        lazy_gettext("New temporary password"), validators=[Length(max=PASSWORD_MAX)]
    )


def account_state(user: StaffUser) -> str:
    """locked | waiting | ok, as an admin should read it."""
    now = utcnow()
    policy = login_policy()
    if login.is_locked(user, policy, now):
        return "locked"
    if login.is_waiting(user, now):
        return "waiting"
    return "ok"


def back_to(user: StaffUser):
    return redirect(url_for("users.show_user", user_id=user.id), code=303)


@bp.get("")
@role_required("admin")
@reauth_required
def list_users():
    users = accounts.list_users(get_session())
    return render("users/list.html", users=users, state_of=account_state)


@bp.get("/new")
@role_required("admin")
@reauth_required
def show_new_user():
    return render("users/new.html", form=NewUserForm(), roles=ROLE_CHOICES, errors={})


@bp.post("/new")
@role_required("admin")
@reauth_required
def submit_new_user():
    form = NewUserForm()
    if not form.validate():
        errors = {name: field.errors[0] for name, field in form._fields.items() if field.errors}
        errors.setdefault("form", _("Some fields are too long or not valid. Check them and retry."))
        return render(
            "users/new.html", form=form, roles=ROLE_CHOICES, errors=errors, status_code=422
        )
    try:
        user = accounts.create_user(
            get_session(),
            form.email.data or "",
            form.password.data or "",
            form.role.data or "",
            can_refund=bool(form.can_refund.data),
            must_change_password=True,
            by=g.staff,
        )
    except accounts.UserError as exc:
        errors = {exc.field or "form": translate(exc.args[0])}
        return render(
            "users/new.html", form=form, roles=ROLE_CHOICES, errors=errors, status_code=422
        )
    flash(
        _(
            "Account created for %(email)s. Give them the temporary password in person or by "
            "phone (not by email); they choose their own at first login and set up two-step "
            "verification.",
            email=user.email,
        )
        if user.role == "admin"
        else _(
            "Account created for %(email)s. Give them the temporary password in person or by "
            "phone (not by email); they choose their own at first login.",
            email=user.email,
        ),
        "success",
    )
    return back_to(user)


@bp.get("/<id:user_id>")
@role_required("admin")
@reauth_required
def show_user(user_id: int):
    user = get_or_404(StaffUser, user_id)
    return render(
        "users/detail.html",
        user=user,
        state=account_state(user),
        codes_left=mfa.count_recovery_codes(user.recovery_codes),
        password_error=None,
        is_self=user.id == g.staff.id,
    )


def _change(user_id: int, change, done: str):
    """Apply one admin change to a user, flash the outcome, and go back to their page."""
    user = get_or_404(StaffUser, user_id)
    try:
        change(get_session(), user, by=g.staff)
    except accounts.UserError as exc:
        flash(translate(exc.args[0]), "error")
    else:
        flash(done % {"email": user.email}, "success")
    return back_to(user)


@bp.post("/<id:user_id>/deactivate")
@role_required("admin")
@reauth_required
def deactivate_user(user_id: int):
    return _change(
        user_id,
        accounts.deactivate_user,
        _("%(email)s is deactivated: they can no longer log in and were logged out."),
    )


@bp.post("/<id:user_id>/reactivate")
@role_required("admin")
@reauth_required
def reactivate_user(user_id: int):
    return _change(user_id, accounts.reactivate_user, _("%(email)s can log in again."))


@bp.post("/<id:user_id>/unlock")
@role_required("admin")
@reauth_required
def unlock_user(user_id: int):
    return _change(
        user_id,
        accounts.unlock_user,
        _("Lockout cleared: %(email)s can log in again straight away."),
    )


@bp.post("/<id:user_id>/refunds/grant")
@role_required("admin")
@reauth_required
def grant_refunds(user_id: int):
    return _change(
        user_id,
        lambda s, u, by: accounts.set_refund_permission(s, u, True, by),
        _("%(email)s can now refund payments."),
    )


@bp.post("/<id:user_id>/refunds/revoke")
@role_required("admin")
@reauth_required
def revoke_refunds(user_id: int):
    return _change(
        user_id,
        lambda s, u, by: accounts.set_refund_permission(s, u, False, by),
        _("%(email)s can no longer refund payments."),
    )


@bp.post("/<id:user_id>/two-step/reset")
@role_required("admin")
@reauth_required
def reset_mfa(user_id: int):
    return _change(
        user_id,
        accounts.reset_mfa,
        _(
            "Two-step verification was removed for %(email)s and they were logged out. They set "
            "it up again at their next login."
        ),
    )


@bp.post("/<id:user_id>/password")
@role_required("admin")
@reauth_required
def set_temporary_password(user_id: int):
    user = get_or_404(StaffUser, user_id)
    form = TemporaryPasswordForm()
    error = None
    if not form.validate():
        error = _("That password is too long.")
    else:
        try:
            accounts.set_temporary_password(get_session(), user, form.password.data or "", g.staff)
        except accounts.UserError as exc:
            error = translate(exc.args[0])
    if error:
        return render(
            "users/detail.html",
            user=user,
            state=account_state(user),
            codes_left=mfa.count_recovery_codes(user.recovery_codes),
            password_error=error,
            is_self=user.id == g.staff.id,
            status_code=422,
        )
    flash(
        _(
            "Temporary password set for %(email)s; they were logged out and choose their own "
            "password at next login.",
            email=user.email,
        ),
        "success",
    )
    return back_to(user)
