"""Pay by statement number: a patient who won't click a link types the clinic's address, opens
/pay and gives the statement number and their last name or ZIP code (one field: digits are a ZIP
code); an open link that matches the number and that detail is theirs.

Every failure looks the same to the visitor (unknown statement, wrong name or ZIP, closed link):
the same query runs and the same comparisons (name and ZIP, whichever was given) are made on every
path, and the audit trail records each
lookup with nothing the patient typed beyond a length-capped statement number.
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from . import audit
from .links import zip5
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
_NO_ZIP = "\x00" * 5
# Digits, with spaces or hyphens at most: the patient typed a ZIP code, not a name.
_LOOKS_LIKE_ZIP = re.compile(r"[\d\s-]*\d[\d\s-]*")


class LookupInputError(ValueError):
    """What the patient typed cannot be a statement number or a last name / ZIP code; ``errors``
    maps each field to the message shown under it."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class StatementQuery:
    statement: str  # trimmed, as typed
    last_name: str  # trimmed, as typed; empty when the patient gave a ZIP code
    postal_code: str = ""  # the 5 digits of the ZIP code the patient gave instead, if any


def clean_query(statement: str, last_name: str) -> StatementQuery:
    """The trimmed statement number and last name or ZIP code (``last_name`` is the form's one
    field for either: digits are a ZIP code, kept as 5 digits), or LookupInputError with the
    patient's messages (empty, too long, or digits that are no ZIP code; any other text is
    simply looked up and not found)."""
    statement, last_name = (statement or "").strip(), (last_name or "").strip()
    postal_code = ""
    errors = {}
    if not statement:
        errors["statement"] = patient_text("Enter the statement number from your paper statement.")
    elif len(statement) > MAX_STATEMENT:
        errors["statement"] = patient_text(
            "A statement number is at most %(count)s characters.", count=MAX_STATEMENT
        )
    if not last_name:
        errors["last_name"] = patient_text("Enter the patient's last name or ZIP code.")
    elif len(last_name) > MAX_LAST_NAME:
        errors["last_name"] = patient_text(
            "A last name is at most %(count)s characters.", count=MAX_LAST_NAME
        )
    elif _LOOKS_LIKE_ZIP.fullmatch(last_name):
        postal_code = zip5(last_name) or ""
        if not postal_code:
            errors["last_name"] = patient_text("A ZIP code has 5 digits, like 12345.")
    if errors:
        raise LookupInputError(errors)
    if postal_code:
        return StatementQuery(statement, "", postal_code)
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
    select(PaymentLink.id, PaymentLink.patient_name, PaymentLink.postal_code)
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
    patient's last name is ``query.last_name`` (case- and accent-insensitive) or, when the
    patient gave a ZIP code, whose stored ZIP is ``query.postal_code``; else None. A link with
    no ZIP is found by last name only. Records ``pay.lookup_found`` or ``pay.lookup_failed`` and
    commits."""
    now = now or utcnow()
    statement = query.statement.lower()
    rows = session.execute(CANDIDATES, {"statement": statement, "now": now}).all()
    wanted_name = fold(last_word(query.last_name)).encode()
    wanted_zip = query.postal_code.encode()
    by_zip = bool(query.postal_code)
    found_id = None
    # Every candidate is compared, in constant time, and at least one: no early exit to time.
    # Name and ZIP are both compared whichever the patient gave, so either does the same work.
    for row in rows or [(None, _NO_NAME, _NO_ZIP)]:
        same_name = hmac.compare_digest(fold(last_word(row[1])).encode(), wanted_name)
        same_zip = hmac.compare_digest((row[2] or "").encode(), wanted_zip)
        same = same_zip if by_zip else same_name
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
