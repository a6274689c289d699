"""What staff should check when Square refuses payapp's own requests (bad keys, wrong location,
rate limits): shown with `gateway.error` alerts and by `check-square`."""

from __future__ import annotations

GATEWAY_HINTS = {
    "AUTHENTICATION_ERROR": "Square rejected payapp's access token: check "
    "PAYAPP_SQUARE_ACCESS_TOKEN (and that it belongs to PAYAPP_SQUARE_ENVIRONMENT), then run "
    "`flask --app payapp check-square`.",
    "NOT_FOUND": "Square could not find something payapp asked for (usually the location: check "
    "PAYAPP_SQUARE_LOCATION_ID, or keys from the other environment); run "
    "`flask --app payapp check-square`.",
    "RATE_LIMITED": "Square is rate-limiting payapp; payments should recover by themselves.",
}


def gateway_hint(detail: str) -> str:
    """The advice for a `gateway.error` detail ("CATEGORY/CODE"): by code, then by category."""
    category, _, code = detail.partition("/")
    return (
        GATEWAY_HINTS.get(code)
        or GATEWAY_HINTS.get(category)
        or (f"Square refused a payment request ({detail}). Patients were told nothing was charged.")
    )
