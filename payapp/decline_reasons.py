"""Card gateway codes (Square's decline and error codes) in plain words for staff pages.

Patients read payments.DECLINE_MESSAGES (what to do next); staff read what happened, with the
raw code kept in a tooltip for a call to Square's support.
"""

from __future__ import annotations

STAFF_WORDS = {
    "GENERIC_DECLINE": "The card's bank gave no reason",
    "CARD_DECLINED": "The card's bank refused it",
    "CARD_DECLINED_CALL_ISSUER": "The bank asks the patient to call it",
    "CARD_DECLINED_VERIFICATION_REQUIRED": "The bank asked for extra verification",
    "CVV_FAILURE": "Security code (CVV) did not match",
    "ADDRESS_VERIFICATION_FAILURE": "ZIP code did not match the bank's",
    "INVALID_POSTAL_CODE": "ZIP code not valid",
    "INVALID_EXPIRATION": "Expiration date did not match",
    "BAD_EXPIRATION": "Expiration date not valid",
    "CARD_EXPIRED": "Card expired",
    "INSUFFICIENT_FUNDS": "Not enough funds on the card",
    "TRANSACTION_LIMIT": "Over the card's spending limit",
    "CARD_NOT_SUPPORTED": "Card type not accepted",
    "PAN_FAILURE": "Card number not valid",
    "INVALID_CARD": "Card not valid",
    "INVALID_CARD_DATA": "Card details not valid",
    "CARD_TOKEN_USED": "Card details sent twice; the patient must enter them again",
    "CARD_TOKEN_EXPIRED": "Card details expired; the patient must enter them again",
    "TEMPORARY_ERROR": "Temporary problem at the payment processor",
    "AUTHENTICATION_ERROR": "Square refused payapp's access token",
    "UNAUTHORIZED": "Square refused payapp's access token",
    "ACCESS_TOKEN_EXPIRED": "payapp's Square access token expired",
    "INSUFFICIENT_SCOPES": "payapp's Square access token lacks a permission",
    "NOT_FOUND": "Square could not find what payapp asked for",
    "RATE_LIMITED": "Square asked payapp to slow down",
    "REFUND_AMOUNT_INVALID": "More than can still be refunded",
    "INTERNAL_SERVER_ERROR": "Error inside Square",
    "SERVICE_UNAVAILABLE": "Square was unavailable",
}


# The same code means different things by the field it is about.
FIELD_WORDS = {
    ("NOT_FOUND", "source_id"): "Square did not recognise the card details (made up or stale)",
}


def describe_code(code: str | None) -> str:
    """'GENERIC_DECLINE' -> "Declined by the card's bank"; 'API_ERROR/NOT_FOUND' (a gateway
    error as the audit trail records it) is described by its code; unknown codes are spelled
    out ('SOME_NEW_CODE' -> 'Some new code')."""
    code = (code or "").strip()
    if not code:
        return "Unknown reason"
    # Refusals tied to one request field are recorded as 'CODE (field)'.
    code, _, field = code.partition(" (")
    name = code.rpartition("/")[2] or code
    if (name, field.rstrip(")")) in FIELD_WORDS:
        return FIELD_WORDS[name, field.rstrip(")")]
    return STAFF_WORDS.get(name) or name.replace("_", " ").capitalize()
