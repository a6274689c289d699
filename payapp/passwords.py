"""Staff passwords: the rules a new password must meet, the common-password list, and hashing.

Plain functions on plain values: no request, no database."""

from __future__ import annotations

import functools
import string
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from .plaintext import staff_text

PASSWORD_MIN = 12
PASSWORD_MAX = 256
PASSWORD_MIN_DISTINCT = 5
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt"
# werkzeug's method for new hashes. Tests set a fast one; checks read the method from the hash.
HASH_METHOD = "scrypt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The list of commonly used passwords, lower-cased."""
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def password_problem(password: str | None, email: str = "") -> str | None:
    """Why this password is refused (a sentence for the user), or None if it is acceptable.

    NIST SP 800-63B: a minimum length, no composition rules, and a check against passwords that
    are commonly used or expected (here: a list of common ones, with digits or symbols added
    before or after, one character repeated, the email address)."""
    password = password or ""
    if len(password) < PASSWORD_MIN:
        return staff_text("The password must be at least %(min)s characters.", min=PASSWORD_MIN)
    if len(password) > PASSWORD_MAX:
        return staff_text("The password can be at most %(max)s characters.", max=PASSWORD_MAX)
    lowered = password.lower()
    email = (email or "").strip().lower()
    local_part = email.partition("@")[0]
    core = lowered.strip(string.digits + string.punctuation + " ")
    if email and (lowered == email or core in (email, local_part)):
        return staff_text("The password must not be your email address. Choose something else.")
    common = common_passwords()
    if lowered in common or lowered.replace(" ", "") in common or core in common:
        return staff_text(
            "That password is one of the most commonly used, so it is easy to guess. Choose "
            "another: a few unrelated words together work well."
        )
    if len(set(lowered)) < PASSWORD_MIN_DISTINCT:
        return staff_text("That password repeats too few characters to be safe. Choose another.")
    return None


def hash_password(password: str) -> str:
    """The stored form of a password (salted, with ``HASH_METHOD``)."""
    return generate_password_hash(password, method=HASH_METHOD)


def verify_password(password_hash: str, password: str | None) -> bool:
    """Whether the password matches the stored hash."""
    return check_password_hash(password_hash, password or "")


@functools.cache
def _dummy_hash(method: str) -> str:
    return generate_password_hash("not-a-real-password", method=method)


def verify_no_password(password: str | None) -> None:
    """Spend the time of one verification when there is no hash to check against (an unknown
    email, a locked account), so a refusal takes as long whatever the reason."""
    verify_password(_dummy_hash(HASH_METHOD), password)
