"""Sending payment links, receipts and refund notices: email (SMTP, or .eml files in an outbox
folder) and SMS (Twilio, or .txt files in the outbox folder). Texts go only to numbers that have
not replied STOP, and only in the clinic's texting hours (outside them the message waits, queued,
for run-jobs).

Every message is a row with its status and error. Nothing clinical goes out: messages carry the
clinic, amount, reference, expiry and link, never the link's description.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import jinja2
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import audit, payments, refunds, sms
from .clinic import Clinic
from .models import (
    AuditEvent,
    Message,
    Payment,
    PaymentLink,
    ProblemReport,
    Refund,
    SmsOptOut,
    utcnow,
)
from .money import format_cents
from .payments import card_brand_name
from .states import AuditAction, Language, MessageStatus, ProblemCategory, Wallet

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A message could not be handed to its transport; the text is safe to show staff."""


# --- transports ---------------------------------------------------------------------------------


class OutboxMail:
    """Writes each email as an .eml file: the default, and what demo mode uses."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def send(self, message: EmailMessage, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.eml").write_bytes(bytes(message))


class SmtpMail:
    """smtp+starttls://user:pass@host:587, smtps://user:pass@host:465, or smtp://host:25 (plain,
    for a relay on the same machine only). ``?cafile=/path.pem`` trusts a private CA."""

    def __init__(self, url: str, timeout: float = 15):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls", "smtps"):
            raise ValueError("SMTP_URL must start with smtp+starttls://, smtps:// or smtp://")
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or {"smtps": 465, "smtp+starttls": 587}.get(parts.scheme, 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        cafile = parse_qs(parts.query).get("cafile", [None])[0]
        self.context = ssl.create_default_context(cafile=cafile)
        self.timeout = timeout

    def send(self, message: EmailMessage, name: str) -> None:
        try:
            if self.scheme == "smtps":
                client = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=self.context
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.scheme == "smtp+starttls":
                    client.starttls(context=self.context)
                if self.username:
                    client.login(self.username, self.password or "")
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP delivery to {self.host}:{self.port} failed: {exc}") from exc


class OutboxSms:
    """Writes each text message as a .txt file: the default when Twilio is not configured."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def send(self, to: str, body: str, name: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"{name}.txt").write_text(f"To: {to}\n\n{body}\n", encoding="utf-8")


@dataclass
class Transports:
    mail: OutboxMail | SmtpMail
    sms: OutboxSms | sms.TwilioSms
    mail_from: str
    text_hours: str = ""  # "" or "08:00-18:00", clinic-local (config.parse_text_hours)
    text_days: str = ""

    @classmethod
    def from_config(cls, cfg) -> Transports:
        outbox = cfg["OUTBOX_DIR"]
        mail = (
            SmtpMail(cfg["SMTP_URL"], cfg["SMTP_TIMEOUT"])
            if cfg["SMTP_URL"]
            else OutboxMail(outbox)
        )
        texts = sms.TwilioSms.from_config(cfg) if cfg.get("TWILIO_ENABLED") else OutboxSms(outbox)
        return cls(
            mail=mail,
            sms=texts,
            mail_from=str(cfg["MAIL_FROM"]),
            text_hours=cfg.get("TEXT_HOURS") or "",
            text_days=cfg.get("TEXT_DAYS") or "",
        )


# --- composing ----------------------------------------------------------------------------------


def link_language(link: PaymentLink) -> Language:
    """The language the patient gets this link's messages in (issue 11)."""
    return Language.lookup(link.language) or Language.EN


def in_patient_language(link: PaymentLink):
    """Compose a patient's message in the link's language: the templates' ``_()`` and this
    module's ``_()`` follow Flask-Babel's forced locale. Messages go out after a commit, from
    run-jobs or a webhook, never under the page's own locale. Staff notices stay English."""
    return force_locale(link_language(link).value)


