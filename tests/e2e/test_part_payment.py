"""Chromium: a patient pays $50 of a $200 bill, comes back later and pays the rest; each
payment shows its own receipt and the page then says paid (issue 11, "Paying part now")."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from . import test_accessibility
from .test_accessibility import AxeAudit
from .test_https_payment import APPROVED_CARD, fill_card, receipt_heading
from .test_pay_page_flows import PHONE, RECORD_CSP_VIOLATIONS

if TYPE_CHECKING:
    from .conftest import PayappServer

# axe-core's session fixture, shared with the accessibility tests.
axe_source = test_accessibility.axe_source

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]


def test_a_patient_pays_50_of_200_and_later_the_rest(
    page: Page, payapp_server: PayappServer, axe_source: str, browser_problems: list[str]
) -> None:
    audit = AxeAudit(page, axe_source)
    page.set_viewport_size(PHONE)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    pay_url = payapp_server.create_link(reference="ST-PART-1", amount="200.00", min_payment="50")

    page.goto(pay_url)
    expect(page.locator(".pay-summary")).to_contain_text("$200.00")
    expect(page.get_by_label("Card number")).to_be_visible()
    audit.check("part payment choice")
    page.get_by_label("Pay another amount").check()
    page.get_by_label("Amount to pay now, in dollars").fill("10")
    fill_card(page, APPROVED_CARD)
    page.get_by_role("button", name="Pay now").click()
    # Below the minimum: the server's 422 answer is shown, the form stays for another try.
    expect(page.get_by_role("alert")).to_contain_text("Pay at least $50.00, or the full $200.00.")
    audit.check("part payment refused")
    page.get_by_label("Amount to pay now, in dollars").fill("50")
    page.get_by_role("button", name="Pay now").click()
    expect(receipt_heading(page)).to_be_visible()
    receipt = page.locator(".receipt")
    expect(receipt).to_contain_text("$50.00")
    expect(page.locator("#balance-left")).to_have_text("$150.00")
    expect(page.locator("#part-paid")).to_have_text(
        "You have paid $50.00 of $200.00. $150.00 is left to pay."
    )
    audit.check("part payment receipt")

    # Later: the link from the receipt opens the page for what is left.
    page.get_by_role("link", name="Pay the rest ($150.00)").click()
    page.wait_for_url(pay_url)
    expect(page.locator("#part-paid")).to_have_text(
        "You have paid $50.00 of $200.00. $150.00 is left to pay."
    )
    expect(page.get_by_label("Pay the full $150.00")).to_be_checked()
    audit.check("part paid page")
    expect(page.get_by_text("Pay the full $200.00")).to_have_count(0)
    fill_card(page, APPROVED_CARD)
    page.get_by_role("button", name="Pay now").click()
    expect(receipt_heading(page)).to_be_visible()
    expect(page.locator(".receipt")).to_contain_text("$150.00")
    expect(page.locator("#balance-left")).to_have_count(0)

    page.reload()
    expect(receipt_heading(page)).to_be_visible()
    expect(page.locator("#pay-form")).to_have_count(0)
    expect(page.locator(".pay-summary")).to_contain_text("$200.00")
    expect(page.locator(".pay-summary")).to_contain_text("Paid on")
    audit.assert_clean()
    assert page.evaluate("window.payappCspViolations") == []
    assert browser_problems == []


def test_wallets_pay_the_full_balance_and_another_amount_goes_by_card(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    """A wallet's sheet shows the amount it was set up with (the balance): choosing another
    amount and pressing a wallet button says to use the card and sends nothing."""
    page.set_viewport_size(PHONE)
    pay_url = payapp_server.create_link(reference="ST-PART-2", amount="200.00", min_payment="50")
    page.goto(pay_url)
    apple = page.get_by_role("button", name="Apple Pay (demo)")
    expect(apple).to_be_visible()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.get_by_label("Pay another amount").check()
    page.get_by_label("Amount to pay now, in dollars").fill("60")
    apple.click()
    expect(page.locator("#card-errors")).to_have_text(
        "Apple Pay and Google Pay pay the full $200.00. To pay another amount, use your card."
    )
    assert posts == []
    # The full balance by wallet goes through as before.
    page.get_by_label("Pay the full $200.00").check()
    apple.click()
    expect(receipt_heading(page)).to_be_visible()
    expect(page.locator(".receipt")).to_contain_text("$200.00")
    assert browser_problems == []
