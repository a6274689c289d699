"""Accessibility in Chromium: axe-core on every page type, a payment made with the keyboard only,
and no sideways scrolling at 320 px wide or at 200 % zoom.

axe-core comes from npm for these tests only (tests/a11y/package.json, pinned in its lock file;
scripts/test runs `npm ci` there). It is evaluated through the DevTools protocol, which the
page's Content Security Policy does not govern, so the pages are checked under their real CSP.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyotp
import pytest
from playwright.sync_api import Page, expect

from .conftest import _running_server
from .test_https_payment import (
    APPROVED_CARD,
    CVV,
    DECLINED_CARD,
    EXPIRATION,
    ZIP_CODE,
    fill_card,
    pay_button,
    receipt_heading,
    submit_payment,
)

if TYPE_CHECKING:
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]

A11Y_DIR = Path(__file__).resolve().parents[1] / "a11y"
AXE_JS = A11Y_DIR / "node_modules" / "axe-core" / "axe.min.js"
# What fails a page: axe's two worst impacts. Moderate and minor findings are printed, not failed.
FAILING_IMPACTS = {"serious", "critical"}
PHONE = {"width": 390, "height": 844}
NARROW = {"width": 320, "height": 640}
# A 1280 × 800 window at 200 % zoom: 640 × 400 CSS pixels, each drawn with 2 device pixels.
ZOOM_200 = {"viewport": {"width": 640, "height": 400}, "device_scale_factor": 2}
TAB_LIMIT = 40  # more Tab presses than any of our pages has stops before the Pay button


# --- axe-core ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe.min.js from tests/a11y (installed with `npm ci` there if it is not yet)."""
    if not AXE_JS.exists():
        run = subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],  # noqa: S607
            cwd=A11Y_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, f"`npm ci` in tests/a11y failed:\n{run.stdout}\n{run.stderr}"
    return AXE_JS.read_text(encoding="utf-8")


def axe_findings(page: Page, axe_source: str) -> list[dict]:
    """axe's violations on the page as it is now (WCAG 2.x A and AA plus best practices)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source)
    return page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ['violations']});
          return result.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))
          }));
        }"""
    )


def describe(where: str, findings: list[dict]) -> str:
    """One readable block per rule: impact, rule, what it means, and each element with why."""
    lines = []
    for f in findings:
        lines.append(f"{where}: [{f['impact']}] {f['id']}: {f['help']}")
        for node in f["nodes"][:5]:
            why = " ".join(node["summary"].split())
            lines.append(f"    {node['target']}\n        {why}")
        if len(f["nodes"]) > 5:
            lines.append(f"    ... and {len(f['nodes']) - 5} more")
    return "\n".join(lines)


