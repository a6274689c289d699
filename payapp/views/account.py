"""Staff sign-in pages: log in (password, then a code), log out, re-authenticate, and each
user's own account (password, two-step verification, recovery codes, log out everywhere).

Thin views over payapp.login (the rules) and views/guards.py (the session)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, g, redirect, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from .. import mfa
from ..accounts import UserError
from ..db import get_session
from ..extensions import limiter
from ..htmx import render
from ..i18n import translate
from ..login import (
    SECOND_STEP_SECONDS,
    TOO_MANY_TRIES,
    AuthError,
    authenticate,
    change_password,
    confirm_identity,
    confirm_mfa_enrolment,
    is_locked,
    log_out,
    log_out_everywhere,
    regenerate_recovery_codes,
    start_mfa_enrolment,
    verify_second_factor,
)
from ..models import StaffUser, utcnow
from ..passwords import PASSWORD_MAX
from ..qr import qr_svg
from .guards import (
    end_session,
    login_policy,
    login_required,
    mark_confirmed,
    mfa_required,
    now_ts,
    pending_setup,
    reauth_required,
    renew_session,
    safe_next,
    start_session,
)

bp = Blueprint("auth", __name__)


# --- Views: logging in and out ------------------------------------------------------------------


class LoginForm(FlaskForm):
    email = EmailField(lazy_gettext("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(
        lazy_gettext("Password"), validators=[DataRequired(), Length(max=PASSWORD_MAX)]
    )
    next = HiddenField()


class CodeForm(FlaskForm):
    code = StringField(
        lazy_gettext("Authentication code"), validators=[DataRequired(), Length(max=40)]
    )


class ReauthForm(FlaskForm):
    password = PasswordField(lazy_gettext("Password"), validators=[Length(max=PASSWORD_MAX)])
    code = StringField(lazy_gettext("Authentication code"), validators=[Length(max=40)])
    method = HiddenField()
    next = HiddenField()


class PasswordChangeForm(FlaskForm):
    current = PasswordField(lazy_gettext("Current password"), validators=[Length(max=PASSWORD_MAX)])
    new = PasswordField(lazy_gettext("New password"), validators=[Length(max=PASSWORD_MAX)])
    confirm = PasswordField(
        lazy_gettext("New password again"), validators=[Length(max=PASSWORD_MAX)]
    )


def after_login_target(user: StaffUser, wanted: str | None) -> str:
    setup = pending_setup(user)
    if setup:
        session["after_setup"] = safe_next(wanted) or ""
        return url_for(setup)
    return safe_next(wanted) or url_for("dashboard.show_dashboard")


login_limit = limiter.shared_limit(lambda: current_app.config["RATELIMIT_LOGIN"], scope="login")


@bp.get("/login")
def show_login():
    form = LoginForm(next=safe_next(request.args.get("next")) or "")
    return render("auth/login.html", form=form)


@bp.post("/login")
@login_limit
def submit_login():
    form = LoginForm()
    if not form.validate():
        return render("auth/login.html", form=form, status_code=422)
    try:
        user = authenticate(
            get_session(), form.email.data, form.password.data, policy=login_policy()
        )
    except AuthError as exc:
        return render("auth/login.html", form=form, error=translate(exc.message), status_code=422)
    wanted = safe_next(form.next.data)
    session.clear()  # a fresh session at each step: nothing from before carries over
    if user.mfa_enabled:
        session["pending_staff_id"] = user.id
        session["pending_at"] = now_ts()
        session["pending_next"] = wanted or ""
        return redirect(url_for("auth.show_second_step"), code=303)
    start_session(user)
    return redirect(after_login_target(user, wanted), code=303)


def _pending_user() -> StaffUser | None:
    """The user between the two login steps, if that step is still fresh."""
    user_id = session.get("pending_staff_id")
    if user_id is None or now_ts() - int(session.get("pending_at", 0)) > SECOND_STEP_SECONDS:
        return None
    return get_session().get(StaffUser, user_id)


def _restart_login():
    session.clear()
    flash(_("Log in again: the code step waits only a few minutes."), "info")
    return redirect(url_for("auth.show_login"), code=303)


@bp.get("/login/code")
def show_second_step():
    if _pending_user() is None:
        return _restart_login()
    return render("auth/second_step.html", form=CodeForm())


@bp.post("/login/code")
@login_limit
def submit_second_step():
    user = _pending_user()
    if user is None:
        return _restart_login()
    form = CodeForm()
    if not form.validate():
        return render(
            "auth/second_step.html", form=form, error=_("Enter the code."), status_code=422
        )
    try:
        method = verify_second_factor(get_session(), user, form.code.data, policy=login_policy())
    except AuthError as exc:
        return render(
            "auth/second_step.html", form=form, error=translate(exc.message), status_code=422
        )
    wanted = session.get("pending_next")
    start_session(user)
    if method == "recovery code":
        left = mfa.count_recovery_codes(user.recovery_codes)
        flash(
            _(
                "You used a recovery code (each works once); you have %(left)s left. If your "
                "phone is lost, ask an admin to reset two-step verification; you can make new "
                "codes on Your account.",
                left=left,
            ),
            "warning",
        )
    return redirect(after_login_target(user, wanted), code=303)


@bp.post("/logout")
def submit_logout():
    if g.get("staff") is not None:
        log_out(get_session(), g.staff)
    end_session()
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.show_login"), code=303)


# --- Views: re-authentication -------------------------------------------------------------------


def _reauth_method(user: StaffUser, asked: str | None) -> str:
    return "code" if user.mfa_enabled and asked != "password" else "password"


@bp.get("/reauth")
@login_required
def show_reauth():
    method = _reauth_method(g.staff, request.args.get("with"))
    form = ReauthForm(method=method, next=safe_next(request.args.get("next")) or "")
    return render("auth/reauth.html", form=form, method=method)


@bp.post("/reauth")
@login_limit
@login_required
def submit_reauth():
    form = ReauthForm()
    method = _reauth_method(g.staff, form.method.data)
    form.method.data = method
    if not form.validate():
        return render("auth/reauth.html", form=form, method=method, status_code=422)
    try:
        confirm_identity(
            get_session(),
            g.staff,
            password=form.password.data if method == "password" else None,
            code=form.code.data if method == "code" else None,
            policy=login_policy(),
        )
    except AuthError as exc:
        if is_locked(g.staff, login_policy(), utcnow()):
            end_session()
            flash(TOO_MANY_TRIES, "error")
            return redirect(url_for("auth.show_login"), code=303)
        return render(
            "auth/reauth.html",
            form=form,
            method=method,
            error=translate(exc.message),
            status_code=422,
        )
    mark_confirmed()
    return redirect(safe_next(form.next.data) or url_for("staff.list_links"), code=303)


# --- Views: the user's own account --------------------------------------------------------------


@bp.get("/account")
@login_required
def show_account():
    return render(
        "auth/account.html",
        user=g.staff,
        codes_left=mfa.count_recovery_codes(g.staff.recovery_codes),
        mfa_required=mfa_required(g.staff),
    )


@bp.get("/account/password")
@login_required
def show_change_password():
    return render("auth/password.html", form=PasswordChangeForm(), errors={})


@bp.post("/account/password")
@login_limit
@login_required
def submit_change_password():
    form = PasswordChangeForm()
    errors = {}
    if not form.validate():
        errors["form"] = _("Some fields are too long. Shorten them and try again.")
    elif not form.current.data:
        errors["current"] = _("Enter your current password.")
    elif (form.new.data or "") != (form.confirm.data or ""):
        errors["confirm"] = _("The two new passwords are not the same. Type them again.")
    else:
        try:
            change_password(
                get_session(), g.staff, form.current.data, form.new.data, policy=login_policy()
            )
        except AuthError as exc:
            if is_locked(g.staff, login_policy(), utcnow()):
                end_session()
                flash(TOO_MANY_TRIES, "error")
                return redirect(url_for("auth.show_login"), code=303)
            errors["current"] = translate(exc.message)
        except UserError as exc:
            errors["new"] = translate(exc.args[0])
    if errors:
        return render("auth/password.html", form=form, errors=errors, status_code=422)
    # This session stays; every other one ends.
    renew_session(g.staff)
    flash(_("Your password was changed. You were logged out on your other devices."), "success")
    if pending_setup(g.staff):
        return redirect(url_for(pending_setup(g.staff)), code=303)
    return redirect(safe_next(session.pop("after_setup", "")) or url_for("auth.show_account"), 303)


@bp.get("/account/two-step")
@login_required
def show_mfa_setup():
    if g.staff.mfa_enabled:
        flash(_("Two-step verification is already on."), "info")
        return redirect(url_for("auth.show_account"))
    return _render_mfa_setup(CodeForm())


def _render_mfa_setup(form: CodeForm, error: str | None = None, status_code: int = 200):
    secret = start_mfa_enrolment(get_session(), g.staff)
    issuer = f"{current_app.config['CLINIC_NAME']} payapp"
    uri = mfa.provisioning_uri(secret, g.staff.email, issuer)
    return render(
        "auth/mfa_setup.html",
        form=form,
        error=error,
        qr=qr_svg(uri, title=_("QR code for your authenticator app")),
        secret=mfa.grouped(secret),
        issuer=issuer,
        required=mfa_required(g.staff),
        status_code=status_code,
    )


@bp.post("/account/two-step")
@login_limit
@login_required
def submit_mfa_setup():
    if g.staff.mfa_enabled:
        return redirect(url_for("auth.show_account"), code=303)
    form = CodeForm()
    if not form.validate():
        return _render_mfa_setup(form, _("Enter the 6-digit code from your app."), 422)
    try:
        codes = confirm_mfa_enrolment(get_session(), g.staff, form.code.data)
    except UserError as exc:
        return _render_mfa_setup(form, translate(exc.args[0]), 422)
    mark_confirmed()
    return render(
        "auth/recovery_codes.html",
        codes=codes,
        just_enrolled=True,
        continue_to=_continue_after_setup(),
    )


def _continue_after_setup() -> str:
    if pending_setup(g.staff):
        return url_for(pending_setup(g.staff))
    return safe_next(session.pop("after_setup", "")) or url_for("dashboard.show_dashboard")


@bp.post("/account/recovery-codes")
@reauth_required
def submit_new_recovery_codes():
    try:
        codes = regenerate_recovery_codes(get_session(), g.staff)
    except UserError as exc:
        flash(translate(exc.args[0]), "error")
        return redirect(url_for("auth.show_account"), code=303)
    return render(
        "auth/recovery_codes.html",
        codes=codes,
        just_enrolled=False,
        continue_to=url_for("auth.show_account"),
    )


@bp.post("/account/logout-everywhere")
@login_required
def submit_logout_everywhere():
    log_out_everywhere(get_session(), g.staff)
    end_session()
    flash(
        _("You are logged out on every device, this one included. Log in again to go on."), "info"
    )
    return redirect(url_for("auth.show_login"), code=303)
