"""Card gateway codes (Square's decline and error codes) in plain words for staff pages.

Patients read payments.DECLINE_MESSAGES (what to do next); staff read what happened, with the
raw code kept in a tooltip for a call to Square's support.
"""

from __future__ import annotations

from .plaintext import staff_text

STAFF_WORDS = {
    "GENERIC_DECLINE": staff_text("The card's bank gave no reason"),
    "CARD_DECLINED": staff_text("The card's bank refused it"),
    "CARD_DECLINED_CALL_ISSUER": staff_text("The bank asks the patient to call it"),
    "CARD_DECLINED_VERIFICATION_REQUIRED": staff_text("The bank asked for extra verification"),
    "CVV_FAILURE": staff_text("Security code (CVV) did not match"),
    "ADDRESS_VERIFICATION_FAILURE": staff_text("ZIP code did not match the bank's"),
    "INVALID_POSTAL_CODE": staff_text("ZIP code not valid"),
    "INVALID_EXPIRATION": staff_text("Expiration date did not match"),
    "BAD_EXPIRATION": staff_text("Expiration date not valid"),
    "CARD_EXPIRED": staff_text("Card expired"),
    "INSUFFICIENT_FUNDS": staff_text("Not enough funds on the card"),
    "TRANSACTION_LIMIT": staff_text("Over the card's spending limit"),
    "CARD_NOT_SUPPORTED": staff_text("Card type not accepted"),
    "PAN_FAILURE": staff_text("Card number not valid"),
    "INVALID_CARD": staff_text("Card not valid"),
    "INVALID_CARD_DATA": staff_text("Card details not valid"),
    "CARD_TOKEN_USED": staff_text("Card details sent twice; the patient must enter them again"),
    "CARD_TOKEN_EXPIRED": staff_text("Card details expired; the patient must enter them again"),
    "TEMPORARY_ERROR": staff_text("Temporary problem at the payment processor"),
    "AUTHENTICATION_ERROR": staff_text("Square refused payapp's access token"),
    "UNAUTHORIZED": staff_text("Square refused payapp's access token"),
    "ACCESS_TOKEN_EXPIRED": staff_text("payapp's Square access token expired"),
    "INSUFFICIENT_SCOPES": staff_text("payapp's Square access token lacks a permission"),
    "NOT_FOUND": staff_text("Square could not find what payapp asked for"),
    "RATE_LIMITED": staff_text("Square asked payapp to slow down"),
    "REFUND_AMOUNT_INVALID": staff_text("More than can still be refunded"),
    "INTERNAL_SERVER_ERROR": staff_text("Error inside Square"),
    "SERVICE_UNAVAILABLE": staff_text("Square was unavailable"),
}


# The same code means different things by the field it is about.
FIELD_WORDS = {
    ("NOT_FOUND", "source_id"): staff_text(
        "Square did not recognise the card details (made up or stale)"
    ),
}


def describe_code(code: str | None) -> str:
    """'GENERIC_DECLINE' -> "Declined by the card's bank"; 'API_ERROR/NOT_FOUND' (a gateway
    error as the audit trail records it) is described by its code; unknown codes are spelled
    out ('SOME_NEW_CODE' -> 'Some new code')."""
    code = (code or "").strip()
    if not code:
        return staff_text("Unknown reason")
    # Refusals tied to one request field are recorded as 'CODE (field)'.
    code, _, field = code.partition(" (")
    name = code.rpartition("/")[2] or code
    if (name, field.rstrip(")")) in FIELD_WORDS:
        return FIELD_WORDS[name, field.rstrip(")")]
    return STAFF_WORDS.get(name) or name.replace("_", " ").capitalize()
