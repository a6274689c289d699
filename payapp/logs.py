"""Logs never carry a payment-link token, a card token, an access token, a full email address or
a full phone number: every log record is redacted when it is created, whoever logs it."""

from __future__ import annotations

import logging
import re

_RULES = [
    (re.compile(r"/pay/[A-Za-z0-9_\-.]{8,}"), "/pay/[token]"),
    (re.compile(r"/reminders/stop/[A-Za-z0-9_\-.]{8,}"), "/reminders/stop/[token]"),
    (re.compile(r"\b(cnon|ccof|bnon|gnon|cnon):[A-Za-z0-9_\-]+"), r"\1:[card-token]"),
    (re.compile(r"\b(EAAA|sq0atp-|sq0csp-)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9_\-.=]+"), r"\1 [redacted]"),
    (
        re.compile(r"\b([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})"),
        r"\1***@\2",
    ),
    (re.compile(r"\+\d{6,11}(\d{4})\b"), r"+***\1"),
]


def redact(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


_installed = False


def install() -> None:
    """Wrap the log record factory once per process (idempotent)."""
    global _installed
    if _installed:
        return
    original = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = original(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not lose the record
            message = str(record.msg)
        if record.name.startswith("sqlalchemy.engine") and message.startswith("Row"):
            message = "Row [redacted]"  # result rows can hold password hashes and TOTP secrets
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
