"""Logs never contain tokens, card tokens, access tokens, full emails or phone numbers."""

import logging

from payapp.logs import redact


def test_redaction_removes_every_kind_of_secret():
    text = (
        "GET /pay/WyJqeVR1Tl81cTRSMS01YTl4IiwxNzk2ODk1Mjk1XQ.KScvw9eEqBJsWnMmuHIST7innl4 "
        "source cnon:card-nonce-ok token EAAAl1x2y3z4-secret Authorization: Bearer abc.def "
        "to jane.doe@example.com and +14155552671"
    )
    clean = redact(text)
    for secret in (
        "WyJqeVR1",
        "card-nonce-ok",
        "l1x2y3z4-secret",
        "abc.def",
        "jane.doe@",
        "4155552671",
    ):
        assert secret not in clean, secret
    assert "/pay/[token]" in clean and "j***@example.com" in clean and "+***2671" in clean


def test_records_are_redacted_for_every_logger_and_handler(app, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("some.library").warning(
        "retrying %s for %s", "/pay/abcdefghijkl123", "someone@example.org"
    )
    try:
        raise ValueError("token EAAAsecretsecret")
    except ValueError:
        logging.getLogger("payapp.test").exception("failed")
    text = caplog.text
    assert "abcdefghijkl123" not in text and "someone@" not in text
    assert "EAAAsecretsecret" not in text and "/pay/[token]" in text


def test_the_suite_wide_log_check_would_catch_each_secret():
    """tests/conftest.py checks every log line of the run with these patterns: they must match
    the raw secrets and not their redacted forms."""
    from payapp.logs import redact

    from .conftest import SECRETS_IN_LOGS

    raw = {
        "a payment-link token": "GET /pay/WyJqeVR1Tl81cTRSMS01YTl4IiwxNzk2ODk1Mjk1XQ.KScvw9eEqBJs",
        "a reminder opt-out token": "POST /reminders/stop/WyJqeVR1Tl81cTRSMS01YTl4Iiw.KScvw9eEqB",
        "a card token": "source cnon:card-nonce-ok",
        "a Square access token": "token EAAAl1x2y3z4secret",
        "a full email address": "sent to jane.doe@example.com",
        "a phone number": "texted +14155552671",
    }
    for what, line in raw.items():
        assert SECRETS_IN_LOGS[what].search(line), what
        assert not SECRETS_IN_LOGS[what].search(redact(line)), what
