"""CSV exports (issue 9): clinic-local date ranges, formula injection neutralised, streamed in
keyset batches, staff only, each download audited."""

from __future__ import annotations

import csv
import io
import types
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from payapp import exports
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.links import LinkDraft, LinkRules, create_link
from payapp.models import Payment, PaymentLink

from .conftest import audit_actions, staff_post, submit_card

NY = Clinic("Bright Smile Dental", "(212) 555-0100", "America/New_York")


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def make_link(app, when: datetime, **fields) -> int:
    values = {"patient_name": "Jane Q Doe", "email": "jane@example.com", "amount": "125.00"}
    values.update(fields)
    with app.app_context():
        rules = LinkRules.from_config(app.config)
        return create_link(get_session(), LinkDraft(**values), rules, now=when).id


# --- the date range ---------------------------------------------------------------------------


def test_a_range_spans_the_clinics_midnights_across_a_daylight_saving_change():
    dates = exports.parse_range("2025-03-09", "2025-03-09", NY)  # clocks go forward at 2 AM
    assert dates.start == datetime(2025, 3, 9, 5, 0, tzinfo=UTC)
    assert dates.end == datetime(2025, 3, 10, 4, 0, tzinfo=UTC)  # a 23-hour day


@pytest.mark.parametrize(
    ("first", "last", "message"),
    [
        ("", "2025-03-01", "Choose a start date."),
        ("2025-03-01", "", "Choose an end date."),
        ("03/01/2030", "2025-03-01", "use year-month-day"),
        ("2025-03-02", "2025-03-01", "The start date is after the end date."),
        ("2025-01-01", "2026-01-02", "Export at most 366 days at a time"),
    ],
)
def test_a_bad_range_is_refused_with_a_clear_reason(first, last, message):
    with pytest.raises(exports.ExportError, match=message.replace("(", r"\(")):
        exports.parse_range(first, last, NY)


def test_the_page_explains_a_bad_range_with_422_and_keeps_what_was_typed(app, staff):
    response = staff.get("/exports/links.csv?from=2025-03-09&to=2025-03-01")
    assert response.status_code == 422
    assert "The start date is after the end date." in response.text
    assert 'value="2025-03-09"' in response.text
    assert "export.downloaded" not in audit_actions(app)


# --- links ------------------------------------------------------------------------------------


def test_links_export_has_clinic_local_times_money_both_ways_and_no_description(app, staff):
    # 02:30 UTC on March 6 is 21:30 on March 5 in New York: it belongs to March 5.
    make_link(
        app, datetime(2025, 3, 6, 2, 30, tzinfo=UTC), description="extraction", reference="INV-7"
    )
    make_link(app, datetime(2025, 3, 6, 5, 30, tzinfo=UTC))  # March 6 locally: outside

    response = staff.get("/exports/links.csv?from=2025-03-01&to=2025-03-05")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "links_2025-03-01_to_2025-03-05.csv" in response.headers["Content-Disposition"]
    [row] = rows(response.text)
    assert row["created"] == "2025-03-05T21:30:00-05:00"
    assert (row["amount"], row["amount_cents"], row["currency"]) == ("125.00", "12500", "USD")
    assert row["reference"] == "INV-7" and row["email"] == "jane@example.com"
    assert row["status"] == "expired"  # past its expiry now, though stored open
    assert "extraction" not in response.text and "description" not in response.text
    assert audit_actions(app)[-1] == "export.downloaded"


