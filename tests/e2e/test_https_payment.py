"""Chromium against the production-mode app over real TLS: staff login and the patient's payment.

These prove what plain-HTTP tests cannot: the Secure session cookie survives a round trip,
flask-wtf's Referer check (strict under HTTPS) lets the login form through, the nonce-based CSP
still lets htmx and the card form run, and the card number never reaches our server.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus, urlsplit

import pyotp
import pytest
from playwright.sync_api import Locator, Page, Request, expect

if TYPE_CHECKING:  # for annotations only: conftest modules aren't meant to be imported
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]

# Demo gateway test cards: the first is approved, the second declined.
APPROVED_CARD = "4111 1111 1111 1111"
DECLINED_CARD = "4000 0000 0000 0002"
EXPIRATION = "12/34"
CVV = "111"
ZIP_CODE = "94103"

ONE_YEAR_S = 31_536_000
PAY_BUTTON_NAME = re.compile(r"^Pay\b")  # e.g. "Pay $125.00"
# The receipt names the brand, then the last 4: "Visa ending 1111". Matching the two together
# keeps a "test card 4111 1111 1111 1111" hint elsewhere on the page from passing for it.
APPROVED_CARD_ON_RECEIPT = re.compile(r"visa\D{0,40}1111", re.IGNORECASE)


def pay_button(page: Page) -> Locator:
    return page.get_by_role("button", name=PAY_BUTTON_NAME)


def receipt_heading(page: Page) -> Locator:
    return page.get_by_role("heading", name="Payment received")


# The demo card field's labels in each language (issue 11: the page gives them to demo-card.js).
CARD_LABELS = {
    "en": ("Card number", "Expiration", "CVV", "ZIP code"),
    "es": ("Número de tarjeta", "Vencimiento", "CVV", "Código postal"),
}


def fill_card(page: Page, card_number: str, language: str = "en") -> None:
    number, expiration, cvv, zip_code = CARD_LABELS[language]
    page.get_by_label(number).fill(card_number)
    page.get_by_label(expiration).fill(EXPIRATION)
    page.get_by_label(cvv).fill(CVV)
    page.get_by_label(zip_code).fill(ZIP_CODE)


def submit_payment(page: Page, pay_url: str) -> Request:
    """Click the Pay button and return the POST it sends to /pay/<token>."""
    pay_path = urlsplit(pay_url).path
    with page.expect_request(
        lambda request: request.method == "POST" and urlsplit(request.url).path == pay_path
    ) as payment_post:
        pay_button(page).click()
    return payment_post.value


def assert_card_number_not_sent(request: Request, card_number: str) -> None:
    """The card field must tokenize in the browser: no card digits in what reaches our server."""
    body = request.post_data or ""
    # Form encoding turns "4111 1111" into "4111+1111": look in the decoded body too.
    decoded = unquote_plus(body)
    for leak in (card_number.replace(" ", ""), card_number[:9]):  # all digits; first two groups
        assert leak not in body and leak not in decoded, (
            f"the POST to {request.url} carries the card number ({leak!r}): {body!r}"
        )


def csp_directives(policy: str) -> dict[str, list[str]]:
    """Parse a Content-Security-Policy header into {directive: [sources]}."""
    directives = {}
    for directive in policy.split(";"):
        name, *sources = directive.split() or [""]
        if name:
            directives[name.lower()] = sources
    return directives


def test_staff_logs_in_over_https_with_a_secure_httponly_session_cookie(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    page.goto(f"{payapp_server.base_url}/login")
    page.get_by_label("Email").fill(payapp_server.staff_email)
    page.get_by_label("Password").fill(payapp_server.staff_password)
    page.get_by_role("button", name="Log in").click()

    # The CLI made an admin, and admins must set up two-step verification before anything else:
    # the set-up page shows the QR code (inline SVG under the strict CSP) and the key in text,
    # from which this "authenticator app" computes its code.
    expect(page).to_have_url(re.compile(r"/account/two-step$"))
    expect(page.get_by_role("heading", name="Set up two-step verification")).to_be_visible()
    expect(page.locator("figure.qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-step verification").click()
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    expect(page.locator(".recovery-codes li")).to_have_count(10)
    page.get_by_role("link", name=re.compile("I have saved them")).click()

    # Landing here means the CSRF token (kept in the Secure session cookie) came back with each
    # POST and the HTTPS-only Referer check passed; either failing gives a 400 instead.
    expect(page).to_have_url(re.compile(r"/dashboard(\?.*)?$"))
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    session_cookies = [c for c in page.context.cookies() if "session" in c["name"].lower()]
    assert session_cookies, f"no session cookie after logging in: {page.context.cookies()}"
    for cookie in session_cookies:
        assert cookie["secure"], f"session cookie without Secure: {cookie}"
        assert cookie["httpOnly"], f"session cookie without HttpOnly: {cookie}"

    # Next time, login takes the password and then a code (the next step's: the one used to
    # enrol is refused a second time).
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").fill(payapp_server.staff_email)
    page.get_by_label("Password").fill(payapp_server.staff_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_label("Authentication code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify and log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    assert browser_problems == []


def test_patient_pays_over_https_in_chromium(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    pay_url = payapp_server.create_link(reference="INV-1001")

    page.goto(pay_url)
    link_details = page.locator("body")
    expect(link_details).to_contain_text("$125.00")
    expect(link_details).to_contain_text("INV-1001")
    expect(link_details).to_contain_text("Jane")
    expect(link_details).not_to_contain_text("Doe")  # a first name only, for privacy

    fill_card(page, APPROVED_CARD)
    payment_post = submit_payment(page, pay_url)

    expect(receipt_heading(page)).to_be_visible()
    expect(page.locator("body")).to_contain_text(APPROVED_CARD_ON_RECEIPT)
    assert_card_number_not_sent(payment_post, APPROVED_CARD)

    # The link is paid now: coming back shows the receipt and offers no second payment.
    page.reload()
    expect(receipt_heading(page)).to_be_visible()
    expect(pay_button(page)).to_have_count(0)

    assert browser_problems == []


def test_patient_retries_after_a_declined_card_and_pays(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    pay_url = payapp_server.create_link(reference="INV-1002")
    page.goto(pay_url)

    fill_card(page, DECLINED_CARD)
    declined_post = submit_payment(page, pay_url)

    declined_notice = page.get_by_text(re.compile("declined", re.IGNORECASE)).filter(visible=True)
    expect(declined_notice.first).to_be_visible()
    expect(receipt_heading(page)).to_have_count(0)
    assert_card_number_not_sent(declined_post, DECLINED_CARD)

    # The form stays usable: a second card goes through on the same link.
    expect(pay_button(page)).to_be_enabled()
    fill_card(page, APPROVED_CARD)
    retry_post = submit_payment(page, pay_url)

    expect(receipt_heading(page)).to_be_visible()
    expect(page.locator("body")).to_contain_text(APPROVED_CARD_ON_RECEIPT)
    assert_card_number_not_sent(retry_post, APPROVED_CARD)

    assert browser_problems == []


def test_pay_page_sends_strict_security_headers_over_https(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    pay_url = payapp_server.create_link(reference="INV-1003")

    response = page.goto(pay_url)
    assert response is not None and response.ok, response
    # all_headers(), not headers: the latter leaves out security-related headers.
    headers = response.all_headers()

    # Plain HTTP can't reach a TLS-only port, so HSTS is how forced HTTPS shows here.
    hsts = headers.get("strict-transport-security", "")
    max_age = re.search(r"max-age=(\d+)", hsts)
    assert max_age and int(max_age.group(1)) >= ONE_YEAR_S, f"Strict-Transport-Security: {hsts!r}"

    policy = headers.get("content-security-policy", "")
    directives = csp_directives(policy)
    assert any(source.startswith("'nonce-") for source in directives.get("script-src", [])), (
        f"script-src has no nonce: {policy!r}"
    )
    assert directives.get("frame-ancestors") == ["'none'"], f"frame-ancestors: {policy!r}"
    assert "unsafe-inline" not in policy, policy
    assert "unsafe-eval" not in policy, policy

    assert headers.get("referrer-policy") == "same-origin"
    assert "no-store" in headers.get("cache-control", ""), headers.get("cache-control")
    assert headers.get("x-content-type-options") == "nosniff"

    assert browser_problems == []
