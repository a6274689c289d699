"""Payment links: validate and create them, sign and verify their tokens, move them between states.

States (docs/developer.md, "Data model"): open -> paid -> (partially_)refunded;
open -> expired | cancelled | locked.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import (
    Engine,
    Select,
    bindparam,
    column,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, lazyload

from . import audit
from .db import PreparedRead
from .lru import LruCache
from .models import PaymentLink, utcnow
from .money import AmountError, format_cents, parse_amount
from .plaintext import (
    LINE_BREAKS,
    has_invisible_characters,
    invisible_message,
    patient_text,
    staff_text,
)
from .states import LINK_PAID_STATES, AuditAction, Language, LinkStatus

TOKEN_SALT = "payapp.pay-link.v1"  # noqa: S105 - a salt, not a secret

NAME_MAX, REFERENCE_MAX, DESCRIPTION_MAX = 120, 40, 200
# The smallest part payment staff may allow ("Allow paying part now, minimum $__").
MIN_PART_PAYMENT_CENTS = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"[^\W_]+")  # a run of letters and digits
_EXPIRES_IN = re.compile(r"^\s*(\d+)\s*d?\s*$")
# A US ZIP code or ZIP+4 (12345, 12345-6789, 12345 6789, 123456789); the first 5 digits are kept.
_ZIP = re.compile(r"(\d{5})(?:[- ]?\d{4})?")


class LinkError(Exception):
    """A link cannot be used for what was asked; ``kind`` names why."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message

    @classmethod
    def not_found(cls):
        return cls("not_found", patient_text("This payment link is not valid."))

    @classmethod
    def expired(cls):
        return cls(LinkStatus.EXPIRED, patient_text("This payment link has expired."))

    @classmethod
    def cancelled(cls):
        return cls(
            LinkStatus.CANCELLED, patient_text("This payment link was cancelled by the clinic.")
        )

    @classmethod
    def locked(cls):
        return cls(
            LinkStatus.LOCKED,
            patient_text("This payment link is locked after too many declined attempts."),
        )

    @classmethod
    def already_paid(cls):
        return cls(LinkStatus.PAID, patient_text("This payment link has already been paid."))

    @classmethod
    def not_open(cls, status: str):
        return cls(
            status,
            staff_text(
                "Only open links can be changed; this one is %(status)s.",
                status=status.replace("_", " "),
            ),
        )


class LinkInputError(ValueError):
    """Some fields of a new link are invalid; ``errors`` maps field name to a message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class LinkRules:
    """The clinic's limits for new links (from configuration)."""

    min_cents: int = 100
    max_cents: int = 2_500_000
    phone_region: str = "US"
    currency: str = "USD"
    expiry_days_default: int = 14
    expiry_days_max: int = 90
    max_declines: int = 5
    default_language: str = Language.EN

    @classmethod
    def from_config(cls, cfg) -> LinkRules:
        return cls(
            min_cents=int(cfg["AMOUNT_MIN_CENTS"]),
            max_cents=int(cfg["AMOUNT_MAX_CENTS"]),
            phone_region=str(cfg["DEFAULT_PHONE_REGION"]),
            currency=str(cfg["CURRENCY"]),
            expiry_days_default=int(cfg["LINK_EXPIRY_DAYS_DEFAULT"]),
            expiry_days_max=int(cfg["LINK_EXPIRY_DAYS_MAX"]),
            max_declines=int(cfg["MAX_DECLINES"]),
            default_language=str(cfg["DEFAULT_LANGUAGE"]),
        )


@dataclass
class LinkDraft:
    """What staff typed for a new link, as text."""

    patient_name: str = ""
    email: str = ""
    phone: str = ""
    amount: str = ""
    reference: str = ""
    description: str = ""
    expires_in_days: str = ""
    # False: the link is only shown (QR code at the desk), so no email or phone is needed.
    send_now: bool = True
    # What the patient reads the pay page in (states.Language); empty: the clinic's default.
    language: str = ""
    # Optional: lets the patient find the bill at /pay by statement number and ZIP code.
    postal_code: str = ""
    # "Allow paying part now, minimum $__": empty means the patient pays the whole amount.
    min_payment: str = ""
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CleanLink:
    patient_name: str
    email: str | None
    phone: str | None
    amount_cents: int
    reference: str
    description: str
    expires_in_days: int
    language: str = Language.EN
    postal_code: str | None = None
    min_payment_cents: int | None = None