class AxeAudit:
    """Runs axe on each page visited; collects the serious and critical findings of all."""

    def __init__(self, page: Page, axe_source: str) -> None:
        self.page, self.axe_source = page, axe_source
        self.checked: list[str] = []
        self.failures: list[str] = []
        self.notes: list[str] = []

    def check(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        findings = axe_findings(self.page, self.axe_source)
        self.checked.append(name)
        bad = [f for f in findings if f["impact"] in FAILING_IMPACTS]
        rest = [f for f in findings if f["impact"] not in FAILING_IMPACTS]
        if bad:
            self.failures.append(describe(name, bad))
        if rest:
            self.notes.append(describe(name, rest))

    def assert_clean(self) -> None:
        if self.notes:
            print("axe, moderate and minor (not failed):\n" + "\n".join(self.notes))
        assert not self.failures, (
            "axe found serious or critical accessibility problems:\n" + "\n".join(self.failures)
        )


def test_the_axe_check_reports_a_serious_problem_when_there_is_one(
    page: Page, axe_source: str
) -> None:
    # Proves the harness itself: an image without alt text and a nameless button are critical.
    page.set_content('<html lang="en"><title>t</title><img src="data:,"><button></button></html>')
    audit = AxeAudit(page, axe_source)
    audit.check("bad page")
    with pytest.raises(AssertionError, match=r"(?s)\[critical\] image-alt.*button-name"):
        audit.assert_clean()


# --- The server and its links -----------------------------------------------------------------


@pytest.fixture(scope="module")
def a11y_server(tmp_path_factory, pytestconfig) -> Iterator[PayappServer]:
    # Its own server: the session server's 10 payment posts a minute are shared by every test.
    env = {"PAYAPP_RATELIMIT_PAY_SUBMIT": "100 per minute"}
    with _running_server(tmp_path_factory, pytestconfig, "a11y", env) as server:
        yield server


def database(server: PayappServer) -> sqlite3.Connection:
    return sqlite3.connect(server.env["PAYAPP_DATABASE_URL"].removeprefix("sqlite:///"))


def set_link(server: PayappServer, reference: str, **columns: object) -> None:
    """Put a link made by create-link into a state (expired, cancelled, locked) directly."""
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with database(server) as conn:
        conn.execute(
            f"UPDATE payment_link SET {assignments} WHERE reference = ?",  # noqa: S608 - our names
            (*columns.values(), reference),
        )


def link_id(server: PayappServer, reference: str) -> int:
    with database(server) as conn:
        return conn.execute(
            "SELECT id FROM payment_link WHERE reference = ?", (reference,)
        ).fetchone()[0]


def open_surges(server: PayappServer) -> None:
    """An open card-failure surge and a recovered message surge, so staff pages show both
    banners (what admins see when failures spike)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with database(server) as conn:
        for kind, open_kind, recovered in (
            ("payment", "payment", None),
            ("message", None, (now - timedelta(minutes=5)).isoformat(sep=" ")),
        ):
            conn.execute(
                "INSERT INTO failure_surge (kind, open_kind, failures, total, baseline_rate,"
                " threshold_rate, started_at, recovered_at)"
                " VALUES (?, ?, 12, 20, 0.05, 0.15, ?, ?)",
                (kind, open_kind, (now - timedelta(hours=1)).isoformat(sep=" "), recovered),
            )


# --- axe on every page type -------------------------------------------------------------------


def test_patient_pages_have_no_serious_accessibility_problems(
    page: Page, a11y_server: PayappServer, axe_source: str, browser_problems: list[str]
) -> None:
    page.set_viewport_size(PHONE)
    audit = AxeAudit(page, axe_source)

    pay_url = a11y_server.create_link(reference="A11Y-OPEN")
    page.goto(pay_url)
    expect(pay_button(page)).to_be_enabled()
    audit.check("pay page, open")

    fill_card(page, DECLINED_CARD)
    submit_payment(page, pay_url)
    expect(page.locator("#pay-result")).to_contain_text("you were not charged")
    audit.check("pay page, decline shown")

    fill_card(page, APPROVED_CARD)
    submit_payment(page, pay_url)
    expect(receipt_heading(page)).to_be_visible()
    audit.check("pay page, receipt (just paid)")
    page.reload()
    expect(receipt_heading(page)).to_be_visible()
    audit.check("pay page, paid (opened again)")

    for state, columns in (
        ("expired", {"status": "expired"}),
        ("cancelled", {"status": "cancelled"}),
        ("locked", {"status": "locked", "decline_count": 5}),
    ):
        url = a11y_server.create_link(reference=f"A11Y-{state.upper()}")
        set_link(a11y_server, f"A11Y-{state.upper()}", **columns)
        page.goto(url)
        expect(page.get_by_role("heading", level=1)).to_contain_text(state)
        audit.check(f"pay page, {state}")

    page.goto(f"{pay_url}/problem")
    audit.check("problem report form")
    page.get_by_label("Amount looks wrong").check()
    page.get_by_role("button", name=re.compile("Send")).click()
    expect(page).to_have_url(re.compile(r"/problem/sent$"))
    audit.check("problem report sent")

    audit.assert_clean()
    assert len(audit.checked) == 9
    assert browser_problems == []


def test_staff_pages_have_no_serious_accessibility_problems(
    page: Page, a11y_server: PayappServer, axe_source: str, browser_problems: list[str]
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    audit = AxeAudit(page, axe_source)
    a11y_server.create_link(reference="A11Y-DETAIL", amount="48.50", name="James Chen")
    detail_id = link_id(a11y_server, "A11Y-DETAIL")
    open_surges(a11y_server)
    with database(a11y_server) as conn:
        admin_id = conn.execute(
            "SELECT id FROM staff_user WHERE email = ?", (a11y_server.staff_email,)
        ).fetchone()[0]
    base = a11y_server.base_url

    page.goto(f"{base}/login")
    audit.check("login")
    page.get_by_label("Email").fill(a11y_server.staff_email)
    page.get_by_label("Password").fill(a11y_server.staff_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Set up two-step verification")).to_be_visible()
    audit.check("two-step set-up")
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_label("6-digit code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-step verification").click()
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    audit.check("recovery codes")
    page.get_by_role("link", name=re.compile("I have saved them")).click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("#surge-alerts .alert")).to_have_count(2)
    audit.check("dashboard, with surge alerts")

    for name, path in (
        ("links list", "/links"),
        ("links list, filtered", "/links?status=paid&q=nobody"),
        ("new link", "/links/new"),
        ("link detail", f"/links/{detail_id}"),
        ("problems", "/problems"),
        ("exports", "/exports"),
        ("users", "/users"),
        ("new user", "/users/new"),
        ("user detail", f"/users/{admin_id}"),
        ("your account", "/account"),
        ("change password", "/account/password"),
        ("audit log", "/audit"),
        ("security", "/security"),
    ):
        page.goto(f"{base}{path}")
        audit.check(name)

    page.goto(f"{base}/links/new")
    page.get_by_role("button", name="Create link").click()  # empty: the errors are shown
    expect(page.locator(".field-error:not(:empty)").first).to_be_visible()
    audit.check("new link, with errors")

    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Email").fill(a11y_server.staff_email)
    page.get_by_label("Password").fill(a11y_server.staff_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/login/code"))
    audit.check("login, second step")

    audit.assert_clean()
    assert len(audit.checked) == 19
    assert browser_problems == []


# --- Keyboard only ----------------------------------------------------------------------------


def tab_to(page: Page, label: str) -> None:
    """Press Tab until the focused element's accessible label (or text) is ``label``."""
    for _ in range(TAB_LIMIT):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement;
                 return (e.labels && e.labels[0] ? e.labels[0].textContent : e.textContent || '')
                   .trim(); }"""
        )
        if focused == label or (label == "Pay" and focused.startswith("Pay ")):
            return
    pytest.fail(f"{TAB_LIMIT} presses of Tab never reached {label!r}")


def pay_by_keyboard(page: Page, card_number: str) -> None:
    page.locator("body").focus()
    for label, text in (
        ("Card number", card_number),
        ("Expiration", EXPIRATION),
        ("CVV", CVV),
        ("ZIP code", ZIP_CODE),
    ):
        tab_to(page, label)
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(text)
    tab_to(page, "Pay")
    page.keyboard.press("Enter")


def test_a_patient_pays_with_the_keyboard_alone_and_hears_each_answer(
    page: Page, a11y_server: PayappServer, browser_problems: list[str]
) -> None:
    page.set_viewport_size(PHONE)
    page.goto(a11y_server.create_link(reference="A11Y-KEYS"))
    expect(pay_button(page)).to_be_enabled()
    # Screen readers announce what changes inside a live region: the answers land in one.
    result = page.locator("#pay-result")
    expect(result).to_have_attribute("aria-live", "polite")

    pay_by_keyboard(page, DECLINED_CARD)
    expect(result.get_by_role("alert")).to_contain_text("Payment declined — you were not charged")

    expect(pay_button(page)).to_be_enabled()
    pay_by_keyboard(page, APPROVED_CARD)
    expect(result.get_by_role("heading", name="Payment received")).to_be_visible()
    expect(result).to_contain_text("Visa ending 1111")
    # The receipt takes the focus, so a screen reader reads it next and Tab goes on from it.
    assert page.evaluate("document.activeElement.closest('.receipt') !== null")
    assert browser_problems == []


# --- 320 px wide and 200 % zoom ---------------------------------------------------------------


def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its window (0 = no horizontal scrolling)."""
    return page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )


