"""`flask --app payapp ...` commands: links, periodic jobs, checks, the demo, and staff accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from flask import current_app

from . import (
    alerts,
    audit,
    deployment,
    integrity,
    links,
    metrics,
    notify,
    payments,
    refunds,
    reminders,
    site_surface,
    texting,
)
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
from .states import AuditAction, LinkStatus, MessageStatus, PaymentStatus, RefundStatus

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
@click.option("--language", default="", help="en or es (default: DEFAULT_LANGUAGE)")
@click.option("--zip", "postal_code", default="", help="Patient ZIP code, for /pay (optional)")
@click.option(
    "--min-payment",
    default="",
    help="Allow paying part now, at least this many dollars (e.g. 50.00; default: whole amount)",
)
def create_link_command(
    amount,
    name,
    email,
    phone,
    reference,
    description,
    expires_in,
    send,
    language,
    postal_code,
    min_payment,
):
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
        language=language,
        postal_code=postal_code,
        min_payment=min_payment,
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
    retried = notify.retry_failed_notices(
        session,
        current_app.jinja_env,
        notify.Transports.from_config(current_app.config),
        Clinic.from_config(current_app.config),
    )
    click.echo(
        "Receipts and refund notices tried again: {sent} sent, {failed} failed.".format(**retried)
    )
    click.echo(f"Expired {links.expire_links(session)} link(s).")
    outcome, changes = integrity.check_integrity(session, site_surface.collect(current_app))
    click.echo(f"Integrity: {outcome}." + "".join(f"\n  ALERT: {c}" for c in changes))
    for kind, change in alerts.check_surges(session, current_app.config):
        click.echo(f"Failure surge of {kind.label}: {change}; admins emailed.")
    texts = texting.send_queued_texts(
        session,
        current_app.jinja_env,
        notify.Transports.from_config(current_app.config),
        Clinic.from_config(current_app.config),
        lambda link: links.link_url(
            current_app.config["PUBLIC_BASE_URL"], link, current_app.config["SECRET_KEY"]
        ),
    )
    click.echo(f"Sent {texts} queued text message(s).")
    click.echo(send_reminders(session))
    days = metrics.refresh(session, current_app.config["CLINIC_TIMEZONE"])
    click.echo(f"Dashboard: {days} day(s) recomputed.")


def send_reminders(session) -> str:
    """run-jobs' reminder step: claim and send what is due; one line saying what happened."""
    cfg = current_app.config
    try:
        schedule = reminders.Schedule.from_config(cfg)
    except (reminders.ReminderError, ValueError) as exc:
        raise click.ClickException(f"Reminders not sent: {exc}") from None
    counts = reminders.send_due_reminders(
        session,
        current_app.jinja_env,
        notify.Transports.from_config(cfg),
        schedule,
        Clinic.from_config(cfg),
        lambda link: links.link_url(cfg["PUBLIC_BASE_URL"], link, cfg["SECRET_KEY"]),
        opt_out_url_for=lambda link: reminders.opt_out_url(
            cfg["PUBLIC_BASE_URL"], link, cfg["SECRET_KEY"]
        ),
    )
    if counts["closed"]:
        return "Reminders: none now, the clinic is closed."
    return "Reminders: {sent} sent, {failed} could not be delivered.".format(**counts)


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
    """Print the SHA-384 of every script under static/js and of every bundle the inventory
    lists, joined from those files as served (to update static/js/inventory.json)."""
    from pathlib import Path

    folder = current_app.static_folder
    for path in sorted(Path(folder, "js").glob("*.js")):
        click.echo(f"js/{path.name} {integrity.sri_hash(path.read_bytes())}")
    inventory = current_app.extensions["payapp.inventory"]
    for file, entry in inventory.bundles.items():
        data = integrity.join_parts([Path(folder, p).read_bytes() for p in entry["parts"]])
        click.echo(f"{file} {integrity.sri_hash(data)} (bundle: {' + '.join(entry['parts'])})")


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


# --- Demo data -------------------------------------------------------------------------------

