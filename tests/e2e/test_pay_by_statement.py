"""Chromium: a patient who won't click a link types the clinic's address, finds the bill by
statement number and ZIP code (or last name), and pays it (issue 11)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from . import test_accessibility
from .test_accessibility import AxeAudit
from .test_https_payment import APPROVED_CARD, fill_card, receipt_heading, submit_payment
from .test_pay_page_flows import PHONE, RECORD_CSP_VIOLATIONS

if TYPE_CHECKING:
    from .conftest import PayappServer

# axe-core's session fixture, shared with the accessibility tests.
axe_source = test_accessibility.axe_source

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]


def test_a_patient_finds_a_bill_by_statement_number_and_pays_it(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    page.set_viewport_size(PHONE)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    pay_url = payapp_server.create_link(
        reference="ST-E2E-7", name="María Peña", amount="42.50", postal_code="10027-1234"
    )

    page.goto(f"{payapp_server.base_url}/pay")
    expect(page.get_by_role("heading", name="Pay your bill")).to_be_visible()
    page.get_by_label("Statement number").fill("ST-E2E-7")
    page.get_by_label("Last name or ZIP code").fill("Smith")
    page.get_by_role("button", name="Find my bill").click()
    expect(page.get_by_role("alert")).to_contain_text("We couldn't find an open bill")
    assert page.url == f"{payapp_server.base_url}/pay"

    # Typed as a patient might, with the ZIP code instead of the name (stray spaces; staff gave
    # a ZIP+4, stored as 5 digits). The name path is the same form (tests/test_lookup.py); this
    # server's per-address lookup limit is shared with the next test, so lookups are few here.
    page.get_by_label("Statement number").fill(" st-e2e-7 ")
    page.get_by_label("Last name or ZIP code").fill(" 10027 ")
    page.get_by_role("button", name="Find my bill").click()
    page.wait_for_url(pay_url)
    expect(page.locator(".pay-summary")).to_contain_text("$42.50")
    expect(page.locator("#pay-footer")).to_contain_text(
        f"Go to {payapp_server.base_url}/pay and enter statement ST-E2E-7"
    )

    fill_card(page, APPROVED_CARD)
    submit_payment(page, pay_url)
    expect(receipt_heading(page)).to_be_visible()
    assert page.evaluate("window.payappCspViolations") == []
    assert browser_problems == []


def test_the_lookup_page_and_its_answers_have_no_serious_accessibility_problems(
    page: Page, payapp_server: PayappServer, axe_source: str, browser_problems: list[str]
) -> None:
    page.set_viewport_size(PHONE)
    audit = AxeAudit(page, axe_source)
    page.goto(f"{payapp_server.base_url}/pay")
    audit.check("lookup form")
    page.get_by_role("button", name="Find my bill").click()  # both fields empty
    expect(page.get_by_label("Statement number")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("Please fix the highlighted fields")
    audit.check("lookup form, errors")
    page.get_by_label("Statement number").fill("NO-SUCH-STATEMENT")
    page.get_by_label("Last name or ZIP code").fill("Nobody")
    page.get_by_role("button", name="Find my bill").click()
    expect(page.get_by_role("alert")).to_contain_text("We couldn't find an open bill")
    audit.check("lookup, not found")
    audit.assert_clean()
    assert browser_problems == []
