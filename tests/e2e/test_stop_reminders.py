"""Chromium on the page a reminder email's "stop reminders" link opens, against gunicorn in
production mode over TLS: opening it changes nothing, the button stops reminders (flask-wtf's
HTTPS Referer check passes), and neither page trips the Content Security Policy."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from itsdangerous import URLSafeSerializer
from playwright.sync_api import Page, expect

from payapp.links import TOKEN_SALT
from payapp.reminders import OPT_OUT_SALT

if TYPE_CHECKING:
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]


def opt_out_url(server: PayappServer, pay_url: str) -> str:
    """What run-jobs puts in a reminder email: the pay token's [public id, expiry] signed with
    the opt-out salt (read back from the pay URL the CLI printed)."""
    secret = server.env["PAYAPP_SECRET_KEY"]
    token = urlsplit(pay_url).path.rsplit("/", 1)[1]
    payload = URLSafeSerializer(secret, salt=TOKEN_SALT).loads(token)
    opt_out = URLSafeSerializer(secret, salt=OPT_OUT_SALT).dumps(payload)
    return f"{server.base_url}/reminders/stop/{opt_out}"


def reminders_stopped(server: PayappServer, reference: str) -> bool:
    db = server.env["PAYAPP_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        query = "SELECT reminders_stopped_at FROM payment_link WHERE reference = ?"
        return conn.execute(query, (reference,)).fetchone()[0] is not None


def test_the_stop_reminders_link_asks_then_stops_under_the_csp(
    page: Page, payapp_server: PayappServer, browser_problems: list[str]
) -> None:
    url = opt_out_url(payapp_server, payapp_server.create_link(reference="E2E-STOP-1"))

    page.goto(url)
    expect(page.get_by_role("heading", name="Stop reminders for this bill?")).to_be_visible()
    assert not reminders_stopped(payapp_server, "E2E-STOP-1"), "opening the link stops nothing"

    page.get_by_role("button", name="Stop reminders").click()
    expect(page.get_by_role("heading", name="Reminders stopped")).to_be_visible()
    assert page.url == url  # redirected back to the same address (303)
    assert reminders_stopped(payapp_server, "E2E-STOP-1")

    page.goto(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"))
    expect(
        page.get_by_role("heading", name="This link to stop reminders is not valid.")
    ).to_be_visible()
    assert browser_problems == []