def zip5(text: str | None) -> str | None:
    """'12345', '12345-6789' or '12345 6789' (spaces around allowed) -> '12345'; else None."""
    match = _ZIP.fullmatch((text or "").strip())
    return match[1] if match else None


def clean_draft(draft: LinkDraft, rules: LinkRules) -> CleanLink:
    """Validate and normalise a draft; raise LinkInputError listing every bad field."""
    errors: dict[str, str] = {}

    name = " ".join((draft.patient_name or "").split())
    if not name:
        errors["patient_name"] = staff_text("Enter the patient's name.")
    elif len(name) > NAME_MAX:
        errors["patient_name"] = staff_text(
            "The name can be at most %(max)s characters.", max=NAME_MAX
        )

    email = None
    if (draft.email or "").strip():
        try:
            email = validate_email(draft.email.strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            errors["email"] = staff_text("Enter a valid email address, like name@example.com.")

    phone = None
    if (draft.phone or "").strip():
        phone = normalize_phone(draft.phone, rules.phone_region)
        if phone is None:
            errors["phone"] = staff_text("Enter a valid mobile number, like (212) 555-0123.")

    if draft.send_now and not (draft.email or "").strip() and not (draft.phone or "").strip():
        errors["email"] = staff_text(
            "Enter an email address or a mobile number (or both) to send the link, or don't "
            "send it and show the patient its QR code at the desk."
        )

    amount_cents = 0
    try:
        amount_cents = parse_amount(draft.amount, rules.min_cents, rules.max_cents)
    except AmountError as exc:
        errors["amount"] = exc.message

    min_payment_cents = None
    if (draft.min_payment or "").strip():
        try:
            min_payment_cents = parse_amount(draft.min_payment, MIN_PART_PAYMENT_CENTS, None)
        except AmountError as exc:
            errors["min_payment"] = (
                staff_text(
                    "The minimum part payment must be at least %(amount)s.",
                    amount=format_cents(exc.cents),
                )
                if exc.kind == "too_small"
                else exc.message
            )
        else:
            if amount_cents and min_payment_cents >= amount_cents:
                errors["min_payment"] = staff_text(
                    "The minimum part payment must be less than the amount (%(amount)s), or "
                    "leave it empty to ask for the whole amount.",
                    amount=format_cents(amount_cents, rules.currency),
                )

    reference = (draft.reference or "").strip()
    if len(reference) > REFERENCE_MAX:
        errors["reference"] = staff_text(
            "The reference can be at most %(max)s characters.", max=REFERENCE_MAX
        )

    description = (draft.description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = staff_text(
            "The description can be at most %(max)s characters.", max=DESCRIPTION_MAX
        )

    # Checked on what was typed, before any normalising: U+2028 and U+0085 count as whitespace
    # to str.split(), and validators may strip or accept what an email header then refuses.
    for key, value, allow in (
        ("patient_name", draft.patient_name, LINE_BREAKS),
        ("email", (draft.email or "").strip(), ""),
        ("phone", (draft.phone or "").strip(), ""),
        ("reference", reference, ""),
        ("description", description, LINE_BREAKS),
    ):
        if has_invisible_characters(value or "", allow=allow):
            errors[key] = invisible_message(key)

    days = rules.expiry_days_default
    if (draft.expires_in_days or "").strip():
        days = parse_expires_in(draft.expires_in_days, rules.expiry_days_max)
        if days is None:
            errors["expires_in_days"] = staff_text(
                "Enter the number of days the link stays valid, 1 to %(max)s.",
                max=rules.expiry_days_max,
            )

    language = Language.lookup((draft.language or "").strip() or rules.default_language)
    if language is None:
        errors["language"] = staff_text("Choose English or Spanish.")

    postal_code = None
    if (draft.postal_code or "").strip():
        postal_code = zip5(draft.postal_code)
        if postal_code is None:
            errors["postal_code"] = staff_text(
                "Enter a US ZIP code like 12345 or 12345-6789, or leave it empty."
            )

    if errors:
        raise LinkInputError(errors)
    return CleanLink(
        name,
        email,
        phone,
        amount_cents,
        reference,
        description,
        days,
        language,
        postal_code,
        min_payment_cents,
    )


def normalize_phone(text: str, region: str) -> str | None:
    """'(555) 123-4567' -> '+15551234567'; None when it is not a valid number."""
    try:
        number = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_expires_in(text: str, max_days: int) -> int | None:
    """'14d' or '14' -> 14; None unless it is a whole number of days in 1..max_days."""
    match = _EXPIRES_IN.match(text or "")
    if not match:
        return None
    days = int(match[1])
    return days if 1 <= days <= max_days else None


def create_link(
    session: Session,
    draft: LinkDraft,
    rules: LinkRules,
    *,
    created_by_id: int | None = None,
    now: datetime | None = None,
) -> PaymentLink:
    """Validate a draft and store a new open link (committed)."""
    clean = clean_draft(draft, rules)
    now = now or utcnow()
    link = PaymentLink(
        public_id=secrets.token_urlsafe(12),
        patient_name=clean.patient_name,
        email=clean.email,
        phone=clean.phone,
        amount_cents=clean.amount_cents,
        currency=rules.currency,
        reference=clean.reference,
        description=clean.description,
        language=clean.language.value,
        postal_code=clean.postal_code,
        min_payment_cents=clean.min_payment_cents,
        paid_cents=0,
        status=LinkStatus.OPEN,
        # Whole seconds: the token carries the expiry as an integer timestamp.
        expires_at=(now + timedelta(days=clean.expires_in_days)).replace(microsecond=0),
        created_by_id=created_by_id,
        created_at=now,
    )
    session.add(link)
    session.flush()
    audit.record(
        session,
        AuditAction.LINK_CREATED,
        actor="staff" if created_by_id else "system",
        staff_id=created_by_id,
        link_id=link.id,
        detail=f"amount {format_cents(clean.amount_cents)}, "
        + (
            f"part payments from {format_cents(clean.min_payment_cents)}, "
            if clean.min_payment_cents
            else ""
        )
        + f"expires in {clean.expires_in_days} days",
        when=now,
    )
    session.commit()
    return link


def reissue_link(
    session: Session,
    old: PaymentLink,
    rules: LinkRules,
    *,
    staff_id: int | None,
    now: datetime | None = None,
) -> PaymentLink:
    """A fresh link with the same details, for a link that expired, locked or was cancelled.
    ``staff_id`` None: the clinic's setting reissued it for the patient (link_requests.py)."""
    now = now or utcnow()
    status = effective_status(old, now)
    if status in LINK_PAID_STATES:
        raise LinkError.already_paid()
    if status == LinkStatus.OPEN:
        raise LinkError(
            LinkStatus.OPEN,
            staff_text("This link is still open; resend it instead of reissuing."),
        )
    # A link paid in part is reissued for what is left, still allowing part payments where the
    # minimum is below that.
    balance = old.balance_cents
    minimum = old.min_payment_cents
    draft = LinkDraft(
        patient_name=old.patient_name,
        email=old.email or "",
        phone=old.phone or "",
        amount=f"{balance / 100:.2f}",
        min_payment=f"{minimum / 100:.2f}" if minimum and minimum < balance else "",
        reference=old.reference,
        description=old.description,
        send_now=bool(old.email or old.phone),
        language=old.language,
        postal_code=old.postal_code or "",
    )
    new = create_link(session, draft, rules, created_by_id=staff_id, now=now)
    new.reissued_from_id = old.id
    audit.record(
        session,
        AuditAction.LINK_REISSUED,
        actor="staff" if staff_id is not None else "system",
        staff_id=staff_id,
        link_id=old.id,
        detail=f"replaced by link {new.id}",
        when=now,
    )
    session.commit()
    return new


# --- tokens -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _token_serializer(secret_key: str) -> URLSafeSerializer:
    # Stateless once built, so one per key serves every request (building it derives the key).
    return URLSafeSerializer(secret_key, salt=TOKEN_SALT)


def sign_token(link: PaymentLink, secret_key: str) -> str:
    """The URL token: the link's opaque public id and its expiry, signed with a dedicated salt."""
    return _token_serializer(secret_key).dumps([link.public_id, int(link.expires_at.timestamp())])


def link_url(public_base_url: str, link: PaymentLink, secret_key: str) -> str:
    return f"{public_base_url.rstrip('/')}/pay/{sign_token(link, secret_key)}"


# Built once, not per request (the patient's pages all run it). Payments load when read, by one
# plain query, instead of eagerly: a patient's page reads them only for a paid link.
LINK_BY_PUBLIC_ID = (
    select(PaymentLink)
    .where(PaymentLink.public_id == bindparam("public_id"))
    .options(lazyload(PaymentLink.payments))
)


def resolve_token(session: Session, token: str, secret_key: str) -> PaymentLink:
    """The link a token names, or LinkError.not_found() for anything forged, mangled or unknown.

    An expired token still resolves (so the patient is told it expired and whom to call);
    whether it may be paid is decided by effective_status().
    """
    if not token or len(token) > 200:
        raise LinkError.not_found()
    signed = read_token(secret_key, token)
    if signed is None:
        raise LinkError.not_found()
    public_id, expires_ts = signed
    link = session.scalar(LINK_BY_PUBLIC_ID, {"public_id": public_id})
    # The token's expiry must be the link's own: a token never outlives the link.
    if link is None or int(link.expires_at.timestamp()) != expires_ts:
        raise LinkError.not_found()
    return link


# Every column of the link, without the ORM (no identity map, no instance), compiled once and run
# on a pooled DBAPI connection (db.PreparedRead): the open pay page reads the row and nothing else.
LINK_ROW_BY_PUBLIC_ID = PreparedRead(
    select(*PaymentLink.__table__.columns).where(
        PaymentLink.__table__.c.public_id == bindparam("public_id")
    )
)


def find_link_row(engine: Engine, token: str, secret_key: str):
    """The link row (every column as a named tuple, read-only, no ORM) a token names, or None
    for anything forged, mangled or unknown: the same checks as resolve_token()."""
    if not token or len(token) > 200:
        return None
    signed = read_token(secret_key, token)
    if signed is None:
        return None
    row = LINK_ROW_BY_PUBLIC_ID.first(engine, public_id=signed[0])
    if row is None or int(row.expires_at.timestamp()) != signed[1]:
        return None
    return row


# A patient's page and its POSTs present the same token again and again: its signature is checked
# (and its spelling compared) once per process and key, not on every request. Only genuine tokens
# are kept, so guessed ones cannot push them out.
_GENUINE_TOKENS = LruCache(4096)


def read_token(secret_key: str, token: str) -> tuple[str, int] | None:
    """(public id, expiry timestamp) a token we issued under ``secret_key`` names, else None."""
    cached = _GENUINE_TOKENS.get((secret_key, token))
    if cached is not None:
        return cached
    serializer = _token_serializer(secret_key)
    try:
        public_id, expires_ts = serializer.loads(token)
    except (BadData, ValueError, TypeError):
        return None
    if not isinstance(public_id, str) or not isinstance(expires_ts, int):
        return None
    # Only the exact spelling we issued: base64 decoding forgives padding, alphabet variants and
    # unused bits, and no control keyed on the token text should be sidestepped that way.
    if not hmac.compare_digest(token.encode(), serializer.dumps([public_id, expires_ts]).encode()):
        return None
    _GENUINE_TOKENS.put((secret_key, token), (public_id, expires_ts))
    return public_id, expires_ts


# --- state --------------------------------------------------------------------------------------


def effective_status(link: PaymentLink, now: datetime | None = None) -> str:
    """The status a person should see: an open link past its expiry is expired."""
    now = now or utcnow()
    if link.status == LinkStatus.OPEN and now >= link.expires_at:
        return LinkStatus.EXPIRED
    return link.status


def ensure_payable(link: PaymentLink, now: datetime | None = None) -> None:
    """Raise the LinkError that says why this link cannot take a payment, if it cannot."""
    status = effective_status(link, now)
    if status == LinkStatus.OPEN:
        return
    raise {
        LinkStatus.EXPIRED: LinkError.expired,
        LinkStatus.CANCELLED: LinkError.cancelled,
        LinkStatus.LOCKED: LinkError.locked,
    }.get(status, LinkError.already_paid)()


def mark_viewed(session: Session, link: PaymentLink, now: datetime | None = None) -> None:
    """Record the first time the patient opened the link."""
    if link.first_viewed_at is not None:
        return
    now = now or utcnow()
    rows = session.execute(
        update(PaymentLink)
        .where(PaymentLink.id == link.id, PaymentLink.first_viewed_at.is_(None))
        .values(first_viewed_at=now)
    ).rowcount
    if rows:
        audit.record(session, AuditAction.LINK_VIEWED, actor="patient", link_id=link.id, when=now)
    session.commit()
    session.refresh(link)


def cancel_link(session: Session, link: PaymentLink, *, staff_id: int, now: datetime | None = None):
    """Cancel an open link that has no payment in flight."""
    now = now or utcnow()
    status = effective_status(link, now)
    if status != LinkStatus.OPEN:
        raise LinkError.not_open(status)
    rows = session.execute(
        update(PaymentLink)
        .where(
            PaymentLink.id == link.id,
            PaymentLink.status == LinkStatus.OPEN,
            PaymentLink.claim_key.is_(None),
        )
        .values(status=LinkStatus.CANCELLED)
    ).rowcount
    if not rows:
        session.rollback()
        raise LinkError(
            "in_progress",
            staff_text("A payment is in progress on this link; try again in a minute."),
        )
    audit.record(
        session,
        AuditAction.LINK_CANCELLED,
        actor="staff",
        staff_id=staff_id,
        link_id=link.id,
        when=now,
    )
    session.commit()
    session.refresh(link)


def expire_links(session: Session, now: datetime | None = None) -> int:
    """Mark open links past their expiry as expired (run by run-jobs); returns how many."""
    now = now or utcnow()
    ids = list(
        session.scalars(
            select(PaymentLink.id).where(
                PaymentLink.status == LinkStatus.OPEN,
                PaymentLink.expires_at <= now,
                PaymentLink.claim_key.is_(None),
            )
        )
    )
    for link_id in ids:
        session.execute(
            update(PaymentLink)
            .where(PaymentLink.id == link_id, PaymentLink.status == LinkStatus.OPEN)
            .values(status=LinkStatus.EXPIRED)
        )
        audit.record(session, AuditAction.LINK_EXPIRED, link_id=link_id, when=now)
    session.commit()
    return len(ids)


SEARCH_COUNT_LIMIT = 1000  # "1,000+ links": counting every match of a million costs too much
SEARCH_MAX_WORDS = 8


@dataclass(frozen=True)
class LinkPage:
    """One page of the staff list, newest first. ``older``/``newer`` are the link ids to pass as
    ``after``/``before`` for the next and previous pages (None: there is none)."""

    links: list[PaymentLink]
    older: int | None
    newer: int | None
    found: int  # counted up to SEARCH_COUNT_LIMIT + 1

    @property
    def found_more(self) -> bool:
        return self.found > SEARCH_COUNT_LIMIT


def search_words(query: str) -> list[str]:
    """What staff typed as search words: whitespace-separated, each with a letter or digit."""
    words = _CONTROL.sub(" ", query)[:100].split()
    return [w for w in words if _TOKEN.search(w)][:SEARCH_MAX_WORDS]


def fts_query(words: list[str]) -> str:
    """An FTS5 MATCH expression: every word as a quoted string (so ``"``, ``*``, ``NEAR``, ``-``,
    ``OR`` are text, never syntax) with ``*``: some token of the link starts with each word."""
    return " ".join('"' + w.replace('"', '""') + '"*' for w in words)


def _search_clause(session: Session, words: list[str], *, indexed: bool = True):
    """Links whose name or statement number has a word starting with each of ``words``
    (case-insensitive). On SQLite, ``indexed``: driven by the full-text index of migration 0013
    (every match is found, then sorted: right for a few); otherwise written so that SQLite reads
    the list's index newest first, testing each row against the matches, and stops at the
    page's end (right when many match: a page is found among the first few thousand rows)."""
    if session.get_bind().dialect.name == "sqlite":
        matches = text(
            "SELECT rowid FROM payment_link_search WHERE payment_link_search MATCH :match"
        ).bindparams(match=fts_query(words))
        subject = PaymentLink.id if indexed else PaymentLink.id + 0
        return [subject.in_(matches.columns(column("rowid")))]
    # PostgreSQL: the trigram index on exactly this expression answers ~* '\mword', and
    # ANALYZE keeps statistics on the expression, so the planner itself picks between the
    # trigram index and the list's order (EXPLAIN at 250,000 links: both, by the word).
    # Each word is cut into letter-and-digit runs as FTS5 cuts it ("ST-0012", "o'brien"): the
    # runs in a row, anything else between, the first at a word's start. Only letters and
    # digits reach the pattern, so nothing typed is regex syntax.
    searched = literal_column("(payment_link.patient_name || ' ' || payment_link.reference)")
    patterns = (r"\m" + "[^[:alnum:]]+".join(_TOKEN.findall(w)) for w in words)
    return [searched.op("~*")(pattern) for pattern in patterns]


def _status_branches(status: str, now: datetime) -> list[list]:
    """The status filter as one or two sets of conditions, each answered in the list's order by
    ix_payment_link_status_created (an OR across statuses would need a sort of every match)."""
    if status == LinkStatus.EXPIRED:
        return [
            [PaymentLink.status == LinkStatus.EXPIRED],
            # Overdue but not yet stored as expired by run-jobs.
            [PaymentLink.status == LinkStatus.OPEN, PaymentLink.expires_at <= now],
        ]
    if status == LinkStatus.OPEN:
        return [[PaymentLink.status == LinkStatus.OPEN, PaymentLink.expires_at > now]]
    if LinkStatus.lookup(status):
        return [[PaymentLink.status == status]]
    return [[]]


def _keys(session, conditions, *, after=None, before=None, limit: int) -> list[tuple]:
    stmt = keys_statement(conditions, after=after, before=before).limit(limit)
    return [tuple(row) for row in session.execute(stmt)]


def keys_statement(conditions, *, after=None, before=None) -> Select:
    """(created_at, id) of matching links, newest first, strictly older than the key ``after``
    or (oldest first) strictly newer than ``before``: a range read of one index, in its order."""
    stmt = select(PaymentLink.created_at, PaymentLink.id).where(*conditions)
    key = (PaymentLink.created_at, PaymentLink.id)
    if after is not None:
        stmt = stmt.where(key[0] <= after[0], or_(key[0] < after[0], key[1] < after[1]))
    if before is not None:
        stmt = stmt.where(key[0] >= before[0], or_(key[0] > before[0], key[1] > before[1]))
        stmt = stmt.order_by(key[0], key[1])
    else:
        stmt = stmt.order_by(key[0].desc(), key[1].desc())
    return stmt


def _count(session: Session, conditions) -> int:
    """How many links match, counted up to SEARCH_COUNT_LIMIT + 1."""
    limited = select(PaymentLink.id).where(*conditions).limit(SEARCH_COUNT_LIMIT + 1)
    return session.scalar(select(func.count()).select_from(limited.subquery()))


def list_links(
    session: Session,
    *,
    query: str = "",
    status: str = "",
    after: int | None = None,
    before: int | None = None,
    per_page: int = 25,
    now: datetime | None = None,
) -> LinkPage:
    """One page of links, newest first, filtered by status and by search words (any word of the
    patient's name or the statement number, by its start, case-insensitive), read with a keyset
    cursor: ``after`` (older than that link) or ``before`` (newer). An unknown cursor is page 1."""
    now = now or utcnow()
    words = search_words(query)
    search = _search_clause(session, words) if words else []
    if query.strip() and not words:
        search = [false()]  # only punctuation: nothing has such a word
    branches = [branch + search for branch in _status_branches(status, now)]
    counts = [_count(session, b) for b in branches]
    if words:  # many matches: read in the list's order instead (see _search_clause)
        scan = [
            branch + _search_clause(session, words, indexed=False)
            for branch in _status_branches(status, now)
        ]
        branches = [
            s if n > SEARCH_COUNT_LIMIT else b
            for b, s, n in zip(branches, scan, counts, strict=True)
        ]
    cursor_id = after if after is not None else before
    cursor = None
    if cursor_id is not None:
        found = session.execute(
            select(PaymentLink.created_at, PaymentLink.id).where(PaymentLink.id == cursor_id)
        ).first()
        cursor = tuple(found) if found else None
    going_back = cursor is not None and before is not None
    keys = sorted(
        {
            k
            for b in branches
            for k in _keys(
                session,
                b,
                after=None if going_back else cursor,
                before=cursor if going_back else None,
                limit=per_page + 1,
            )
        },
        reverse=not going_back,
    )
    more = len(keys) > per_page
    keys = keys[:per_page]
    if going_back:
        keys.reverse()
    by_id = {
        link.id: link
        for link in session.scalars(
            select(PaymentLink).where(PaymentLink.id.in_([k[1] for k in keys]))
        )
    }
    if not keys:
        older = newer = None
    elif going_back:
        newer = keys[0][1] if more else None
        older = (
            keys[-1][1]
            if any(_keys(session, b, after=keys[-1], limit=1) for b in branches)
            else None
        )
    else:
        older = keys[-1][1] if more else None
        newer = None
        if cursor is not None and any(_keys(session, b, before=keys[0], limit=1) for b in branches):
            newer = keys[0][1]
    return LinkPage(
        links=[by_id[k[1]] for k in keys],
        older=older,
        newer=newer,
        found=min(sum(counts), SEARCH_COUNT_LIMIT + 1),
    )