def message_context(link: PaymentLink, url: str, clinic: Clinic) -> dict:
    """Everything a link message may say. The description is deliberately absent."""
    return {
        "clinic": clinic,
        "lang": link_language(link).value,
        "first_name": link.first_name,
        # What is left to pay: the whole amount, or the balance of a link paid in part.
        "amount": format_cents(link.balance_cents or link.amount_cents, link.currency),
        "reference": link.reference,
        "expires_on": clinic.patient_date(link.expires_at, link_language(link).value),
        "url": url,
        # The patient can instead type the clinic's own address (link_url() is <base>/pay/<token>).
        "lookup_url": url.rpartition("/")[0],
    }


def compose_html_email(
    templates: jinja2.Environment, name: str, subject: str, ctx: dict, to: str, mail_from: str
) -> EmailMessage:
    """An email from the ``emails/<name>.txt`` and ``.html`` twins, with the usual headers."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = mail_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    message.set_content(templates.get_template(f"emails/{name}.txt").render(ctx))
    message.add_alternative(
        templates.get_template(f"emails/{name}.html").render(ctx), subtype="html"
    )
    return message


def _link_subject(name: str, link: PaymentLink, clinic: Clinic) -> str:
    """'<clinic>: payment request for statement <ref>', in the current (the link's) language."""
    values = {"clinic": clinic.name, "reference": link.reference}
    if name == "reminder":
        if link.reference:
            return _(
                "%(clinic)s: reminder of your payment request for statement %(reference)s",
                **values,
            )
        return _("%(clinic)s: reminder of your payment request", **values)
    if link.reference:
        return _("%(clinic)s: payment request for statement %(reference)s", **values)
    return _("%(clinic)s: payment request", **values)


def _link_email(
    templates,
    name: str,
    link,
    url: str,
    clinic: Clinic,
    mail_from: str,
    **extra,
):
    """A link's email (the request or a reminder), in the link's language."""
    with in_patient_language(link):
        subject = _link_subject(name, link, clinic)
        ctx = {**message_context(link, url, clinic), **extra}
        return compose_html_email(templates, name, subject, ctx, link.email, mail_from)


def compose_email(
    templates: jinja2.Environment, link: PaymentLink, url: str, clinic: Clinic, mail_from: str
) -> EmailMessage:
    return _link_email(templates, "payment_link", link, url, clinic, mail_from)


def compose_sms(templates: jinja2.Environment, link: PaymentLink, url: str, clinic: Clinic) -> str:
    with in_patient_language(link):
        return templates.get_template("sms/payment_link.txt").render(
            message_context(link, url, clinic)
        )


# --- sending ------------------------------------------------------------------------------------


def send_staff_email(transports: Transports, to: str, subject: str, body: str, name: str) -> None:
    """A plain-text notice to one staff member (surge alerts); raises DeliveryError or OSError."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = transports.mail_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=transports.mail_from.rpartition("@")[2] or None)
    message.set_content(body)
    transports.mail.send(message, name)


def delivery_error_text(channel: str, exc: Exception) -> str:
    """Why a message did not go out, in words staff can act on."""
    if isinstance(exc, DeliveryError | OSError | sms.SmsError):
        return str(exc)
    what = "email" if channel == "email" else "text message"
    return (
        f"The {what} could not be made from this link's details ({type(exc).__name__}: {exc}). "
        "Check the name and reference, or make a new link."
    )


def send_link(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    link: PaymentLink,
    url: str,
    clinic: Clinic,
    *,
    staff_id: int | None = None,
    now: datetime | None = None,
) -> list[Message]:
    """Send the link by email and/or SMS (whichever the link has); one Message row each."""
    now = now or utcnow()
    messages = []
    for channel, recipient in (("email", link.email), ("sms", link.phone)):
        if not recipient:
            continue
        message = Message(link_id=link.id, channel=channel, recipient=recipient, created_at=now)
        session.add(message)
        session.flush()
        name = f"{now:%Y%m%dT%H%M%S}-{message.id}-{channel}"
        if channel == "sms":
            deliver_text(
                session, templates, transports, message, link, url, clinic, staff_id, now=now
            )
            messages.append(message)
            continue
        message.attempts += 1
        try:
            transports.mail.send(
                compose_email(templates, link, url, clinic, transports.mail_from), name
            )
        except Exception as exc:  # noqa: BLE001 - any failure is the message's, never the request's
            # A header the email library refuses, an SMTP error, an outbox it cannot write: the
            # link exists either way, so record why on the message (staff see it, Resend retries).
            message.status = MessageStatus.FAILED
            message.error = delivery_error_text(channel, exc)[:1000]
            audit.record(
                session,
                AuditAction.message(channel, MessageStatus.FAILED),
                staff_id=staff_id,
                link_id=link.id,
                actor="staff" if staff_id else "system",
                detail=message.error,
                when=now,
            )
        else:
            message.status = MessageStatus.SENT
            message.sent_at = now
            audit.record(
                session,
                AuditAction.message(channel, MessageStatus.SENT),
                staff_id=staff_id,
                link_id=link.id,
                actor="staff" if staff_id else "system",
                when=now,
            )
        messages.append(message)
    if any(m.status == MessageStatus.SENT for m in messages):
        session.execute(
            update(PaymentLink)
            .where(PaymentLink.id == link.id)
            .values(sent_at=now, first_sent_at=func.coalesce(PaymentLink.first_sent_at, now))
        )
    session.commit()
    session.refresh(link)
    return messages


# --- reminders (reminders.py decides when) ------------------------------------------------------


def compose_reminder_email(
    templates: jinja2.Environment,
    link: PaymentLink,
    url: str,
    clinic: Clinic,
    mail_from: str,
    opt_out_url: str = "",
) -> EmailMessage:
    """A reminder email; with ``opt_out_url`` it carries the signed "stop reminders" link."""
    return _link_email(
        templates,
        "reminder",
        link,
        url,
        clinic,
        mail_from,
        opt_out_url=opt_out_url,
    )


# --- the front desk -----------------------------------------------------------------------------


def compose_problem_notice(
    templates: jinja2.Environment,
    report: ProblemReport,
    reference: str,
    staff_url: str,
    clinic: Clinic,
    mail_from: str,
    to: str,
) -> EmailMessage:
    """The front desk's email about a new problem report: the category, when, the statement
    number and the staff page. Never the patient's text or number: the text may hold anything
    (the form asks for no clinical detail, but cannot stop it), and the staff page is behind
    a login while an email is forwarded, archived and read on phones."""
    category = ProblemCategory.label_of(report.category)
    message = EmailMessage()
    message["Subject"] = f"{clinic.name}: a patient reported a payment problem ({category})"
    message["From"] = mail_from
    message["To"] = to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=mail_from.rpartition("@")[2] or None)
    message.set_content(
        templates.get_template("emails/problem_notice.txt").render(
            clinic=clinic,
            category=category,
            reported_at=clinic.local_time(report.created_at),
            reference=reference,
            url=staff_url,
        )
    )
    return message


def compose_reminder_sms(
    templates: jinja2.Environment, link: PaymentLink, url: str, clinic: Clinic
) -> str:
    with in_patient_language(link):
        return templates.get_template("sms/reminder.txt").render(message_context(link, url, clinic))


def send_reminder(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    link: PaymentLink,
    url: str,
    clinic: Clinic,
    channels: list[str],
    *,
    number: int,
    opt_out_url: str = "",
    now: datetime | None = None,
) -> list[Message]:
    """Send reminder ``number`` on ``channels`` (those the link went out on): one Message row
    (kind "reminder") each and one timeline event; failures are recorded, never raised. The
    email carries ``opt_out_url``; a text has no room for it (its STOP reply stops texts)."""
    now = now or utcnow()
    messages, problems = [], []
    for channel in channels:
        recipient = link.email if channel == "email" else link.phone
        if not recipient:
            continue
        message = Message(
            link_id=link.id, channel=channel, recipient=recipient, kind="reminder", created_at=now
        )
        session.add(message)
        session.flush()
        message.attempts += 1
        name = f"{now:%Y%m%dT%H%M%S}-{message.id}-reminder-{channel}"
        stopped = opted_out_since(session, recipient) if channel == "sms" else None
        if stopped is not None:  # replied STOP: no text of any kind goes to this number
            message.status = MessageStatus.FAILED
            when = clinic.local_time(stopped, "date")
            message.error = f"Not sent: this number replied STOP on {when}."
            problems.append(message.error)
            messages.append(message)
            continue
        try:
            if channel == "email":
                transports.mail.send(
                    compose_reminder_email(
                        templates, link, url, clinic, transports.mail_from, opt_out_url
                    ),
                    name,
                )
            else:
                transports.sms.send(
                    recipient, compose_reminder_sms(templates, link, url, clinic), name
                )
        except Exception as exc:  # noqa: BLE001 - a failed reminder is recorded, the run goes on
            message.status = MessageStatus.FAILED
            message.error = delivery_error_text(channel, exc)[:1000]
            problems.append(message.error)
        else:
            message.status = MessageStatus.SENT
            message.sent_at = now
        messages.append(message)
    sent = [m.channel for m in messages if m.status == MessageStatus.SENT]
    words = " and ".join("email" if c == "email" else "text message" for c in sent)
    audit.record(
        session,
        AuditAction.REMINDER_SENT if sent else AuditAction.REMINDER_FAILED,
        link_id=link.id,
        detail=(f"reminder {number} by {words}" if sent else "; ".join(problems))
        or "the link was sent on no channel that can be reminded",
        when=now,
    )
    session.commit()
    return messages


def send_problem_notice(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    report: ProblemReport,
    to: str,
    staff_url: str,
    clinic: Clinic,
) -> bool:
    """Email the front desk about ``report``; a failure is audited (admins see it in the audit
    trail) and returned as False, never raised: the patient's report is stored either way."""
    link = session.get(PaymentLink, report.link_id) if report.link_id else None
    name = f"{utcnow():%Y%m%dT%H%M%S}-problem-{report.id}"
    try:
        transports.mail.send(
            compose_problem_notice(
                templates,
                report,
                link.reference if link else "",
                staff_url,
                clinic,
                transports.mail_from,
                to,
            ),
            name,
        )
    except Exception as exc:  # noqa: BLE001 - the report is saved; the notice is best effort
        audit.record(
            session,
            AuditAction.PROBLEM_NOTICE_FAILED,
            link_id=report.link_id,
            detail=delivery_error_text("email", exc),
        )
        session.commit()
        return False
    return True


def send_link_request_notice(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    link: PaymentLink,
    to: str,
    staff_url: str,
    clinic: Clinic,
) -> bool:
    """Email the front desk that a patient asked for a new link: the statement number, when and
    the staff page; no name, amount or contact (an email is forwarded and read on phones). A
    failure is audited and returned as False, never raised: the task is on the dashboard."""
    body = templates.get_template("emails/link_request_notice.txt").render(
        clinic=clinic,
        requested_at=clinic.local_time(utcnow()),
        reference=link.reference,
        url=staff_url,
    )
    try:
        send_staff_email(
            transports,
            to,
            f"{clinic.name}: a patient asked for a new payment link",
            body,
            f"{utcnow():%Y%m%dT%H%M%S}-new-link-{link.id}",
        )
    except Exception as exc:  # noqa: BLE001 - the task is stored; the notice is best effort
        audit.record(
            session,
            AuditAction.NEW_LINK_NOTICE_FAILED,
            link_id=link.id,
            detail=delivery_error_text("email", exc),
        )
        session.commit()
        return False
    return True


# --- texts --------------------------------------------------------------------------------------

MAX_TEXT_ATTEMPTS = 3  # tries of a text Twilio asked us to retry (429, outage) before giving up


def opted_out_since(session: Session, phone: str) -> datetime | None:
    """When this number replied STOP, if it has not replied START since."""
    row = session.get(SmsOptOut, phone)
    return row.opted_out_at if row else None


def deliver_text(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    message: Message,
    link: PaymentLink,
    url: str,
    clinic: Clinic,
    staff_id: int | None = None,
    *,
    now: datetime,
) -> None:
    """Send one text message row now, queue it for clinic hours, or refuse it (opted out);
    the row and the audit trail say which. Never raises."""
    actor = "staff" if staff_id else "system"

    def record(status: MessageStatus, detail: str = "") -> None:
        audit.record(
            session,
            AuditAction.SMS_QUEUED
            if status == MessageStatus.QUEUED
            else AuditAction.message("sms", status),
            staff_id=staff_id,
            link_id=link.id,
            actor=actor,
            detail=detail,
            when=now,
        )

    stopped = opted_out_since(session, message.recipient)
    if stopped is not None:
        message.status = MessageStatus.FAILED
        message.error = (
            f"Not sent: this number replied STOP on {clinic.local_time(stopped, 'date')}. "
            "It gets texts again only after the patient texts START; send the link by email."
        )
        record(MessageStatus.FAILED, message.error)
        return
    if not sms.within_text_hours(now, clinic.timezone, transports.text_hours, transports.text_days):
        if message.status != MessageStatus.QUEUED or not message.error:
            message.status = MessageStatus.QUEUED
            message.error = "Waiting for clinic hours; it goes out then."
            record(MessageStatus.QUEUED)
        return
    message.attempts += 1
    name = f"{now:%Y%m%dT%H%M%S}-{message.id}-sms"
    try:
        provider_id = transports.sms.send(
            message.recipient, compose_sms(templates, link, url, clinic), name
        )
    except Exception as exc:  # noqa: BLE001 - a text's failure is the message's, never the request's
        message.error = delivery_error_text("sms", exc)[:1000]
        if isinstance(exc, sms.SmsError):
            message.error_code = exc.code or None
            if exc.opted_out:
                record_opt_out(session, message.recipient, "21610", now=now)
            if exc.retry_later and message.attempts < MAX_TEXT_ATTEMPTS:
                message.status = MessageStatus.QUEUED  # run-jobs tries again
                return
        message.status = MessageStatus.FAILED
        record(MessageStatus.FAILED, message.error)
    else:
        message.status = MessageStatus.SENT
        message.error = None
        message.sent_at = now
        message.provider_id = provider_id or None
        record(MessageStatus.SENT)


def record_opt_out(session: Session, phone: str, keyword: str, *, now: datetime) -> bool:
    """Remember that ``phone`` must not be texted; False if it already was."""
    if session.get(SmsOptOut, phone) is not None:
        return False
    session.add(SmsOptOut(phone=phone, keyword=keyword[:16], opted_out_at=now))
    session.flush()
    return True


# --- receipts and refund notices (sent after the payment's or refund's transaction) ------------


def receipt_number(payment: Payment) -> str:
    """The gateway's receipt number, or our own payment number when it gave none."""
    return payment.receipt_number or f"P{payment.id:06d}"


def _card(payment: Payment) -> str:
    """'Visa ending in 1111' (in the current language)."""
    brand = card_brand_name(payment.card_brand) if payment.card_brand else _("Card")
    return _("%(brand)s ending in %(last4)s", brand=brand, last4=payment.card_last4 or "????")


def receipt_context(payment: Payment, clinic: Clinic) -> dict:
    """Everything a receipt may say: no description, nothing clinical. Call it under the link's
    language (``in_patient_language``)."""
    link = payment.link
    card = _card(payment)
    wallet = Wallet.lookup(payment.wallet)
    return {
        "clinic": clinic,
        "lang": link_language(link).value,
        "first_name": link.first_name,
        "amount": format_cents(payment.amount_cents, payment.currency),
        "paid_on": clinic.patient_date(payment.completed_at or utcnow(), link_language(link)),
        # A wallet payment's receipt names the wallet: "Apple Pay (Visa ending in 1111)"; its
        # text, whose segment is counted, says just "Apple Pay". Refunds name the card behind it.
        "card": f"{wallet.label} ({card})" if wallet else card,
        "paid_with": wallet.label if wallet else card,
        "card_only": card,
        "receipt_number": receipt_number(payment),
        "reference": link.reference,
        # A part payment (issue 11): what was left to pay once it was in; empty when nothing.
        "balance_left": format_cents(balance, link.currency)
        if (balance := link.balance_after(payment))
        else "",
    }


def refund_context(refund: Refund, clinic: Clinic) -> dict:
    payment = refund.payment
    return {
        **receipt_context(payment, clinic),
        "refunded": format_cents(refund.amount_cents, payment.currency),
        "refunded_on": clinic.patient_date(
            refund.created_at or utcnow(), link_language(payment.link)
        ),
        "paid": format_cents(payment.amount_cents, payment.currency),
        "remaining": format_cents(payment.amount_cents - payment.refunded_cents, payment.currency),
    }


def _was_texted(session: Session, link: PaymentLink) -> bool:
    return (
        session.scalar(
            select(Message.id).where(
                Message.link_id == link.id,
                Message.kind == "link",
                Message.channel == "sms",
                Message.status == MessageStatus.SENT,
            )
        )
        is not None
    )


def _already_noticed(session: Session, link_id: int, actions, tag: str) -> bool:
    return (
        session.scalar(
            select(AuditEvent.id).where(
                AuditEvent.link_id == link_id,
                AuditEvent.action.in_(actions),
                AuditEvent.detail.startswith(f"{tag} by "),  # "refund 1" is not "refund 12"
            )
        )
        is not None
    )


# A failed receipt or refund notice is tried again by run-jobs this long after each failure:
# three more tries, then staff see it failed for good.
RETRY_DELAYS = (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))
MAX_NOTICE_TRIES = 1 + len(RETRY_DELAYS)


