"""`flask --app payapp ...` commands that are not owned by another module."""

from __future__ import annotations

import click
from flask import current_app

from . import links, notify
from .auth import UserError, create_user
from .db import get_session, upgrade_schema
from .models import StaffUser

DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - demo mode only; production refuses it


@click.command("create-link")
@click.option("--amount", required=True, help="Amount in dollars, e.g. 125.00")
@click.option("--name", required=True, help="Patient name")
@click.option("--email", default="", help="Patient email")
@click.option("--phone", default="", help="Patient mobile number")
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
            notify.Clinic.from_config(cfg),
        ):
            click.echo(f"{m.channel} to {m.recipient}: {m.status} {m.error or ''}".rstrip())
    click.echo(
        f"Link {link.id} for {link.patient_name}, expires {link.expires_at:%Y-%m-%d %H:%M} UTC"
    )
    click.echo(url)


@click.command("run-jobs")
def run_jobs_command():
    """One pass of periodic work: expire links past their date."""
    expired = links.expire_links(get_session())
    click.echo(f"Expired {expired} link(s).")


@click.command("demo-setup")
def demo_setup_command():
    """Prepare demo mode: migrate the database and make the demo admin account."""
    cfg = current_app.config
    if cfg["PRODUCTION"]:
        raise click.ClickException("demo-setup is for development mode only.")
    upgrade_schema(current_app.extensions["payapp.engine"])
    session = get_session()
    if session.query(StaffUser).filter_by(email=DEMO_EMAIL).first() is None:
        try:
            create_user(session, DEMO_EMAIL, DEMO_PASSWORD, "admin")
        except UserError as exc:
            raise click.ClickException(str(exc)) from None
    mode = "demo card gateway (no Square keys)" if cfg["DEMO_MODE"] else "Square"
    click.echo("")
    mail = "through SMTP" if cfg["SMTP_URL"] else f"to {cfg['OUTBOX_DIR']}"
    click.echo(f"  payapp is ready: {mode}; mail goes {mail}")
    click.echo(f"  Log in at {cfg['PUBLIC_BASE_URL']}/login")
    click.echo(f"    Email:    {DEMO_EMAIL}")
    click.echo(f"    Password: {DEMO_PASSWORD}")
    click.echo("")


def init_app(app) -> None:
    for command in (create_link_command, run_jobs_command, demo_setup_command):
        app.cli.add_command(command)
