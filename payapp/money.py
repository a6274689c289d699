"""Money as integer cents: parsing what staff type, formatting what people read."""

from __future__ import annotations

import re

from .plaintext import staff_text

_AMOUNT = re.compile(r"^\$?\s*(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?$", re.ASCII)


class AmountError(ValueError):
    """The amount text is not a valid amount; ``message`` says what to type instead (marked for
    the catalogue, translated where it is shown), ``kind`` names why and ``cents`` is the bound
    it broke, so a caller can say the same about its own field in a whole sentence."""

    def __init__(self, kind: str, message: str, cents: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.cents = kind, message, cents

    @classmethod
    def not_an_amount(cls):
        return cls(
            "not_an_amount",
            staff_text("Enter the amount in dollars and cents, for example 125.00."),
        )

    @classmethod
    def too_precise(cls):
        return cls("too_precise", staff_text("Amounts have at most two decimal places (cents)."))

    @classmethod
    def too_small(cls, min_cents: int):
        return cls(
            "too_small",
            staff_text("The amount must be at least %(amount)s.", amount=format_cents(min_cents)),
            min_cents,
        )

    @classmethod
    def too_large(cls, max_cents: int):
        return cls(
            "too_large",
            staff_text("The amount can be at most %(amount)s.", amount=format_cents(max_cents)),
            max_cents,
        )


def parse_amount(text: str, min_cents: int, max_cents: int | None) -> int:
    """Parse '1,250.50' or '$125' into cents, within [min_cents, max_cents] (None: no upper
    bound here, for callers whose own rule gives the better message)."""
    match = _AMOUNT.match((text or "").strip())
    if not match:
        raise AmountError.not_an_amount()
    frac = match["frac"] or ""
    if len(frac) > 2:
        raise AmountError.too_precise()
    cents = int(match["whole"].replace(",", "")) * 100 + int(frac.ljust(2, "0"))
    if cents < min_cents:
        raise AmountError.too_small(min_cents)
    if max_cents is not None and cents > max_cents:
        raise AmountError.too_large(max_cents)
    return cents


def format_cents(cents: int, currency: str = "USD") -> str:
    """1250050 -> '$12,500.50' (USD); other currencies get their code as a suffix."""
    text = f"{cents // 100:,}.{cents % 100:02d}"
    return f"${text}" if currency == "USD" else f"{text} {currency}"


def cents_to_decimal_string(cents: int) -> str:
    """1500 -> '15.00', the form Square's tokenize() verification details expect."""
    return f"{cents // 100}.{cents % 100:02d}"