DEMO_DECLINES = ("GENERIC_DECLINE", "INSUFFICIENT_FUNDS", "CVV_FAILURE", "CARD_EXPIRED")
DEMO_PROBLEMS = ("amount_wrong", "card_declined", "unexpected_message", "other")
SEED_BATCH = 5000
# Surnames weighted roughly as in the US census (Smith ~1 % of people, the tail much rarer), so
# a search for a common surname finds thousands of links at scale and a full name a handful.
DEMO_SURNAMES = (
    ("Smith", 100),
    ("Johnson", 80),
    ("Williams", 70),
    ("Brown", 62),
    ("Jones", 62),
    ("Garcia", 55),
    ("Miller", 52),
    ("Davis", 50),
    ("Rodriguez", 45),
    ("Martinez", 44),
    ("Hernandez", 42),
    ("Lopez", 38),
    ("Gonzalez", 37),
    ("Wilson", 36),
    ("Anderson", 35),
    ("Thomas", 34),
    ("Taylor", 34),
    ("Moore", 32),
    ("Jackson", 31),
    ("Martin", 31),
    ("Lee", 30),
    ("Perez", 28),
    ("Thompson", 28),
    ("White", 27),
    ("Harris", 26),
    ("Sanchez", 26),
    ("Clark", 24),
    ("Ramirez", 24),
    ("Lewis", 23),
    ("Robinson", 23),
    ("Walker", 22),
    ("Young", 21),
    ("Allen", 21),
    ("King", 20),
    ("Wright", 20),
    ("Scott", 19),
    ("Torres", 19),
    ("Nguyen", 19),
    ("Hill", 18),
    ("Flores", 18),
    ("Green", 18),
    ("Adams", 17),
    ("Nelson", 17),
    ("Baker", 17),
    ("Hall", 16),
    ("Rivera", 16),
    ("Campbell", 15),
    ("Mitchell", 15),
    ("Carter", 15),
    ("Roberts", 15),
    ("O'Brien", 6),
    ("Kowalski", 4),
    ("Okafor", 3),
    ("Van der Berg", 2),
    ("Smith-Jones", 2),
    ("Müller", 2),
    ("Zhang", 8),
    ("Patel", 9),
    ("Kim", 9),
    ("Cohen", 5),
)
DEMO_FIRST_NAMES = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Maria",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Donald",
    "Ashley",
    "Steven",
    "Emily",
    "Paul",
    "Donna",
    "Andrew",
    "Michelle",
    "José",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Wei",
    "Priya",
    "Aisha",
)
_SURNAMES = [name for name, _ in DEMO_SURNAMES]
_SURNAME_WEIGHTS = list(__import__("itertools").accumulate(w for _, w in DEMO_SURNAMES))


