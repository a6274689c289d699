"""The second factor: TOTP (RFC 6238, via pyotp) and one-time recovery codes.

Plain functions on plain values: no request, no session, no database. login.py keeps the
state (the secret, the last counter used, the recovery-code hashes) on the staff user; qr.py
draws the otpauth:// URI.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import pyotp

STEP_SECONDS = 30
DIGITS = 6
# Accept the code of the step before and after the current one: phones' clocks drift.
VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper and typed by hand. 32 symbols, 12 of them = 60 bits.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
RECOVERY_GROUPS = 3
RECOVERY_GROUP_LEN = 4

_TOTP_CODE = re.compile(r"^\d{6}$")


def new_secret() -> str:
    """A fresh random TOTP secret (base32, 160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def grouped(secret: str) -> str:
    """The secret in groups of four, easier to type into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def clean_code(code: str | None) -> str:
    """What a person typed, without spaces and dashes, lower-case."""
    return re.sub(r"[\s-]", "", code or "").lower()


def looks_like_totp(code: str | None) -> bool:
    return bool(_TOTP_CODE.match(clean_code(code)))


def counter_at(when: datetime) -> int:
    return int(when.timestamp()) // STEP_SECONDS


def verify_totp(
    secret: str, code: str | None, last_counter: int | None, now: datetime
) -> int | None:
    """The time-step counter the code belongs to, or None if it is wrong or already used.

    A code is accepted for the current step and one step either side, and only if its step is
    later than the last one used: the same code (or an older one) cannot be replayed."""
    code = clean_code(code)
    if not secret or not _TOTP_CODE.match(code):
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = counter_at(now)
    matched = None
    # Check every candidate step, so the time taken does not depend on which one matches.
    for counter in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(counter), code):
            matched = counter
    if matched is None or (last_counter is not None and matched <= last_counter):
        return None
    return matched


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Fresh one-time codes, formatted ``abcd-efgh-jkmn``, to show the user once."""
    size = RECOVERY_GROUPS * RECOVERY_GROUP_LEN
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(size))
        codes.append(
            "-".join(raw[i : i + RECOVERY_GROUP_LEN] for i in range(0, size, RECOVERY_GROUP_LEN))
        )
    return codes


def hash_recovery_code(code: str) -> str:
    # The codes are 60 random bits, so a plain digest is enough; only digests are stored.
    return hashlib.sha256(clean_code(code).encode()).hexdigest()


def store_recovery_codes(codes: list[str]) -> str:
    """What goes in the database for these codes: their digests, one a line."""
    return "\n".join(hash_recovery_code(c) for c in codes)


def count_recovery_codes(stored: str | None) -> int:
    return len([h for h in (stored or "").split("\n") if h])


def use_recovery_code(stored: str | None, code: str | None) -> str | None:
    """The stored digests without the one this code matches, or None if it matches none."""
    cleaned = clean_code(code)
    if len(cleaned) != RECOVERY_GROUPS * RECOVERY_GROUP_LEN:
        return None
    digest = hash_recovery_code(cleaned)
    hashes = [h for h in (stored or "").split("\n") if h]
    matches = [h for h in hashes if hmac.compare_digest(h, digest)]
    if not matches:
        return None
    hashes.remove(matches[0])
    return "\n".join(hashes)