@dataclass(frozen=True)
class Notice:
    """A receipt or refund notice: what it says and what it is for."""

    kind: str  # receipt | refund (also the template's name)
    tag: str  # how the audit trail names it: "receipt R-12", "refund 3"
    subject: str
    ctx: dict
    actions: tuple[AuditAction, AuditAction]  # (sent, failed)
    link: PaymentLink
    payment_id: int | None = None
    refund_id: int | None = None


def receipt_notice(payment: Payment, clinic: Clinic) -> Notice:
    with in_patient_language(payment.link):
        ctx = receipt_context(payment, clinic)
        subject = _(
            "%(clinic)s: receipt for your payment of %(amount)s",
            clinic=clinic.name,
            amount=ctx["amount"],
        )
    return Notice(
        kind="receipt",
        tag=f"receipt {ctx['receipt_number']}",
        subject=subject,
        ctx=ctx,
        actions=(AuditAction.RECEIPT_SENT, AuditAction.RECEIPT_FAILED),
        link=payment.link,
        payment_id=payment.id,
    )


def refund_notice(refund: Refund, clinic: Clinic) -> Notice:
    with in_patient_language(refund.payment.link):
        ctx = refund_context(refund, clinic)
        subject = _("%(clinic)s: refund of %(amount)s", clinic=clinic.name, amount=ctx["refunded"])
    return Notice(
        kind="refund",
        tag=f"refund {refund.id}",
        subject=subject,
        ctx=ctx,
        actions=(AuditAction.REFUND_NOTICE_SENT, AuditAction.REFUND_NOTICE_FAILED),
        link=refund.payment.link,
        refund_id=refund.id,
    )