def _demo_rows(rng, link_id: int, now: datetime, days: int):
    """One link's rows (link, payments, refunds, messages) in a believable state."""
    created = now - timedelta(seconds=rng.randrange(days * 86400))
    surname = rng.choices(_SURNAMES, cum_weights=_SURNAME_WEIGHTS)[0]
    cents = rng.choice((2500, 4000, 7550, 12000, 18500, 25000, 60000)) + rng.randrange(100)
    link = {
        "id": link_id,
        "public_id": f"demo{link_id:012d}",
        "patient_name": f"{rng.choice(DEMO_FIRST_NAMES)} {surname}",
        "email": "patient@example.com",
        "phone": None,
        "amount_cents": cents,
        "currency": "USD",
        # Statement numbers as billing systems print them: a prefix and 7 digits.
        "reference": f"ST-{rng.randrange(10**7):07d}",
        "description": "",
        "status": LinkStatus.OPEN,
        "expires_at": created + timedelta(days=14),
        "created_by_id": None,
        "created_at": created,
        "sent_at": None,
        "first_sent_at": None,
        "first_viewed_at": None,
        "paid_at": None,
        "decline_count": 0,
        "claim_key": None,
        "claimed_at": None,
        "reissued_from_id": None,
    }
    payments, refunds, messages = [], [], []
    roll = rng.random()
    sent = roll < 0.95
    if sent:
        link["sent_at"] = link["first_sent_at"] = created + timedelta(seconds=5)
        messages.append((created + timedelta(seconds=5), MessageStatus.SENT))
        if rng.random() < 0.03:
            messages.append((created + timedelta(seconds=2), MessageStatus.FAILED))
    wait = timedelta(minutes=rng.choice((3, 20, 90, 300, 1440, 4320)) + rng.randrange(60))
    when = created + wait

    def attempt(status, at, code=None, completed=None):
        payments.append((status, at, code, completed))

    if roll < 0.55 and when < now:
        link["first_viewed_at"] = when - timedelta(minutes=2)
        if rng.random() < 0.12:
            attempt(PaymentStatus.FAILED, when - timedelta(minutes=1), rng.choice(DEMO_DECLINES))
            link["decline_count"] = 1
        attempt(PaymentStatus.COMPLETED, when, completed=when)
        link.update(status=LinkStatus.PAID, paid_at=when)
        r = rng.random()
        if r < 0.08:
            part = cents if r < 0.04 else cents // 3
            link["status"] = LinkStatus.REFUNDED if part == cents else LinkStatus.PARTIALLY_REFUNDED
            later = min(when + timedelta(days=rng.randrange(1, 10)), now)
            refunds.append((part, later, RefundStatus.COMPLETED if r > 0.005 else "pending"))
    elif roll < 0.70:
        if rng.random() < 0.5 and when < now:
            link["first_viewed_at"] = when
    elif roll < 0.80:
        link["expires_at"] = created + timedelta(days=rng.randrange(1, 8))
        if link["expires_at"] < now:
            link["status"] = LinkStatus.EXPIRED
    elif roll < 0.85:
        link["status"] = LinkStatus.CANCELLED
    elif roll < 0.88 and when < now:
        link.update(first_viewed_at=when, status=LinkStatus.LOCKED, decline_count=3)
        for i in range(3):
            attempt(PaymentStatus.FAILED, when + timedelta(minutes=i), rng.choice(DEMO_DECLINES))
    elif roll < 0.885 and when < now:
        link["first_viewed_at"] = when
        attempt(PaymentStatus.UNKNOWN, when)
    if link["status"] == LinkStatus.OPEN and link["expires_at"] < now - timedelta(hours=1):
        link["status"] = LinkStatus.EXPIRED  # as run-jobs stores it
    return link, payments, refunds, messages


_DEMO_PAYMENT_EVENTS = {
    PaymentStatus.COMPLETED: AuditAction.PAYMENT_COMPLETED,
    PaymentStatus.FAILED: AuditAction.PAYMENT_DECLINED,
}


def _demo_event(link_id: int, action: str, at: datetime, actor: str = "staff") -> dict:
    return {
        "actor": actor,
        "staff_id": None,
        "action": action,
        "link_id": link_id,
        "detail": "",
        "created_at": at,
    }


