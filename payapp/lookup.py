"""Pay by statement number: a patient who won't click a link types the clinic's address, opens
/pay and gives the statement number and their last name; an open link that matches both is theirs.

Every failure looks the same to the visitor (unknown statement, wrong name, closed link): the same
query runs and the same comparisons are made on every path, and the audit trail records each
lookup with nothing the patient typed beyond a length-capped statement number.
"""

from __future__ import annotations

import hmac
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from . import audit
from .models import PaymentLink, utcnow
from .plaintext import patient_text
from .states import AuditAction, LinkStatus

# The reference column's width: a longer "statement number" cannot be one.
MAX_STATEMENT = 40
MAX_LAST_NAME = 120
# More open links sharing one statement number than this is not a real clinic's data; the newest
# are compared and the rest ignored, so no request does unbounded work.
MAX_CANDIDATES = 20
# Compared when no link has the statement number, so that path does the same work as a wrong name.
_NO_NAME = "\x00" * 16


class LookupInputError(ValueError):
    """What the patient typed cannot be a statement number or a last name; ``errors`` maps each
    field to the message shown under it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class StatementQuery:
    statement: str  # trimmed, as typed
    last_name: str  # trimmed, as typed


def clean_query(statement: str, last_name: str) -> StatementQuery:
    """The trimmed statement number and last name, or LookupInputError with the patient's
    messages (empty or too long; any other text is simply looked up and not found)."""
    statement, last_name = (statement or "").strip(), (last_name or "").strip()
    errors = {}
    if not statement:
        errors["statement"] = patient_text("Enter the statement number from your paper statement.")
    elif len(statement) > MAX_STATEMENT:
        errors["statement"] = patient_text(
            "A statement number is at most %(count)s characters.", count=MAX_STATEMENT
        )
    if not last_name:
        errors["last_name"] = patient_text("Enter the patient's last name.")
    elif len(last_name) > MAX_LAST_NAME:
        errors["last_name"] = patient_text(
            "A last name is at most %(count)s characters.", count=MAX_LAST_NAME
        )
    if errors:
        raise LookupInputError(errors)
    return StatementQuery(statement, last_name)


def fold(text: str) -> str:
    """Case- and accent-insensitive form: 'Peña' and 'PENA' fold alike."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def last_word(name: str) -> str:
    words = name.split()
    return words[-1] if words else ""


# Open, unexpired links whose reference is the statement number, exactly (never a prefix),
# ignoring case; newest first.
CANDIDATES = (
    select(PaymentLink.id, PaymentLink.patient_name)
    .where(
        func.lower(PaymentLink.reference) == bindparam("statement"),
        PaymentLink.status == LinkStatus.OPEN,
        PaymentLink.expires_at > bindparam("now"),
    )
    .order_by(PaymentLink.created_at.desc(), PaymentLink.id.desc())
    .limit(MAX_CANDIDATES)
)


def find_by_statement(
    session: Session, query: StatementQuery, now: datetime | None = None
) -> PaymentLink | None:
    """The newest open link whose reference is ``query.statement`` (case-insensitive) and whose
    patient's last name is ``query.last_name`` (case- and accent-insensitive), else None.
    Records ``pay.lookup_found`` or ``pay.lookup_failed`` and commits."""
    now = now or utcnow()
    statement = query.statement.lower()
    rows = session.execute(CANDIDATES, {"statement": statement, "now": now}).all()
    wanted = fold(last_word(query.last_name)).encode()
    found_id = None
    # Every candidate is compared, in constant time, and at least one: no early exit to time.
    for row in rows or [(None, _NO_NAME)]:
        same = hmac.compare_digest(fold(last_word(row[1])).encode(), wanted)
        if same and found_id is None and row[0] is not None:
            found_id = row[0]
    # What the visitor typed, shortened and without control characters (it is shown to staff).
    typed = "".join(c for c in query.statement[:MAX_STATEMENT] if c.isprintable())
    detail = f"statement {typed}"
    if found_id is None:
        audit.record(session, AuditAction.PAY_LOOKUP_FAILED, actor="patient", detail=detail)
        session.commit()
        return None
    audit.record(
        session, AuditAction.PAY_LOOKUP_FOUND, actor="patient", link_id=found_id, detail=detail
    )
    session.commit()
    return session.get(PaymentLink, found_id)
