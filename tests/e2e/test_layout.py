"""What the screenshots showed unfinished, measured in Chromium's layout (not in pixels of an
image): rows with a Cancel button as tall as rows without, the dashboard's period labels and
controls on one line each with Show, and the new-link form's legend inside its box."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from .conftest import _running_server

if TYPE_CHECKING:
    from .conftest import PayappServer

pytestmark = [pytest.mark.e2e, pytest.mark.only_browser("chromium")]

FRONT_DESK = ("desk@maplestreet.example", "layout-front-desk-password-2026")
DESKTOP = {"width": 1280, "height": 800}


@pytest.fixture(scope="module")
def layout_server(tmp_path_factory, pytestconfig) -> Iterator[PayappServer]:
    with _running_server(tmp_path_factory, pytestconfig, "layout") as server:
        server.flask(
            "create-user", FRONT_DESK[0], "--role", "staff",
            extra_env={"PAYAPP_PASSWORD": FRONT_DESK[1]},
        )  # fmt: skip
        yield server


def log_in(page: Page, server: PayappServer) -> None:
    page.set_viewport_size(DESKTOP)
    page.goto(f"{server.base_url}/login")
    page.get_by_label("Email").fill(FRONT_DESK[0])
    page.get_by_label("Password").fill(FRONT_DESK[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} is not laid out"
    return found


def test_rows_with_a_cancel_button_are_as_tall_as_rows_without(
    page: Page, layout_server: PayappServer
) -> None:
    layout_server.create_link(reference="LAYOUT-OPEN", name="Open Patient")
    layout_server.create_link(reference="LAYOUT-GONE", name="Expired Patient")
    db = layout_server.env["PAYAPP_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE payment_link SET status = 'expired' WHERE reference = 'LAYOUT-GONE'")
        ids = dict(conn.execute("SELECT reference, id FROM payment_link"))
    log_in(page, layout_server)
    page.goto(f"{layout_server.base_url}/links")
    open_row, expired_row = f"#link-row-{ids['LAYOUT-OPEN']}", f"#link-row-{ids['LAYOUT-GONE']}"
    expect(page.locator(open_row).get_by_role("button", name="Cancel")).to_be_visible()
    expect(page.locator(expired_row).get_by_role("button")).to_have_count(0)
    assert box(page, open_row)["height"] == pytest.approx(box(page, expired_row)["height"], abs=0.5)
    # Still a target of at least 24 x 24 CSS pixels (WCAG 2.2, 2.5.8).
    cancel = box(page, f"{open_row} button")
    assert cancel["height"] >= 24 and cancel["width"] >= 24
    # The status select lines up with the table's right edge (no empty third column).
    assert box(page, "#link-status")["x"] + box(page, "#link-status")["width"] == pytest.approx(
        box(page, "table.table")["x"] + box(page, "table.table")["width"], abs=0.5
    )


def test_the_dashboard_period_form_lines_up(page: Page, layout_server: PayappServer) -> None:
    log_in(page, layout_server)
    labels = [box(page, f"label[for={name}]")["y"] for name in ("period-choice", "period-from")]
    labels.append(box(page, "label[for=period-to]")["y"])
    assert max(labels) - min(labels) < 0.5, labels
    controls = [box(page, f"#{name}") for name in ("period-choice", "period-from", "period-to")]
    controls.append(box(page, "form.dashboard-period button"))
    bottoms = [c["y"] + c["height"] for c in controls]
    tops = [c["y"] for c in controls]
    assert max(bottoms) - min(bottoms) < 0.5, bottoms
    assert max(tops) - min(tops) < 0.5, tops


def test_the_send_to_legend_sits_inside_its_box(page: Page, layout_server: PayappServer) -> None:
    log_in(page, layout_server)
    page.goto(f"{layout_server.base_url}/links/new")
    group = page.get_by_role("group", name="Send to")
    expect(group).to_have_accessible_description(
        "Email, mobile, or both. Not needed for a link shown only as a QR code."
    )
    send_to = "fieldset[aria-describedby='send-to-hint']"
    fieldset, legend = box(page, send_to), box(page, f"{send_to} > legend")
    assert legend["y"] > fieldset["y"] + 1  # below the top border, not straddling it
    assert legend["x"] > fieldset["x"] + 1