def compose_notice_sms(templates: jinja2.Environment, notice: Notice) -> str:
    """A receipt's or refund notice's text, in the link's language."""
    with in_patient_language(notice.link):
        return templates.get_template(f"sms/{notice.kind}.txt").render(notice.ctx).strip()


def _worth_retrying(channel: str, exc: Exception) -> bool:
    """A server that was down or busy may take it later; a refused address or number will not."""
    if isinstance(exc, sms.SmsError):
        return exc.retry_later and not exc.opted_out
    return isinstance(exc, DeliveryError | OSError)


def _deliver_notice(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    notice: Notice,
    message: Message,
    *,
    now: datetime,
) -> None:
    """One try of one notice's message: the row and the audit trail say how it went (a failure
    worth retrying gets ``retry_at``). Never raises."""
    sent_action, failed_action = notice.actions
    link_id = notice.link.id
    tries = f" (try {message.attempts} of {MAX_NOTICE_TRIES})" if message.attempts > 1 else ""
    name = f"{now:%Y%m%dT%H%M%S}-{message.id}-{notice.kind}-{message.channel}"
    stopped = opted_out_since(session, message.recipient) if message.channel == "sms" else None
    if stopped is not None:  # replied STOP: no text of any kind goes to this number
        message.status = MessageStatus.FAILED
        message.retry_at = None
        when = notice.ctx["clinic"].local_time(stopped, "date")
        message.error = f"Not sent: this number replied STOP on {when}."
        audit.record(
            session,
            failed_action,
            link_id=link_id,
            detail=f"{notice.tag} by sms: {message.error}",
            when=now,
        )
        return
    try:
        if message.channel == "email":
            with in_patient_language(notice.link):
                email = compose_html_email(
                    templates,
                    notice.kind,
                    notice.subject,
                    notice.ctx,
                    message.recipient,
                    transports.mail_from,
                )
            transports.mail.send(email, name)
        else:
            transports.sms.send(message.recipient, compose_notice_sms(templates, notice), name)
    except Exception as exc:  # noqa: BLE001 - a failed notice never touches the money
        message.status = MessageStatus.FAILED
        message.error = delivery_error_text(message.channel, exc)[:1000]
        if isinstance(exc, sms.SmsError):
            message.error_code = exc.code or None
            if exc.opted_out:
                record_opt_out(session, message.recipient, "21610", now=now)
        retry = message.attempts <= len(RETRY_DELAYS) and _worth_retrying(message.channel, exc)
        message.retry_at = now + RETRY_DELAYS[message.attempts - 1] if retry else None
        audit.record(
            session,
            failed_action,
            link_id=link_id,
            detail=f"{notice.tag} by {message.channel}: {message.error}{tries}"
            + ("; run-jobs tries again" if retry else ""),
            when=now,
        )
    else:
        message.status = MessageStatus.SENT
        message.sent_at = now
        message.error = None
        message.retry_at = None
        audit.record(
            session,
            sent_action,
            link_id=link_id,
            detail=f"{notice.tag} by {message.channel}{tries}",
            when=now,
        )


