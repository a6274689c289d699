"""`flask --app payapp ...` commands: links, periodic jobs, checks, the demo, and staff accounts."""

from __future__ import annotations

import click
from flask import current_app

from . import alerts, audit, deployment, integrity, links, notify, payments, refunds, site_surface
from .accounts import (
    ROLES,
    UserError,
    create_user,
    find_user,
    reset_mfa,
    set_refund_permission,
    unlock_user,
)
from .clinic import Clinic
from .db import get_session, upgrade_schema
from .gateways import GatewayError, GatewayUnknown
from .gateways.square_troubleshooting import gateway_hint
from .models import StaffUser
from .states import AuditAction

DEMO_EMAIL = "admin@example.com"
DEMO_FRONT_DESK = "frontdesk@example.com"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - demo mode only; production refuses it


@click.command("create-link")
@click.option("--amount", required=True, help="Amount in dollars, e.g. 125.00")
@click.option("--name", required=True, help="Patient name")
@click.option("--email", default="", help="Patient email (needed with --send, or --phone)")
@click.option("--phone", default="", help="Patient mobile number (needed with --send, or --email)")
@click.option("--reference", default="", help="Statement or invoice number (max 40)")
@click.option("--description", default="", help="Staff-only note, never sent (no clinical details)")
@click.option("--expires-in", default="", help="Days the link stays valid, e.g. 14d (1-90)")
@click.option("--send/--no-send", default=False, help="Also email/text the link to the patient")
def create_link_command(amount, name, email, phone, reference, description, expires_in, send):
    """Create a payment link; prints the patient URL as the last line."""
    cfg = current_app.config
    draft = links.LinkDraft(
        patient_name=name,
        email=email,
        phone=phone,
        amount=amount,
        reference=reference,
        description=description,
        expires_in_days=expires_in,
        send_now=send,
    )
    try:
        link = links.create_link(get_session(), draft, links.LinkRules.from_config(cfg))
    except links.LinkInputError as exc:
        raise click.ClickException("; ".join(exc.errors.values())) from None
    url = links.link_url(cfg["PUBLIC_BASE_URL"], link, cfg["SECRET_KEY"])
    if send:
        for m in notify.send_link(
            get_session(),
            current_app.jinja_env,
            notify.Transports.from_config(cfg),
            link,
            url,
            Clinic.from_config(cfg),
        ):
            click.echo(f"{m.channel} to {m.recipient}: {m.status} {m.error or ''}".rstrip())
    click.echo(
        f"Link {link.id} for {link.patient_name}, expires {link.expires_at:%Y-%m-%d %H:%M} UTC"
    )
    click.echo(url)


@click.command("run-jobs")
def run_jobs_command():
    """One pass of periodic work: settle unknown payments and refunds, expire links."""
    session = get_session()
    gateway = current_app.extensions["payapp.gateway"]
    settled = payments.reconcile_unknown_payments(
        session, gateway, max_declines=current_app.config["MAX_DECLINES"]
    )
    click.echo(
        "Unknown payments: {paid} paid, {reopened} reopened (no charge), {declined} declined, "
        "{still_unknown} still waiting for the payment processor.".format(**settled)
    )
    click.echo(f"Unknown refunds settled: {refunds.reconcile_unknown_refunds(session, gateway)}.")
    click.echo(f"Receipts and refund notices: {notify.send_due_notices_for(current_app, session)}.")
    click.echo(f"Expired {links.expire_links(session)} link(s).")
    outcome, changes = integrity.check_integrity(session, site_surface.collect(current_app))
    click.echo(f"Integrity: {outcome}." + "".join(f"\n  ALERT: {c}" for c in changes))
    alerts.check_decline_spike(session, current_app.config)


@click.command("check-integrity")
@click.option("--accept", is_flag=True, help="Record the current headers and scripts as approved.")
def check_integrity_command(accept):
    """Compare security headers and the pay page's scripts with the approved baseline."""
    outcome, changes = integrity.check_integrity(
        get_session(), site_surface.collect(current_app), accept=accept
    )
    if outcome == "recorded":
        click.echo("Recorded the current security headers and pay-page scripts as the baseline.")
    elif outcome == "unchanged":
        click.echo("No change since the approved baseline.")
    else:
        for change in changes:
            click.echo(f"ALERT: {change}")
        raise click.ClickException(
            f"{len(changes)} unapproved change(s); admins have been alerted. If the change is "
            "intended, review it and run `flask --app payapp check-integrity --accept`."
        )


@click.command("check-deployment")
def check_deployment_command():
    """Check this installation: secret, HTTPS, Square keys, webhooks, email TLS, backups,
    security review. Exits non-zero when something needs attention."""
    checks = deployment.run_checks(current_app.config, get_session())
    for check in checks:
        click.echo(f"{'OK  ' if check.ok else 'TODO'}  {check.name}: {check.detail}")
    if not all(c.ok for c in checks):
        raise click.ClickException("Some checks need attention (TODO lines above).")


