"""Money as integer cents: parsing what staff type, formatting what people read."""

from __future__ import annotations

import re

_AMOUNT = re.compile(r"^\$?\s*(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?$", re.ASCII)


class AmountError(ValueError):
    """The amount text is not a valid amount; the message says what to type instead."""


def parse_amount(text: str, min_cents: int, max_cents: int | None) -> int:
    """Parse '1,250.50' or '$125' into cents, within [min_cents, max_cents] (None: no upper
    bound here, for callers whose own rule gives the better message)."""
    match = _AMOUNT.match((text or "").strip())
    if not match:
        raise AmountError("Enter the amount in dollars and cents, for example 125.00.")
    frac = match["frac"] or ""
    if len(frac) > 2:
        raise AmountError("Amounts have at most two decimal places (cents).")
    cents = int(match["whole"].replace(",", "")) * 100 + int(frac.ljust(2, "0"))
    if cents < min_cents:
        raise AmountError(f"The amount must be at least {format_cents(min_cents)}.")
    if max_cents is not None and cents > max_cents:
        raise AmountError(f"The amount can be at most {format_cents(max_cents)}.")
    return cents


def format_cents(cents: int, currency: str = "USD") -> str:
    """1250050 -> '$12,500.50' (USD); other currencies get their code as a suffix."""
    text = f"{cents // 100:,}.{cents % 100:02d}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def cents_to_decimal_string(cents: int) -> str:
    """1500 -> '15.00', the form Square's tokenize() verification details expect."""
    return f"{cents // 100}.{cents % 100:02d}"
