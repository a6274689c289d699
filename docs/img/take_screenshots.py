"""Retake the README's screenshots against a running demo (`scripts/run` in another terminal).

    .venv/bin/python docs/img/take_screenshots.py [http://127.0.0.1:5000]

It logs in as the demo front desk, creates four links (one paid with a test card, one
cancelled), then saves docs/img/pay-page-phone.png and docs/img/staff-links.png. Each run adds
four more links to the demo database; start from a fresh instance/ for a clean list.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright's own builds are not needed
FRONT_DESK = ("frontdesk@example.com", "demo-password-2026")
PATIENTS = [
    ("Maria Lopez", "maria@example.com", "125.00", "ST-10482"),
    ("James Chen", "james@example.com", "48.50", "ST-10483"),
    ("Aisha Khan", "", "310.00", "ST-10484"),
    ("Tom Becker", "tom@example.com", "75.00", "ST-10485"),
]


def create_link(page: Page, base: str, name: str, email: str, amount: str, ref: str) -> str:
    """Create a link through the staff form; return the patient URL shown on its page."""
    page.goto(f"{base}/links/new")
    page.get_by_label("Patient name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Amount").fill(amount)
    page.get_by_label("Statement or invoice number").fill(ref)
    if not email:
        page.get_by_label("Send the link to the patient now").uncheck()
    page.get_by_role("button", name="Create link").click()
    return page.locator("#patient-url").input_value()


def pay(page: Page, url: str, card: str) -> None:
    page.goto(url)
    page.get_by_label("Card number").fill(card)
    page.get_by_label("Expiration").fill("12/34")
    page.get_by_label("CVV").fill("111")
    page.get_by_label("ZIP code").fill("94103")
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_role("heading", name="Payment received")).to_be_visible()


def main(base: str) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        desk = browser.new_page(viewport={"width": 1100, "height": 560})
        desk.goto(f"{base}/login")
        desk.get_by_label("Email").fill(FRONT_DESK[0])
        desk.get_by_label("Password").fill(FRONT_DESK[1])
        desk.get_by_role("button", name="Log in").click()
        expect(desk.get_by_role("heading", name="Payment links")).to_be_visible()

        urls = [create_link(desk, base, *patient) for patient in PATIENTS]
        desk.get_by_role("button", name="Cancel link").click()  # Tom Becker's, the last one

        phone = browser.new_page(viewport={"width": 375, "height": 740}, is_mobile=True)
        pay(phone, urls[1], "4111 1111 1111 1111")
        phone.goto(urls[0])
        expect(phone.get_by_role("button", name="Pay")).to_be_enabled()
        phone.screenshot(path=HERE / "pay-page-phone.png", full_page=True)

        desk.goto(f"{base}/links")
        desk.screenshot(path=HERE / "staff-links.png")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:5000")
