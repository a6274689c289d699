"""Under gunicorn, the receipt goes out after the patient's answer (response.call_on_close):
pay in Chromium, then find the receipt in the outbox."""

from __future__ import annotations

import email
import time
from email import policy
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from .test_https_payment import APPROVED_CARD, fill_card, receipt_heading, submit_payment

if TYPE_CHECKING:
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]


def receipts_for(outbox: Path, reference: str) -> list[email.message.EmailMessage]:
    found = []
    for path in outbox.glob("*-receipt-email.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if reference in message.get_body(("plain",)).get_content():
            found.append(message)
    return found


def test_paying_under_gunicorn_emails_one_receipt_after_the_answer(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    pay_url = payapp_server.create_link(reference="INV-RCPT-1")
    page.goto(pay_url)
    fill_card(page, APPROVED_CARD)
    submit_payment(page, pay_url)
    expect(receipt_heading(page)).to_be_visible()

    outbox = Path(payapp_server.env["PAYAPP_OUTBOX_DIR"])
    deadline = time.monotonic() + 10  # sent by the worker once the response is out: poll for it
    while not receipts_for(outbox, "INV-RCPT-1") and time.monotonic() < deadline:
        time.sleep(0.1)
    [receipt] = receipts_for(outbox, "INV-RCPT-1")
    assert receipt["To"] == "jane@example.com"
    assert "Maple Street Dental" in receipt["Subject"] and "$125.00" in receipt["Subject"]
    assert browser_problems == []
