"""Square's wire format: ids, timestamps, ISO-8601 durations and error bodies."""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime, timedelta
from typing import Any

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"


def random_chars(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_square_id() -> str:
    """29 characters ending in "ZY", like the payment and order ids in Square's examples."""
    return random_chars(27) + "ZY"


def new_version_token() -> str:
    return random_chars(43) + "6o"


def error_body(
    category: str, code: str, detail: str | None = None, field: str | None = None
) -> dict:
    err: dict[str, str] = {"category": category, "code": code}
    if detail:
        err["detail"] = detail
    if field:
        err["field"] = field
    return err


def http_status_for(code: str) -> int:
    return {"NOT_FOUND": 404, "UNAUTHORIZED": 401, "INTERNAL_SERVER_ERROR": 500}.get(code, 400)


def fail(category: str, code: str, detail: str | None = None, field: str | None = None):
    return http_status_for(code), {"errors": [error_body(category, code, detail, field)]}


def invalid(code: str, detail: str | None = None, field: str | None = None):
    return fail("INVALID_REQUEST_ERROR", code, detail, field)


def refund_error(code: str, detail: str | None = None, field: str | None = None):
    return fail("REFUND_ERROR", code, detail, field)


def strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_nulls(v) for v in value]
    return value


_DURATION = re.compile(
    r"^P(?!$)(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


def parse_duration(text: str) -> timedelta | None:
    match = _DURATION.match(text)
    if not match:
        return None
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