def assert_fits(page: Page, where: str) -> None:
    overflow = sideways_overflow(page)
    # The innermost elements sticking out on the right, to say what to fix.
    culprits = page.evaluate(
        """() => { const w = document.scrollingElement.clientWidth;
             return [...document.querySelectorAll('body *')]
               .filter(e => e.getBoundingClientRect().right > w + 0.5)
               .filter(e => ![...e.children].some(c => c.getBoundingClientRect().right > w + 0.5))
               .slice(0, 5)
               .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                 + (typeof e.className === 'string' && e.className
                    ? '.' + e.className.split(' ').join('.') : '')
                 + ' right=' + Math.round(e.getBoundingClientRect().right)); }"""
    )
    assert overflow <= 0, f"{where}: the page scrolls sideways by {overflow}px: {culprits}"


FRONT_DESK = ("desk@maplestreet.example", "a11y-front-desk-password-2026")


@pytest.fixture(scope="module")
def front_desk(a11y_server: PayappServer) -> tuple[str, str]:
    """A front-desk account (no second step to set up), made once per module."""
    email, password = FRONT_DESK
    a11y_server.flask(
        "create-user", email, "--role", "staff", extra_env={"PAYAPP_PASSWORD": password}
    )
    return FRONT_DESK


def staff_login(page: Page, server: PayappServer, account: tuple[str, str]) -> None:
    page.goto(f"{server.base_url}/login")
    page.get_by_label("Email").fill(account[0])
    page.get_by_label("Password").fill(account[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


@pytest.mark.parametrize(
    "screen",
    [{"viewport": NARROW}, ZOOM_200],
    ids=["320px", "zoom200"],
)
def test_pages_reflow_without_sideways_scrolling(
    browser, browser_context_args: dict, a11y_server: PayappServer, front_desk, screen: dict
) -> None:
    context = browser.new_context(**{**browser_context_args, **screen})
    try:
        page = context.new_page()
        page.goto(a11y_server.create_link(reference=f"A11Y-NARROW-{screen['viewport']['width']}"))
        button = pay_button(page)
        expect(button).to_be_enabled()
        assert_fits(page, "pay page")
        button.scroll_into_view_if_needed()
        expect(button).to_be_in_viewport()
        box = button.bounding_box()
        width = page.evaluate("document.scrollingElement.clientWidth")
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width

        staff_login(page, a11y_server, front_desk)
        assert_fits(page, "dashboard")
        page.goto(f"{a11y_server.base_url}/links")
        expect(page.get_by_role("heading", name="Payment links")).to_be_visible()
        assert_fits(page, "links list")
    finally:
        context.close()
