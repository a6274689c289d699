"""A patient's "Send me a new link" on an expired or locked link, and the front desk's task.

The new link only ever goes to the email or phone already on the link (the patient types
nothing); the patient sees a masked hint of where. By default the request is a task for the
front desk, because the balance may have changed; with ``NEW_LINK_REQUESTS = "reissue"`` the link
is reissued at once with the same amount. At most one request per link is open, kept by a
partial unique index (migration 0017): a second insert fails and finds the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from . import audit, links
from .models import LinkRequest, PaymentLink, utcnow
from .plaintext import patient_text, staff_text
from .states import AuditAction, LinkRequestState, LinkStatus

# Cancelled links were withdrawn on purpose and paid ones need nothing: those say "call us".
REQUESTABLE_STATES = (LinkStatus.EXPIRED, LinkStatus.LOCKED)
MODES = ("ask", "reissue")
MASK = "\u2022\u2022\u2022"  # •••


class LinkRequestError(ValueError):
    """A request that cannot be made or handled; ``message`` is for the person who tried."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def not_offered(cls) -> LinkRequestError:
        return cls(
            "not_offered", patient_text("A new link can't be sent for this one. Please call us.")
        )

    @classmethod
    def already_handled(cls) -> LinkRequestError:
        return cls("already_handled", staff_text("Someone has already handled this request."))


@dataclass
class Outcome:
    """What a patient's request did: ``asked`` (a new task), ``already_asked`` (one was open),
    ``reissued`` (automatic mode: ``new_link`` is to be sent) or ``already_sent`` (automatic
    mode had already reissued this link and the new one is still open)."""

    kind: str
    request: LinkRequest
    new_link: PaymentLink | None = None


def mask_email(email: str) -> str:
    """'j•••@example.com': enough for the patient to recognise, nothing for anyone else."""
    local, _, domain = email.partition("@")
    return f"{local[:1]}{MASK}@{domain}"


def mask_phone(phone: str) -> str:
    """'•••-•••-1234' for an E.164 number."""
    return f"{MASK}-{MASK}-{phone[-4:]}"


def contact_hint(link: PaymentLink) -> str:
    """Where a new link would go, masked: 'j•••@example.com and •••-•••-1234'."""
    parts = []
    if link.email:
        parts.append(mask_email(link.email))
    if link.phone:
        parts.append(mask_phone(link.phone))
    return " and ".join(parts)


def can_request(link: PaymentLink, now: datetime | None = None) -> bool:
    """The closed page offers "Send me a new link": expired or locked, with a contact on file."""
    status = links.effective_status(link, now or utcnow())
    return status in REQUESTABLE_STATES and bool(link.email or link.phone)


def open_request_for(session: Session, link_id: int) -> LinkRequest | None:
    return session.scalars(
        select(LinkRequest).where(
            LinkRequest.link_id == link_id, LinkRequest.state == LinkRequestState.OPEN
        )
    ).first()


def _sent_and_still_open(session: Session, link_id: int, now: datetime) -> LinkRequest | None:
    """The latest automatic reissue of this link, if its new link can still be paid."""
    done = session.scalars(
        select(LinkRequest)
        .where(
            LinkRequest.link_id == link_id,
            LinkRequest.state == LinkRequestState.DONE,
            LinkRequest.new_link_id.is_not(None),
        )
        .order_by(LinkRequest.id.desc())
        .limit(1)
    ).first()
    if done is None:
        return None
    new = session.get(PaymentLink, done.new_link_id)
    return done if links.effective_status(new, now) == LinkStatus.OPEN else None


def request_new_link(
    session: Session,
    link: PaymentLink,
    *,
    mode: str,
    rules: links.LinkRules,
    now: datetime | None = None,
) -> Outcome:
    """The patient pressed "Send me a new link" (committed, audited). ``mode`` is the clinic's
    ``NEW_LINK_REQUESTS``. Raises LinkRequestError.not_offered() for other states or no contact;
    a link reissued by ``mode="reissue"`` is returned for the caller to send."""
    now = now or utcnow()
    if not can_request(link, now):
        raise LinkRequestError.not_offered()
    if mode == "reissue":
        earlier = _sent_and_still_open(session, link.id, now)
        if earlier is not None:
            return Outcome("already_sent", earlier)
    request = LinkRequest(link_id=link.id, created_at=now, state=LinkRequestState.OPEN)
    session.add(request)
    try:
        session.flush()  # the partial unique index refuses a second open request
    except IntegrityError:
        session.rollback()
        existing = open_request_for(session, link.id)
        if existing is None:  # handled between the insert and this read: ask again
            raise LinkRequestError.already_handled() from None
        return Outcome("already_asked", existing)
    audit.record(
        session,
        AuditAction.NEW_LINK_REQUESTED,
        actor="patient",
        link_id=link.id,
        detail="reissued automatically" if mode == "reissue" else "front desk asked",
        when=now,
    )
    if mode != "reissue":
        session.commit()
        return Outcome("asked", request)
    try:
        new = links.reissue_link(session, link, rules, staff_id=None, now=now)  # commits both
    except (links.LinkError, links.LinkInputError):
        # Details stored before today's rules: the front desk decides instead.
        session.rollback()
        return request_new_link(session, link, mode="ask", rules=rules, now=now)
    _close(session, request, LinkRequestState.DONE, None, now, new_link_id=new.id)
    return Outcome("reissued", request, new)


