"""Chromium through "Send me a new link", against gunicorn in production mode over TLS: the
patient presses the button on an expired link's page, the front desk reissues from the
dashboard with one click, and the new link's page opens and pays, all under the CSP."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from .conftest import _running_server
from .test_https_payment import APPROVED_CARD, fill_card, pay_button, receipt_heading

if TYPE_CHECKING:
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]

FRONT_DESK = ("desk@maplestreet.example", "newlink-front-desk-password-2026")


@pytest.fixture(scope="module")
def desk_server(tmp_path_factory, pytestconfig) -> Iterator[PayappServer]:
    with _running_server(tmp_path_factory, pytestconfig, "new-link") as server:
        server.flask(
            "create-user", FRONT_DESK[0], "--role", "staff",
            extra_env={"PAYAPP_PASSWORD": FRONT_DESK[1]},
        )  # fmt: skip
        yield server


def expire(server: PayappServer, reference: str) -> None:
    """What run-jobs does to a link past its expiry."""
    db = server.env["PAYAPP_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE payment_link SET status = 'expired' WHERE reference = ?", (reference,))


def test_an_expired_link_yields_a_new_link_after_the_front_desk_reissues_it(
    page: Page, desk_server: PayappServer, browser_problems: list[str]
) -> None:
    old_url = desk_server.create_link(reference="E2E-NEW-1", name="Nora Newlink")
    expire(desk_server, "E2E-NEW-1")

    page.goto(old_url)
    expect(page.get_by_role("heading", name="This payment link has expired")).to_be_visible()
    expect(page.get_by_text("j•••@example.com").first).to_be_visible()
    page.get_by_role("button", name="Send me a new link").click()
    expect(page.get_by_text("We've asked the front desk to send you a new link")).to_be_visible()
    expect(page.get_by_role("button", name="Send me a new link")).to_have_count(0)

    page.goto(f"{desk_server.base_url}/login")
    page.get_by_label("Email").fill(FRONT_DESK[0])
    page.get_by_label("Password").fill(FRONT_DESK[1])
    page.get_by_role("button", name="Log in").click()
    panel = page.locator("#link-requests")
    expect(panel).to_contain_text("Patients asking for a new link")
    expect(page.locator("#link-request-count")).to_have_text("1")
    row = panel.get_by_role("row").filter(has_text="Nora Newlink")
    row.get_by_role("button", name="Reissue and send").click()
    expect(page.get_by_text("Sent by email to jane@example.com")).to_be_visible()
    new_url = page.locator("#patient-url").input_value()
    assert new_url != old_url

    page.goto(new_url)
    fill_card(page, APPROVED_CARD)
    pay_button(page).click()
    expect(receipt_heading(page)).to_be_visible()
    assert browser_problems == []