def _send_notice(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    notice: Notice,
    *,
    now: datetime,
) -> list[Message]:
    """Email (when the link has one) and text (when the link was texted): one Message row and
    one audit event (detail starting with the notice's tag) each; failures recorded, never
    raised, and retried by ``retry_failed_notices`` when worth it."""
    link = notice.link
    if _already_noticed(session, link.id, notice.actions, notice.tag):
        return []
    channels = [("email", link.email)] if link.email else []
    if link.phone and _was_texted(session, link):
        channels.append(("sms", link.phone))
    messages = []
    for channel, recipient in channels:
        message = Message(
            link_id=link.id,
            channel=channel,
            recipient=recipient,
            kind=notice.kind,
            created_at=now,
            payment_id=notice.payment_id,
            refund_id=notice.refund_id,
            attempts=1,
        )
        session.add(message)
        session.flush()
        _deliver_notice(session, templates, transports, notice, message, now=now)
        messages.append(message)
    session.commit()
    return messages


def send_receipt(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    payment: Payment,
    clinic: Clinic,
    *,
    now: datetime | None = None,
) -> list[Message]:
    """The patient's receipt for a completed payment, once per payment (a second call for the
    same payment sends nothing): by email, and by text if the link was texted."""
    return _send_notice(
        session, templates, transports, receipt_notice(payment, clinic), now=now or utcnow()
    )