def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(app):
    lines = list(
        exports._line(v) for v in (["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "ok"],)
    )
    [cells] = list(csv.reader(io.StringIO(lines[0])))
    assert cells == ["'=HYPERLINK(1)", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "ok"]


def test_a_patient_name_typed_as_a_formula_is_exported_as_text(app, staff):
    with app.app_context():
        link_id = make_link(app, datetime(2025, 3, 2, 15, tzinfo=UTC))
        get_session().get(PaymentLink, link_id).patient_name = "=cmd|' /C calc'!A0"
        get_session().commit()
    [row] = rows(staff.get("/exports/links.csv?from=2025-03-02&to=2025-03-02").text)
    assert row["patient_name"] == "'=cmd|' /C calc'!A0"


# --- payments and refunds ---------------------------------------------------------------------


def test_payments_export_lists_the_payment_and_its_refund_with_positive_amounts(
    app, client, admin, link_factory
):
    link = link_factory(description="whitening")
    submit_card(client, link.path)
    with app.app_context():
        payment_id = get_session().scalar(select(Payment.id))
    staff_post(
        admin,
        f"/links/{link.id}/refund",
        {"payment_id": payment_id, "amount": "25.50", "reason": "goodwill", "refund_key": "k1"},
        page_url=f"/links/{link.id}",
    )
    # The app's clinic is New York too (the default time zone).
    day = datetime.now(UTC).astimezone(ZoneInfo(NY.timezone)).date().isoformat()

    response = admin.get(f"/exports/payments.csv?from={day}&to={day}")

    payment, refund = rows(response.text)
    assert (payment["type"], payment["amount"], payment["amount_cents"]) == (
        "payment",
        "125.00",
        "12500",
    )
    assert (payment["card"], payment["card_last4"], payment["status"]) == (
        "Visa",
        "1111",
        "completed",
    )
    assert (refund["type"], refund["amount"], refund["amount_cents"]) == ("refund", "25.50", "2550")
    assert refund["payment_id"] == str(payment_id) and refund["link_id"] == str(link.id)
    assert payment["when"] <= refund["when"] and payment["when"].startswith(day)
    assert "whitening" not in response.text and "goodwill" not in response.text


# --- streaming --------------------------------------------------------------------------------


def test_a_large_range_streams_in_batches_of_the_configured_size(app, staff):
    app.config["EXPORT_BATCH_SIZE"] = 10
    for i in range(25):
        make_link(app, datetime(2025, 3, 2, 15, i, tzinfo=UTC), reference=f"INV-{i}")
    selects = []

    def count(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT") and "payment_link" in statement:
            selects.append(statement)

    engine = app.extensions["payapp.engine"]
    response = staff.get("/exports/links.csv?from=2025-01-01&to=2025-12-31", buffered=False)
    assert response.is_streamed
    event.listen(engine, "before_cursor_execute", count)
    try:
        body = b"".join(response.response).decode()
    finally:
        event.remove(engine, "before_cursor_execute", count)
        response.close()
    got = rows(body)
    assert [r["reference"] for r in got] == [f"INV-{i}" for i in range(25)], "order or gaps"
    assert len(selects) == 3, f"{len(selects)} queries for 25 rows in batches of 10"
    assert all("LIMIT" in s for s in selects)


def test_the_export_is_a_generator_that_reads_nothing_until_iterated(app):
    make_link(app, datetime(2025, 3, 2, 15, tzinfo=UTC))
    with app.app_context():
        lines = exports.link_lines(
            get_session(), NY, exports.parse_range("2025-03-01", "2025-03-31", NY)
        )
        assert isinstance(lines, types.GeneratorType)
        assert next(lines).startswith("link_id,created,")
        assert len(list(lines)) == 1


# --- who may export -------------------------------------------------------------------------


def test_exports_are_for_logged_in_staff_only(client):
    for url in (
        "/exports",
        "/exports/links.csv?from=2025-03-01&to=2025-03-02",
        "/exports/payments.csv?from=2025-03-01&to=2025-03-02",
    ):
        response = client.get(url)
        assert response.status_code in (302, 303, 401), url
        assert "text/csv" not in response.headers.get("Content-Type", "")


def test_the_exports_page_offers_both_downloads_without_javascript(staff):
    page = staff.get("/exports").text
    assert 'action="/exports/links.csv"' in page
    assert 'formaction="/exports/payments.csv"' in page
    assert 'name="from"' in page and 'name="to"' in page
    assert 'href="/exports"' in page  # the staff menu


@pytest.mark.parametrize("read_all", [True, False])
def test_a_download_gives_its_connection_back_however_it_ends(app, staff, read_all):
    # Flask's teardown closes the request's session before the first line is sent; the lines
    # read through it again, and it must be closed again when they end or the client goes.
    app.config["EXPORT_BATCH_SIZE"] = 2
    for i in range(5):
        make_link(app, datetime(2025, 3, 2, 15, i, tzinfo=UTC))
    engine = app.extensions["payapp.engine"]
    response = staff.get("/exports/links.csv?from=2025-01-01&to=2025-12-31", buffered=False)
    lines = iter(response.response)
    next(lines)  # the header
    next(lines)  # a first row: the session is reading
    assert engine.pool.checkedout() == 1
    if read_all:
        assert len(list(lines)) == 4
    response.close()  # what the server does when the download ends or the client goes away
    assert engine.pool.checkedout() == 0
