"""What Twilio tells us after a text: replies (STOP, START, HELP) and delivery status callbacks;
and the queued texts run-jobs sends once clinic hours begin."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import jinja2
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from . import audit, links, notify, sms
from .clinic import Clinic
from .models import Message, PaymentLink, SmsOptOut, utcnow
from .states import AuditAction, LinkStatus, MessageStatus

# Twilio's message statuses in the order they happen: a late "sent" never undoes "delivered".
_PROGRESS = {
    "accepted": 0,
    "queued": 0,
    "sending": 1,
    "sent": 2,
    "delivered": 3,
    "undelivered": 3,
    "failed": 3,
}


def handle_webhook(session: Session, params: Mapping[str, str], *, now: datetime | None = None):
    """One signature-checked POST from Twilio: a status callback (MessageSid + MessageStatus) or
    an incoming reply (From + Body). Returns what it did, for the log."""
    now = now or utcnow()
    if params.get("MessageStatus") and "Body" not in params:
        return record_status(
            session,
            params.get("MessageSid", ""),
            params["MessageStatus"],
            params.get("ErrorCode") or None,
            now=now,
        )
    return record_reply(
        session, params.get("From", ""), params.get("Body", ""), params.get("OptOutType"), now=now
    )


def record_status(
    session: Session, sid: str, status: str, error_code: str | None, *, now: datetime
) -> str:
    """A delivery status callback updates its message row (never backwards)."""
    status = status.strip().lower()[:16]
    message = session.scalar(select(Message).where(Message.provider_id == sid)) if sid else None
    if message is None or status not in _PROGRESS:
        return "ignored"
    if _PROGRESS[status] < _PROGRESS.get(message.delivery_status or "queued", 0):
        return "stale"
    message.delivery_status = status
    if status in ("undelivered", "failed"):
        message.status = MessageStatus.FAILED
        message.error_code = (error_code or "")[:8] or None
        message.error = sms.carrier_error_text(error_code)
        audit.record(
            session,
            AuditAction.SMS_UNDELIVERED,
            link_id=message.link_id,
            detail=message.error,
            when=now,
        )
    elif status == "delivered":
        audit.record(session, AuditAction.SMS_DELIVERED, link_id=message.link_id, when=now)
    session.commit()
    return status


def record_reply(
    session: Session, phone: str, body: str, opt_out_type: str | None, *, now: datetime
) -> str:
    """STOP: no more texts to that number; START: texts allowed again; HELP: Twilio answers it,
    we only note it. Any other reply is not kept (patients must not send details here)."""
    keyword = (opt_out_type or "").lower() or sms.keyword_of(body)
    phone = phone.strip()[:16]
    if keyword not in ("stop", "start", "help") or not phone:
        return "ignored"
    link_ids = session.scalars(
        select(Message.link_id)
        .where(Message.channel == "sms", Message.recipient == phone)
        .distinct()
    ).all()
    if keyword == "stop":
        if not notify.record_opt_out(session, phone, "STOP", now=now):
            session.commit()
            return "already stopped"
        action = AuditAction.SMS_OPTED_OUT
    elif keyword == "start":
        if not session.execute(delete(SmsOptOut).where(SmsOptOut.phone == phone)).rowcount:
            return "not stopped"
        action = AuditAction.SMS_OPTED_IN
    else:
        action = AuditAction.SMS_HELP
    for link_id in link_ids or [None]:
        audit.record(session, action, actor="patient", link_id=link_id, when=now)
    session.commit()
    return keyword


def send_queued_texts(
    session: Session,
    templates: jinja2.Environment,
    transports: notify.Transports,
    clinic: Clinic,
    url_of: Callable[[PaymentLink], str],
    *,
    now: datetime | None = None,
) -> int:
    """Send the texts that waited for clinic hours or a retry; returns how many went out.
    Each is claimed with one conditional UPDATE, so overlapping runs never send one twice."""
    now = now or utcnow()
    if not sms.within_text_hours(now, clinic.timezone, transports.text_hours, transports.text_days):
        return 0
    ids = session.scalars(
        select(Message.id)
        .where(Message.channel == "sms", Message.status == MessageStatus.QUEUED)
        .order_by(Message.id)
    ).all()
    sent = 0
    for message_id in ids:
        claimed = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.QUEUED)
            .values(status=MessageStatus.SENDING)
        ).rowcount
        session.commit()
        if not claimed:
            continue
        message = session.get(Message, message_id)
        link = session.get(PaymentLink, message.link_id)
        status = links.effective_status(link, now)
        if status != LinkStatus.OPEN:
            message.status = MessageStatus.FAILED
            message.error = (
                f"Not sent: the link was {LinkStatus.label_of(status).lower()} meanwhile."
            )
            session.commit()
            continue
        notify.deliver_text(
            session, templates, transports, message, link, url_of(link), clinic, now=now
        )
        if message.status == MessageStatus.SENT:
            sent += 1
            session.execute(
                update(PaymentLink).where(PaymentLink.id == link.id).values(sent_at=now)
            )
        session.commit()
    return sent