@click.command("record-security-review")
@click.option("--by", required=True, help="Who did the review (name or email).")
def record_security_review_command(by):
    """Record that the team reviewed docs/security/README.md today (due every 90 days)."""
    deployment.record_review(get_session(), by)
    audit.record(get_session(), AuditAction.SECURITY_REVIEW, detail=f"by {by}"[:500])
    get_session().commit()
    click.echo("Recorded. The next review is due in 90 days.")


@click.command("script-hashes")
def script_hashes_command():
    """Print the SHA-384 of every script under static/js (to update static/js/inventory.json)."""
    from pathlib import Path

    for path in sorted(Path(current_app.static_folder, "js").glob("*.js")):
        click.echo(f"js/{path.name} {integrity.sri_hash(path.read_bytes())}")


@click.command("check-square")
def check_square_command():
    """Check the Square credentials and location, and print what Square says about them."""
    cfg = current_app.config
    if cfg["DEMO_MODE"]:
        raise click.ClickException(
            "Demo mode: set PAYAPP_SQUARE_ACCESS_TOKEN, PAYAPP_SQUARE_APPLICATION_ID and "
            "PAYAPP_SQUARE_LOCATION_ID to use Square."
        )
    gateway = current_app.extensions["payapp.gateway"]
    try:
        location = gateway.check_location()
    except GatewayUnknown as exc:
        raise click.ClickException(f"Could not reach Square ({exc}). Check the network.") from None
    except GatewayError as exc:
        detail = f"{exc.category}/{exc.code}"
        raise click.ClickException(f"Square refused: {detail}. {gateway_hint(detail)}") from None
    click.echo(f"Square {cfg['SQUARE_ENVIRONMENT']}: credentials work.")
    click.echo(
        f"Location {location.id}: {location.name} ({location.status}), "
        f"currency {location.currency}."
    )
    problems = []
    if location.status != "ACTIVE":
        problems.append("the location is not active")
    if not location.can_take_cards:
        problems.append("the location cannot process cards (CREDIT_CARD_PROCESSING missing)")
    if location.currency and location.currency != cfg["CURRENCY"]:
        problems.append(
            f"the location's currency is {location.currency}, payapp's is {cfg['CURRENCY']}"
        )
    if not cfg.get("SQUARE_WEBHOOK_SIGNATURE_KEY"):
        click.echo("Webhooks: not configured (refunds made in Square's dashboard won't show up).")
    else:
        click.echo(f"Webhooks: expected at {cfg['SQUARE_WEBHOOK_URL']}")
    if problems:
        raise click.ClickException("; ".join(problems).capitalize() + ".")
    click.echo("Ready to take card payments.")


@click.command("demo-setup")
def demo_setup_command():
    """Prepare demo mode: migrate the database, make the demo accounts, record the integrity
    baseline (the first time)."""
    cfg = current_app.config
    if cfg["PRODUCTION"]:
        raise click.ClickException("demo-setup is for development mode only.")
    upgrade_schema(current_app.extensions["payapp.engine"])
    session = get_session()
    for email, role in ((DEMO_EMAIL, "admin"), (DEMO_FRONT_DESK, "staff")):
        if session.query(StaffUser).filter_by(email=email).first() is None:
            try:
                create_user(session, email, DEMO_PASSWORD, role)
            except UserError as exc:
                raise click.ClickException(str(exc)) from None
    if not integrity.has_baseline(session):
        # The Security page compares with this; a fresh demo should not say "No baseline yet".
        integrity.check_integrity(session, site_surface.collect(current_app))
    mode = "demo card gateway (no Square keys)" if cfg["DEMO_MODE"] else "Square"
    click.echo("")
    mail = "through SMTP" if cfg["SMTP_URL"] else f"to {cfg['OUTBOX_DIR']}"
    click.echo(f"  payapp is ready: {mode}; mail goes {mail}")
    click.echo(f"  Log in at {cfg['PUBLIC_BASE_URL']}/login (password for both: {DEMO_PASSWORD})")
    click.echo(f"    Front desk: {DEMO_FRONT_DESK}  (creates and sends payment links)")
    click.echo(f"    Admin:      {DEMO_EMAIL}  (also refunds and users; sets up two-step")
    click.echo("                verification with an authenticator app at first login)")
    click.echo("")


# --- Staff accounts (for when no admin can log in) ----------------------------------------------


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
    for command in (
        create_link_command,
        run_jobs_command,
        check_square_command,
        check_integrity_command,
        check_deployment_command,
        record_security_review_command,
        script_hashes_command,
        demo_setup_command,
        create_user_command,
        allow_refunds_command,
        unlock_user_command,
        reset_mfa_command,
    ):
        app.cli.add_command(command)