def seed_demo(session, n: int, now: datetime, *, days: int = 90, seed: int = 9, progress=None):
    """Insert ``n`` demo links with their payments, refunds, messages and problem reports,
    spread over the ``days`` before ``now``, in batches of core executemany inserts."""
    from random import Random

    from sqlalchemy import func, insert, inspect, select

    from .models import AuditEvent, Message, Payment, PaymentLink, ProblemReport, Refund

    # The migration tests seed databases of older revisions, before payment_link.paid_cents.
    has_paid_cents = any(
        column["name"] == "paid_cents"
        for column in inspect(session.connection()).get_columns("payment_link")
    )
    rng = Random(seed)  # noqa: S311 - demo data, not secrets
    next_link = (session.scalar(select(func.max(PaymentLink.id))) or 0) + 1
    next_payment = (session.scalar(select(func.max(Payment.id))) or 0) + 1
    done = 0
    while done < n:
        size = min(SEED_BATCH, n - done)
        links, payments, refunds, messages, problems, events = [], [], [], [], [], []
        for _ in range(size):
            link, pays, refs, msgs = _demo_rows(rng, next_link, now, days)
            links.append(link)
            # The link page's timeline: what staff and patients did, as audit.record writes it.
            events.append(_demo_event(next_link, AuditAction.LINK_CREATED, link["created_at"]))
            for status, at, _code, _completed in pays:
                action = _DEMO_PAYMENT_EVENTS.get(status)
                if action:
                    events.append(_demo_event(next_link, action, at, actor="patient"))
            for status, at, code, completed in pays:
                payments.append(
                    {
                        "id": next_payment,
                        "link_id": next_link,
                        "idempotency_key": f"demo{next_payment:020d}",
                        "gateway": "demo",
                        "gateway_payment_id": None,
                        "status": status,
                        "amount_cents": link["amount_cents"],
                        "currency": "USD",
                        "source_id": "demo",
                        "postal_code": "",
                        "card_brand": "VISA",
                        "card_last4": "1111",
                        "avs_status": None,
                        "cvv_status": None,
                        "error_code": code,
                        "receipt_number": None,
                        "receipt_url": None,
                        "refunded_cents": 0,
                        "gateway_updated_at": None,
                        "created_at": at,
                        "completed_at": completed,
                    }
                )
                if status == PaymentStatus.COMPLETED:
                    for cents, at_r, r_status in refs:
                        payments[-1]["refunded_cents"] = cents
                        refunds.append(
                            {
                                "payment_id": next_payment,
                                "idempotency_key": f"demor{next_payment:019d}",
                                "gateway_refund_id": None,
                                "amount_cents": cents,
                                "reason": "Demo",
                                "status": r_status,
                                "created_by_id": None,
                                "gateway_updated_at": None,
                                "created_at": at_r,
                            }
                        )
                next_payment += 1
            for at, status in msgs:
                sent = status == MessageStatus.SENT
                action = AuditAction.EMAIL_SENT if sent else AuditAction.EMAIL_FAILED
                events.append(_demo_event(next_link, action, at, actor="system"))
                messages.append(
                    {
                        "link_id": next_link,
                        "channel": "email",
                        "recipient": "patient@example.com",
                        "status": status,
                        "attempts": 1,
                        "error": None if status == MessageStatus.SENT else "Demo",
                        "created_at": at,
                        "sent_at": at if status == MessageStatus.SENT else None,
                    }
                )
            if rng.random() < 0.005:
                problems.append(
                    {
                        "link_id": next_link,
                        "category": rng.choice(DEMO_PROBLEMS),
                        "text": "",
                        "created_at": link["created_at"] + timedelta(hours=1),
                        "resolved_at": None if rng.random() < 0.4 else now,
                        "resolved_by_id": None,
                    }
                )
            next_link += 1
        if has_paid_cents:
            paid: dict[int, int] = {}
            for row in payments:
                if row["status"] == PaymentStatus.COMPLETED:
                    paid[row["link_id"]] = paid.get(row["link_id"], 0) + row["amount_cents"]
            for row in links:
                row["paid_cents"] = paid.get(row["id"], 0)
        for model, rows in (
            (PaymentLink, links),
            (Payment, payments),
            (Refund, refunds),
            (Message, messages),
            (ProblemReport, problems),
            (AuditEvent, events),
        ):
            if rows:
                session.execute(insert(model.__table__), rows)
        session.commit()
        done += size
        if progress is not None:
            progress(size)
    return done


@click.command("seed-demo")
@click.option(
    "--links",
    "count",
    type=click.IntRange(1, 5_000_000),
    default=2000,
    show_default=True,
    help="How many payment links to make.",
)
@click.option("--days", type=click.IntRange(1, 365), default=90, show_default=True)
def seed_demo_command(count, days):
    """Fill a demo database with a believable history for the dashboard (demo mode only)."""
    if current_app.config["PRODUCTION"]:
        raise click.ClickException("seed-demo is for development mode only.")
    now = datetime.now(UTC)
    with click.progressbar(length=count, label="Making demo links") as bar:
        seed_demo(get_session(), count, now, days=days, progress=bar.update)
    # The triggers marked every day seeded: sum them up now, not on the first dashboard view.
    metrics.refresh(get_session(), current_app.config["CLINIC_TIMEZONE"])
    click.echo(f"Made {count} demo links over the last {days} days.")


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
        seed_demo_command,
    ):
        app.cli.add_command(command)
