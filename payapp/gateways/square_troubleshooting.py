"""What staff should check when Square refuses payapp's own requests (bad keys, wrong location,
rate limits): shown with `gateway.error` alerts (translated there, like every staff message) and
by `check-square`."""

from __future__ import annotations

from ..plaintext import staff_text

GATEWAY_HINTS = {
    "AUTHENTICATION_ERROR": staff_text(
        "Square rejected payapp's access token: check PAYAPP_SQUARE_ACCESS_TOKEN (and that it "
        "belongs to PAYAPP_SQUARE_ENVIRONMENT), then run `flask --app payapp check-square`."
    ),
    "NOT_FOUND": staff_text(
        "Square could not find something payapp asked for (usually the location: check "
        "PAYAPP_SQUARE_LOCATION_ID, or keys from the other environment); run "
        "`flask --app payapp check-square`."
    ),
    "RATE_LIMITED": staff_text(
        "Square is rate-limiting payapp; payments should recover by themselves."
    ),
}


def gateway_hint(detail: str) -> str:
    """The advice for a `gateway.error` detail ("CATEGORY/CODE"): by code, then by category."""
    category, _, code = detail.partition("/")
    return (
        GATEWAY_HINTS.get(code)
        or GATEWAY_HINTS.get(category)
        or staff_text(
            "Square refused a payment request (%(detail)s). Patients were told nothing was "
            "charged.",
            detail=detail,
        )
    )
