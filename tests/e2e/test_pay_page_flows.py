"""Chromium on the patient's page through whole flows: one true message at a time, the receipt
names the card typed, the card fields line up, and no flow trips the Content Security Policy."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from .conftest import _running_server
from .test_https_payment import (
    APPROVED_CARD,
    DECLINED_CARD,
    fill_card,
    pay_button,
    receipt_heading,
    submit_payment,
)

if TYPE_CHECKING:
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]

MASTERCARD = "5105 1051 0510 5100"
PHONE = {"width": 390, "height": 844}
# Seen by the page itself, whatever the console says; installed before any page script runs.
RECORD_CSP_VIOLATIONS = """
window.payappCspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.payappCspViolations.push(e.effectiveDirective + ' ' + e.blockedURI + ' ' + e.sample);
});
"""
RATE_WINDOW_S = 10  # wide enough that three quick posts fall in one window on a busy machine


@pytest.fixture(scope="module")
def flow_server(tmp_path_factory, pytestconfig) -> Iterator[PayappServer]:
    # Its own server and limits: the session server's 10 payment posts a minute are shared by
    # every browser test, and a whole lock-out flow alone takes five.
    env = {"PAYAPP_RATELIMIT_PAY_SUBMIT": "100 per minute"}
    with _running_server(tmp_path_factory, pytestconfig, "pay-flows", env) as server:
        yield server


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory, pytestconfig) -> Iterator[PayappServer]:
    """Two payment posts per address per few seconds, so a third is answered 429."""
    env = {
        "PAYAPP_RATELIMIT_PAY_SUBMIT": f"2 per {RATE_WINDOW_S} seconds",
        "PAYAPP_RATELIMIT_STRATEGY": "moving-window",
    }
    with _running_server(tmp_path_factory, pytestconfig, "pay-tight", env) as server:
        yield server


@pytest.fixture
def watched(page: Page) -> dict[str, list[str]]:
    """The page's CSP violations (as its own listener saw them) and htmx's console errors."""
    page.set_viewport_size(PHONE)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    seen: dict[str, list[str]] = {"htmx": []}

    def on_console(message: ConsoleMessage) -> None:
        if "htmx:" in message.text:
            seen["htmx"].append(message.text)

    page.on("console", on_console)
    return seen


def csp_reports(server: PayappServer) -> int:
    db = server.env["PAYAPP_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM csp_report").fetchone()[0]


def assert_no_csp_violations(page: Page, server: PayappServer, reports_before: int) -> None:
    assert page.evaluate("window.payappCspViolations") == []
    assert csp_reports(server) == reports_before


def answered(page: Page, pay_url: str):
    """Press Pay once the form is ready again, and wait for the server's answer (the previous
    answer must be on screen before the next attempt, or a busy machine mixes them up)."""
    expect(pay_button(page)).to_be_enabled()
    pay_path = urlsplit(pay_url).path
    with page.expect_response(
        lambda r: r.request.method == "POST" and urlsplit(r.url).path == pay_path
    ) as response:
        submit_payment(page, pay_url)
    return response.value


def messages(page: Page):
    """Every message on screen: the pay result and the flash area."""
    return page.locator("#pay-result .alert, #pay-result .receipt, #flash .alert")


def test_a_decline_then_a_mastercard_leaves_one_true_receipt(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    reports_before = csp_reports(flow_server)
    pay_url = flow_server.create_link(reference="FLOW-1")
    page.goto(pay_url)
    expect(page.locator(".pay-summary")).to_contain_text("Pay by")

    fill_card(page, DECLINED_CARD)
    submit_payment(page, pay_url)
    expect(messages(page)).to_have_count(1)
    expect(messages(page)).to_contain_text("you were not charged")

    fill_card(page, MASTERCARD)
    submit_payment(page, pay_url)
    expect(receipt_heading(page)).to_be_visible()
    expect(messages(page)).to_have_count(1)  # the decline is gone
    expect(page.locator(".receipt")).to_contain_text("Mastercard ending 5100")
    # The words above and below the receipt follow the payment, without a reload.
    expect(page.locator(".pay-summary")).to_contain_text("Paid on")
    expect(page.locator(".pay-summary")).not_to_contain_text("Pay by")
    expect(page.locator("#pay-footer")).not_to_contain_text("before you pay")

    page.reload()
    expect(page.locator(".receipt")).to_contain_text("Mastercard ending 5100")
    assert_no_csp_violations(page, flow_server, reports_before)
    assert watched["htmx"] == []
    assert browser_problems == []


def test_the_decline_that_locks_the_link_shows_only_the_locked_message(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    reports_before = csp_reports(flow_server)
    pay_url = flow_server.create_link(reference="FLOW-2")
    page.goto(pay_url)
    for _ in range(4):
        fill_card(page, DECLINED_CARD)
        submit_payment(page, pay_url)
        expect(messages(page)).to_contain_text("Then press Pay again")
        expect(pay_button(page)).to_be_enabled()

    fill_card(page, DECLINED_CARD)
    submit_payment(page, pay_url)
    expect(messages(page)).to_have_count(1)
    expect(messages(page)).to_contain_text("this link is now locked")
    expect(messages(page)).not_to_contain_text("Try another card")
    expect(pay_button(page)).to_have_count(0)  # the form is retired with the card field

    assert watched["htmx"] == []  # e.g. htmx:oobErrorNoTarget #attempt-key
    assert_no_csp_violations(page, flow_server, reports_before)
    assert browser_problems == []


def test_a_rate_limit_message_and_a_later_decline_replace_each_other(
    page: Page, tight_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    reports_before = csp_reports(tight_server)
    pay_url = tight_server.create_link(reference="FLOW-3")
    page.goto(pay_url)
    too_many = re.compile("Too many attempts")

    for _ in range(2):
        fill_card(page, DECLINED_CARD)
        answered(page, pay_url)
        expect(messages(page)).to_contain_text("you were not charged")
    fill_card(page, DECLINED_CARD)
    assert answered(page, pay_url).status == 429
    expect(messages(page)).to_have_count(1)
    expect(messages(page)).to_contain_text(too_many)

    # Once the window has passed, the next answer replaces the rate-limit message.
    page.wait_for_timeout(RATE_WINDOW_S * 1000)
    fill_card(page, DECLINED_CARD)
    assert answered(page, pay_url).status == 200
    expect(messages(page)).to_have_count(1)
    expect(messages(page)).to_contain_text("you were not charged")

    assert_no_csp_violations(page, tight_server, reports_before)
    # htmx logs the 429 itself as a responseError; nothing else may go wrong.
    assert [m for m in watched["htmx"] if "responseError" not in m] == []
    assert [p for p in browser_problems if "429" not in p] == []


def test_the_short_card_fields_line_up_on_a_phone(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    page.goto(flow_server.create_link(reference="FLOW-4"))
    tops = {
        name: page.get_by_label(name, exact=True).bounding_box()["y"]
        for name in ("Expiration", "CVV", "ZIP code")
    }
    assert max(tops.values()) - min(tops.values()) < 1, tops
    assert page.get_by_label("Expiration", exact=True).is_visible()
    assert browser_problems == []


def test_approved_visa_still_reads_visa(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    pay_url = flow_server.create_link(reference="FLOW-5")
    page.goto(pay_url)
    fill_card(page, APPROVED_CARD)
    submit_payment(page, pay_url)
    expect(page.locator(".receipt")).to_contain_text("Visa ending 1111")
    assert browser_problems == []


# What a third-party script does (Square's card SDK sizes its container through the CSSOM, which
# CSP allows): after that, an element with an id carries a style attribute. When htmx swaps in a
# new element with the same id it copies the old one's "settle" attributes with setAttribute,
# which for `style` is an inline style the CSP refuses (a style-src-attr report). base.html's
# htmx-config settles class, width and height only.
STYLE_EVERY_ELEMENT_WITH_AN_ID = """
document.querySelectorAll('[id]').forEach(function (el) { el.style.outlineOffset = '0px'; });
"""


def test_swaps_after_a_script_styled_the_page_trip_no_csp_report(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    reports_before = csp_reports(flow_server)
    pay_url = flow_server.create_link(reference="FLOW-6")
    page.goto(pay_url)
    page.evaluate(STYLE_EVERY_ELEMENT_WITH_AN_ID)
    fill_card(page, DECLINED_CARD)
    submit_payment(page, pay_url)
    expect(messages(page)).to_contain_text("you were not charged")

    page.evaluate(STYLE_EVERY_ELEMENT_WITH_AN_ID)
    fill_card(page, APPROVED_CARD)
    submit_payment(page, pay_url)
    expect(receipt_heading(page)).to_be_visible()
    expect(page.locator(".pay-summary")).to_contain_text("Paid on")

    assert_no_csp_violations(page, flow_server, reports_before)
    assert [p for p in browser_problems if "Content Security Policy" not in p] == []


# --- wallets (issue 11) -------------------------------------------------------------------------


def test_the_demo_apple_pay_button_pays_through_the_same_form(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    reports_before = csp_reports(flow_server)
    pay_url = flow_server.create_link(reference="WALLET-1")
    page.goto(pay_url)
    apple = page.get_by_role("button", name="Apple Pay (demo)")
    google = page.get_by_role("button", name="Google Pay (demo)")
    expect(apple).to_be_visible()
    expect(google).to_be_visible()
    expect(page.get_by_label("Card number")).to_be_visible()  # the card field stays
    card_top = page.get_by_label("Card number").bounding_box()["y"]
    assert apple.bounding_box()["y"] < google.bounding_box()["y"] < card_top  # above the card
    pay_path = urlsplit(pay_url).path
    with page.expect_request(
        lambda r: r.method == "POST" and urlsplit(r.url).path == pay_path
    ) as post:
        apple.click()
    form = post.value.post_data or ""
    assert "source_id=cnon%3Ademo-apple-pay-ok" in form and "attempt_key=" in form
    assert "csrf_token=" in form
    expect(receipt_heading(page)).to_be_visible()
    expect(messages(page)).to_have_count(1)
    expect(page.locator("#wallet-buttons")).to_be_hidden()  # retired with the form
    assert_no_csp_violations(page, flow_server, reports_before)
    assert watched["htmx"] == []
    assert browser_problems == []


def test_a_spanish_patient_switches_without_script_help_and_pays(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    """The "Español" link is a plain link (no JS): the page, the decline and the receipt follow
    it, and the switched page still passes the CSP."""
    reports_before = csp_reports(flow_server)
    pay_url = flow_server.create_link(reference="FLOW-ES")
    page.goto(pay_url)
    page.get_by_role("link", name="Español").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator(".pay-summary")).to_contain_text("Pagar antes del")
    pagar = page.get_by_role("button", name=re.compile(r"^Pagar \$125\.00$"))

    fill_card(page, DECLINED_CARD, "es")
    expect(pagar).to_be_enabled()
    pagar.click()
    expect(messages(page)).to_contain_text("no se le cobró nada")

    fill_card(page, APPROVED_CARD, "es")
    expect(pagar).to_be_enabled()
    pagar.click()
    expect(page.get_by_role("heading", name="Su pago fue recibido")).to_be_visible()
    expect(page.locator(".receipt")).to_contain_text("Visa terminada en 1111")
    expect(page.locator(".pay-summary")).to_contain_text("Pagado el")
    assert_no_csp_violations(page, flow_server, reports_before)
    assert watched["htmx"] == []
    assert browser_problems == []


def test_a_spanish_patient_pays_with_a_wallet_button_and_gets_the_spanish_receipt(
    page: Page, flow_server: PayappServer, watched, browser_problems: list[str]
) -> None:
    """Issue 11's "Done when": a Spanish link (no switch pressed) shows the demo wallet buttons and
    the demo card field in Spanish; Apple Pay pays through the same form, naming the wallet, and
    the receipt page says so in Spanish."""
    reports_before = csp_reports(flow_server)
    pay_url = flow_server.create_link(reference="WALLET-ES", language="es")
    page.goto(pay_url)
    expect(page.locator("html")).to_have_attribute("lang", "es")
    apple = page.get_by_role("button", name="Apple Pay (demostración)")
    expect(apple).to_be_visible()
    expect(page.get_by_role("button", name="Google Pay (demostración)")).to_be_visible()
    expect(page.get_by_label("Número de tarjeta")).to_be_visible()
    expect(page.locator("#card-container")).to_contain_text("Modo de demostración")
    expect(page.get_by_text("Card number")).to_have_count(0)

    pay_path = urlsplit(pay_url).path
    with page.expect_request(
        lambda r: r.method == "POST" and urlsplit(r.url).path == pay_path
    ) as post:
        apple.click()
    form = post.value.post_data or ""
    assert "source_id=cnon%3Ademo-apple-pay-ok" in form and "wallet=apple_pay" in form
    expect(page.get_by_role("heading", name="Su pago fue recibido")).to_be_visible()
    expect(page.locator(".receipt")).to_contain_text("Apple Pay (Visa terminada en 1111)")
    expect(page.locator(".receipt")).to_contain_text("Monto pagado")
    expect(page.locator(".pay-summary")).to_contain_text("Pagado el")
    expect(page.locator("#wallet-buttons")).to_be_hidden()
    assert_no_csp_violations(page, flow_server, reports_before)
    assert watched["htmx"] == []
    assert browser_problems == []