def send_refund_notice(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    refund: Refund,
    clinic: Clinic,
    *,
    now: datetime | None = None,
) -> list[Message]:
    """Tell the patient a refund was made (amount, what remains paid, when it shows on the
    card), once per refund."""
    return _send_notice(
        session, templates, transports, refund_notice(refund, clinic), now=now or utcnow()
    )


def due_notices(session: Session, now: datetime) -> list[int]:
    """Ids of the receipt and refund notice messages that failed and whose retry time has come."""
    return list(
        session.scalars(
            select(Message.id)
            .where(
                Message.kind.in_(("receipt", "refund")),
                Message.status == MessageStatus.FAILED,
                Message.retry_at <= now,
            )
            .order_by(Message.id)
        )
    )


def retry_failed_notices(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    clinic: Clinic,
    *,
    now: datetime | None = None,
) -> dict[str, int]:
    """run-jobs: try again the receipts and refund notices whose ``retry_at`` has come. Each
    message is first claimed with one conditional UPDATE (failed and due -> sending), so two
    overlapping runs never send one twice, and a sent one is never picked again. Returns
    counts: sent, failed (again), skipped (another run had it)."""
    now = now or utcnow()
    counts = {"sent": 0, "failed": 0, "skipped": 0}
    due = due_notices(session, now)
    session.commit()  # end the read: each claim is its own write transaction
    for message_id in due:
        claimed = session.execute(
            update(Message)
            .where(
                Message.id == message_id,
                Message.status == MessageStatus.FAILED,
                Message.retry_at <= now,
            )
            .values(status=MessageStatus.SENDING, retry_at=None, attempts=Message.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if claimed != 1:
            counts["skipped"] += 1
            continue
        message = session.get(Message, message_id)
        session.refresh(message)
        if message.kind == "receipt":
            notice = receipt_notice(session.get(Payment, message.payment_id), clinic)
        else:
            notice = refund_notice(session.get(Refund, message.refund_id), clinic)
        _deliver_notice(session, templates, transports, notice, message, now=now)
        session.commit()
        counts["sent" if message.status == MessageStatus.SENT else "failed"] += 1
    return counts


def take_due(session: Session) -> list[tuple[str, int]]:
    """Take the receipts and refund notices this session's committed work made due
    (``payments.RECEIPTS_DUE``, ``refunds.NOTICES_DUE``) as ("receipt" | "refund", id) pairs."""
    return [("receipt", pid) for pid in session.info.pop(payments.RECEIPTS_DUE, [])] + [
        ("refund", rid) for rid in session.info.pop(refunds.NOTICES_DUE, [])
    ]


def send_due_notices(
    session: Session,
    templates: jinja2.Environment,
    transports: Transports,
    clinic: Clinic,
    due: list[tuple[str, int]],
) -> int:
    """Send receipts and refund notices for ``due`` (from ``take_due``), after the payment or
    refund was committed; never raises. Returns how many were handled."""
    for kind, row_id in due:
        try:
            if kind == "receipt":
                send_receipt(session, templates, transports, session.get(Payment, row_id), clinic)
            else:
                send_refund_notice(
                    session, templates, transports, session.get(Refund, row_id), clinic
                )
        except Exception:  # noqa: BLE001 - e.g. the database is busy: log it, keep the payment
            session.rollback()
            log.exception("could not send the %s notice for %s", kind, row_id)
    return len(due)


def send_due_notices_for(app, session: Session, due: list[tuple[str, int]] | None = None) -> int:
    """Send what is due (by default: what ``session`` made due) with the app's templates,
    transports and clinic."""
    due = take_due(session) if due is None else due
    if not due:
        return 0
    return send_due_notices(
        session,
        app.jinja_env,
        Transports.from_config(app.config),
        Clinic.from_config(app.config),
        due,
    )
