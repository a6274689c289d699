"""Chromium against payapp in Square mode, over TLS.

Square's CDN is unreachable here, so the browser is served a stand-in for
https://sandbox.web.squarecdn.com/v1/square.js (page.route): our demo card field exposed as
`window.Square`, the same attach()/tokenize() shape. Everything after tokenizing is real: the page's
CSP must admit the Square host, the form posts only the token, and the server charges through the
squareup SDK against the Square stand-in over HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, Route, expect

from .test_https_payment import (
    APPROVED_CARD,
    assert_card_number_not_sent,
    fill_card,
    pay_button,
    receipt_heading,
    submit_payment,
)

if TYPE_CHECKING:
    from payapp.devtools.square_standin import SquareStandin

    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]

SQUARE_JS = "https://sandbox.web.squarecdn.com/v1/square.js"
DEMO_CARD = Path(__file__).resolve().parents[2] / "static" / "js" / "demo-card.js"


def serve_square_js(route: Route) -> None:
    if route.request.url == SQUARE_JS:
        body = DEMO_CARD.read_text() + "\nwindow.Square = window.PayappDemoSquare;\n"
        route.fulfill(status=200, content_type="application/javascript", body=body)
    else:
        route.abort()  # no other Square resource exists offline


def test_patient_pays_through_square_in_chromium(
    page: Page,
    square_server: PayappServer,
    square_standin: SquareStandin,
    browser_problems: list[str],
) -> None:
    page.context.route("https://*.squarecdn.com/**", serve_square_js)
    pay_url = square_server.create_link(reference="SQ-2001")
    before = len(square_standin.charges)

    response = page.goto(pay_url)
    csp = response.all_headers()["content-security-policy"]
    assert "https://sandbox.web.squarecdn.com" in csp
    expect(page.locator(".demo-banner")).to_have_count(0)  # the stand-in card has its own note

    fill_card(page, APPROVED_CARD)
    post = submit_payment(page, pay_url)
    assert_card_number_not_sent(post, APPROVED_CARD)
    assert "source_id=cnon%3Acard-nonce-ok" in (post.post_data or "")
    expect(receipt_heading(page)).to_be_visible()
    expect(pay_button(page)).to_have_count(0)

    charges = square_standin.charges[before:]
    assert len(charges) == 1
    assert charges[0]["amount_money"] == {"amount": 12500, "currency": "USD"}
    assert charges[0]["reference_id"] and charges[0]["note"] == "Payment for statement SQ-2001"
    assert browser_problems == []
