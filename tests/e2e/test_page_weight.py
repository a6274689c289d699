"""The patient page in Chromium within issue 10's budget: the page and three files of ours (one
script), each file compressed and cacheable for a year, and the whole flow still pays under the
Content Security Policy with SRI. (Sizes and times are printed by bench/page_weight.py.)"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Response, expect

from .test_https_payment import APPROVED_CARD, fill_card, pay_button, receipt_heading

if TYPE_CHECKING:
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]


def test_the_pay_page_makes_at_most_four_own_requests_and_still_pays(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    pay_url = payapp_server.create_link(reference="WEIGHT-1", amount="42.00")
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(pay_url))
    own: list[Response] = []
    page.on("response", lambda r: own.append(r) if r.url.startswith(origin) else None)

    page.goto(pay_url)
    expect(pay_button(page)).to_be_enabled()
    expect(page.get_by_label("Card number")).to_be_visible()
    page.wait_for_load_state("networkidle")

    kinds = sorted(r.request.resource_type for r in own if "favicon" not in r.url)
    assert kinds == ["document", "script", "stylesheet"], [r.url for r in own]
    assert len(own) <= 4, [r.url for r in own]
    for response in own:
        headers = response.all_headers()
        if response.request.resource_type == "document":
            assert headers["cache-control"] == "no-store"
            continue
        assert urlsplit(response.url).path.startswith("/assets/"), response.url
        assert headers["cache-control"] == "public, max-age=31536000, immutable", response.url
        if not response.url.endswith(".svg"):  # a 277-byte icon is not worth compressing
            assert headers["content-encoding"] == "br", response.url

    fill_card(page, APPROVED_CARD)
    pay_button(page).click()
    expect(receipt_heading(page)).to_be_visible()
    assert browser_problems == []