def _close(
    session: Session,
    request: LinkRequest,
    state: LinkRequestState,
    staff_id: int | None,
    now: datetime,
    new_link_id: int | None = None,
) -> None:
    request.state = state
    request.handled_by_id = staff_id
    request.handled_at = now
    request.new_link_id = new_link_id
    action = (
        AuditAction.NEW_LINK_SENT
        if state == LinkRequestState.DONE
        else (AuditAction.NEW_LINK_DISMISSED)
    )
    audit.record(
        session,
        action,
        actor="staff" if staff_id is not None else "system",
        staff_id=staff_id,
        link_id=request.link_id,
        detail=f"new link {new_link_id}" if new_link_id else "",
        when=now,
    )
    session.commit()


def _claim(session: Session, request_id: int, state: LinkRequestState, staff_id: int, now):
    """Open → ``state`` in one UPDATE: of two people pressing at once, one wins."""
    done = session.execute(
        update(LinkRequest)
        .where(LinkRequest.id == request_id, LinkRequest.state == LinkRequestState.OPEN)
        .values(state=state, handled_by_id=staff_id, handled_at=now)
    )
    if done.rowcount != 1:
        session.rollback()
        raise LinkRequestError.already_handled()
    return session.get(LinkRequest, request_id)


def reissue_request(
    session: Session,
    request_id: int,
    *,
    staff_id: int,
    rules: links.LinkRules,
    now: datetime | None = None,
) -> tuple[LinkRequest, PaymentLink]:
    """Staff's "Reissue and send": a new link with the same details (``links.reissue_link``),
    the task done. The caller sends the new link. Raises LinkRequestError.already_handled(), or
    reissue_link's LinkError / LinkInputError (the task then stays open)."""
    now = now or utcnow()
    request = _claim(session, request_id, LinkRequestState.DONE, staff_id, now)
    try:
        new = links.reissue_link(session, request.link, rules, staff_id=staff_id, now=now)
    except (links.LinkError, links.LinkInputError):
        session.rollback()
        raise
    _close(session, request, LinkRequestState.DONE, staff_id, now, new_link_id=new.id)
    return request, new


def dismiss_request(
    session: Session, request_id: int, *, staff_id: int, now: datetime | None = None
) -> LinkRequest:
    """Staff's "Dismiss" (e.g. the patient paid by phone): the task closes, nothing is sent."""
    now = now or utcnow()
    request = _claim(session, request_id, LinkRequestState.DISMISSED, staff_id, now)
    _close(session, request, LinkRequestState.DISMISSED, staff_id, now)
    return request


def settle_for_link(
    session: Session,
    link_id: int,
    *,
    staff_id: int,
    new_link_id: int,
    now: datetime | None = None,
) -> bool:
    """A link reissued from its own page: the patient's open request for it is done too (one
    UPDATE), so the dashboard does not ask for a second reissue. True if there was one."""
    now = now or utcnow()
    done = session.execute(
        update(LinkRequest)
        .where(LinkRequest.link_id == link_id, LinkRequest.state == LinkRequestState.OPEN)
        .values(
            state=LinkRequestState.DONE,
            handled_by_id=staff_id,
            handled_at=now,
            new_link_id=new_link_id,
        )
    )
    if done.rowcount != 1:
        session.rollback()
        return False
    audit.record(
        session,
        AuditAction.NEW_LINK_SENT,
        actor="staff",
        staff_id=staff_id,
        link_id=link_id,
        detail=f"new link {new_link_id}",
        when=now,
    )
    session.commit()
    return True


def open_requests(session: Session, limit: int = 50) -> list[LinkRequest]:
    """The oldest open requests first, each with its link (the dashboard panel)."""
    return list(
        session.scalars(
            select(LinkRequest)
            .options(joinedload(LinkRequest.link))
            .where(LinkRequest.state == LinkRequestState.OPEN)
            .order_by(LinkRequest.created_at, LinkRequest.id)
            .limit(limit)
        )
    )


def count_open(session: Session) -> int:
    return session.scalar(
        select(func.count())
        .select_from(LinkRequest)
        .where(LinkRequest.state == LinkRequestState.OPEN)
    )
