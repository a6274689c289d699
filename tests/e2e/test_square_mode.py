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
    csp_directives,
    fill_card,
    pay_button,
    receipt_heading,
    submit_payment,
)

if TYPE_CHECKING:
    from tests.support.square_standin import SquareStandin

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


ISSUER = "https://acs.issuer.example"  # a card issuer's 3-D Secure host: on no list of ours
CHALLENGE_PAGE = "<!doctype html><title>3-D Secure</title><h1>Verify your purchase</h1>"
# What Square's SDK does when the issuer asks for a challenge: it adds the issuer's page in a frame.
# A script from the same host is added too: the CSP must refuse it.
ADD_CHALLENGE = """([issuer]) => new Promise((resolve) => {
  document.addEventListener('securitypolicyviolation', (e) => resolve({
    directive: e.effectiveDirective, blocked: e.blockedURI
  }));
  const frame = document.createElement('iframe');
  frame.id = 'issuer-challenge';
  frame.src = issuer + '/acs/challenge';
  document.body.append(frame);
  const script = document.createElement('script');
  script.src = issuer + '/acs/collect.js';
  document.head.append(script);
})"""


def test_a_3ds_challenge_frame_from_an_issuer_loads_but_its_scripts_stay_blocked(
    page: Page, square_server: PayappServer, browser_problems: list[str]
) -> None:
    served: list[str] = []

    def serve_issuer(route: Route) -> None:
        served.append(route.request.url)
        if route.request.url.endswith("/acs/challenge"):
            route.fulfill(status=200, content_type="text/html", body=CHALLENGE_PAGE)
        else:
            body = "window.issuerScriptRan = true;"
            route.fulfill(status=200, content_type="application/javascript", body=body)

    page.context.route("https://*.squarecdn.com/**", serve_square_js)
    page.context.route(f"{ISSUER}/**", serve_issuer)
    # The refused script's CSP report stays in the browser: the shared server must not count it.
    page.context.route("**/csp-report", lambda route: route.fulfill(status=204))
    page.goto(square_server.create_link(reference="SQ-3DS1"))
    expect(pay_button(page)).to_be_enabled()  # Square's script ran: the card field is attached

    violation = page.evaluate(ADD_CHALLENGE, [ISSUER])

    challenge = page.frame_locator("#issuer-challenge")
    expect(challenge.get_by_role("heading", name="Verify your purchase")).to_be_visible()
    assert violation == {"directive": "script-src-elem", "blocked": f"{ISSUER}/acs/collect.js"}
    assert page.evaluate("window.issuerScriptRan") is None
    assert served == [f"{ISSUER}/acs/challenge"]  # the script was never even fetched
    assert len(browser_problems) == 1 and "collect.js" in browser_problems[0], browser_problems


def test_frames_are_refused_everywhere_but_the_square_mode_pay_page(
    page: Page, payapp_server: PayappServer, square_server: PayappServer
) -> None:
    demo_pay = page.goto(payapp_server.create_link(reference="DEMO-3DS"))
    square_login = page.goto(f"{square_server.base_url}/login")
    for response in (demo_pay, square_login):
        directives = csp_directives(response.all_headers()["content-security-policy"])
        assert directives["frame-src"] == ["'none'"], response.url
