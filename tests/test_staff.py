"""Staff pages over HTTP: creating, listing, sending, cancelling and reissuing links."""

import csv
import email
import io
import re
from datetime import UTC, datetime
from email import policy

import pytest
import time_machine
from sqlalchemy import select

from payapp.db import get_session
from payapp.models import Message, PaymentLink

from .conftest import csrf_from, staff_post, submit_card

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def new_link(staff, **fields):
    data = {
        "patient_name": "Jane Q Doe",
        "email": "jane@example.com",
        "phone": "",
        "amount": "125.00",
        "reference": "INV-1001",
        "description": "",
        "expires_in_days": "14",
        "send_now": "y",
    }
    data.update(fields)
    if data.get("send_now") is None:
        del data["send_now"]
    return staff_post(staff, "/links/new", data)


def only_link(app) -> PaymentLink:
    with app.app_context():
        return get_session().scalars(select(PaymentLink)).one()


def outbox_files(app):
    from pathlib import Path

    folder = Path(app.config["OUTBOX_DIR"])
    return sorted(folder.iterdir()) if folder.exists() else []


def test_the_new_link_form_reminds_staff_not_to_enter_clinical_details(staff):
    html = staff.get("/links/new").text
    assert "No clinical details." in html
    for label in (
        "Patient name",
        "Email",
        "Mobile number",
        "Amount (USD)",
        "Statement or invoice number",
        "Link expires after (days)",
    ):
        assert f">{label}</label>" in html
    assert 'name="send_now" type="checkbox" value="y" checked' in html
    assert 'value="14"' in html  # default expiry


def test_creating_a_link_stores_cents_and_sends_it(app, staff):
    response = new_link(staff, amount="1,250.50", phone="(212) 555-0123")
    link = only_link(app)
    assert response.status_code == 303 and response.headers["Location"] == f"/links/{link.id}"
    assert (link.amount_cents, link.phone, link.status) == (125050, "+12125550123", "open")
    page = staff.get(response.headers["Location"]).text
    assert "Payment link created." in page
    assert "Sent by email to jane@example.com." in page
    assert "Sent by text message to +12125550123." in page
    names = [f.name for f in outbox_files(app)]
    assert any(n.endswith("-email.eml") for n in names)
    assert any(n.endswith("-sms.txt") for n in names)
    assert link.sent_at is not None or only_link(app).sent_at is not None


def test_unticking_send_creates_the_link_without_messages(app, staff):
    new_link(staff, send_now=None)
    assert only_link(app).sent_at is None
    assert outbox_files(app) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"patient_name": ""}, "Enter the patient&#39;s name."),
        ({"email": "jane@", "phone": ""}, "Enter a valid email address"),
        ({"email": "", "phone": ""}, "Enter an email address or a mobile number"),
        ({"phone": "555"}, "Enter a valid mobile number"),
        ({"amount": "12.345"}, "at most two decimal places"),
        ({"amount": "0.99"}, "at least $1.00"),
        ({"amount": "25000.01"}, "at most $25,000.00"),
        ({"amount": "ten dollars"}, "for example 125.00"),
        ({"reference": "R" * 41}, "at most 40 characters"),
        ({"description": "d" * 201}, "at most 200 characters"),
        ({"expires_in_days": "91"}, "1 to 90"),
        ({"expires_in_days": "0"}, "1 to 90"),
    ],
)
def test_each_invalid_field_is_explained_and_nothing_is_created(app, staff, fields, message):
    response = new_link(staff, **fields)
    assert response.status_code == 422
    assert message in response.text
    assert "Please fix the highlighted fields." in response.text
    assert 'aria-invalid="true"' in response.text
    with app.app_context():
        assert get_session().scalars(select(PaymentLink)).first() is None
    assert outbox_files(app) == []


def test_oversized_fields_are_refused(app, staff):
    response = new_link(staff, patient_name="x" * 600)
    assert response.status_code == 422
    assert "too long" in response.text
    huge = new_link(staff, description="x" * 70_000)
    assert huge.status_code == 413


def test_typed_values_are_kept_when_the_form_comes_back(staff):
    html = new_link(staff, amount="12.345", patient_name="Jane Q Doe").text
    assert 'value="Jane Q Doe"' in html and 'value="12.345"' in html


def test_script_in_every_field_is_shown_as_text_never_run(app, staff):
    response = new_link(
        staff, patient_name=XSS, reference="<b>R</b>", description=XSS, email="jane@example.com"
    )
    assert response.status_code == 303
    for path in (response.headers["Location"], "/links", "/links?q=%3Cscript%3E"):
        html = staff.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "&lt;script&gt;" in html
    with app.app_context():
        link = get_session().scalars(select(PaymentLink)).one()
        from payapp.links import sign_token

        token = sign_token(link, app.config["SECRET_KEY"])
    patient = staff.get(f"/pay/{token}").text
    assert "<script>alert" not in patient and "&lt;script&gt;" in patient
    mail = email.message_from_bytes(
        next(f for f in outbox_files(app) if f.suffix == ".eml").read_bytes(), policy=policy.default
    )
    html_part = mail.get_body(("html",)).get_content()
    assert "<script>alert" not in html_part and "&lt;b&gt;R&lt;/b&gt;" in html_part


def test_the_description_never_leaves_payapp(app, staff):
    new_link(staff, description="root canal, tooth 19", phone="(212) 555-0123")
    for file in outbox_files(app):
        assert "root canal" not in file.read_text(errors="replace")
    assert "root canal" in staff.get(f"/links/{only_link(app).id}").text  # staff still see it


def test_link_page_shows_url_copy_button_qr_and_timeline(app, staff):
    response = new_link(staff)
    html = staff.get(response.headers["Location"]).text
    url = re.search(r'id="patient-url" type="text" readonly value="([^"]+)"', html)[1]
    assert url.startswith("http://localhost/pay/")
    assert 'data-copy="#patient-url"' in html and ">Copy</button>" in html
    assert "<svg" in html and "QR code for this link" in html
    assert "Link created" in html and "Email sent" in html


def test_timeline_records_views_attempts_and_payment(app, staff, client):
    response = new_link(staff)
    link_id = only_link(app).id
    url = re.search(
        r'value="(http://localhost/pay/[^"]+)"', staff.get(response.headers["Location"]).text
    )[1]
    path = url.removeprefix("http://localhost")
    submit_card(client, path, nonce="cnon:card-nonce-declined")
    submit_card(client, path)
    html = staff.get(f"/links/{link_id}").text
    for entry in (
        "Patient opened the link",
        "Payment attempt",
        "Payment declined",
        "GENERIC_DECLINE",
        "Payment completed",
        "Visa ending 1111",
    ):
        assert entry in html, entry
    assert html.index("Payment declined") < html.index("Payment completed")


def test_the_list_is_newest_first_and_filters_by_status_and_search(app, staff, link_factory):
    link_factory(patient_name="Ann Lee", reference="A-1")
    link_factory(patient_name="Bob Ray", reference="B-2")
    html = staff.get("/links").text
    assert html.index("Bob Ray") < html.index("Ann Lee")
    assert "Ann Lee" not in staff.get("/links?q=bob").text
    assert "Bob Ray" in staff.get("/links?q=B-2").text
    assert "No links match." in staff.get("/links?status=paid").text


def test_htmx_list_requests_get_only_the_rows(staff, link_factory):
    link_factory(patient_name="Ann Lee")
    response = staff.get("/links?q=ann", headers={"HX-Request": "true"})
    assert "Ann Lee" in response.text
    assert "<html" not in response.text and "<table" in response.text
    assert "HX-Request" in response.headers["Vary"]
    full = staff.get("/links?q=ann")
    assert "<html" in full.text and "HX-Request" in full.headers["Vary"]


def test_history_restores_get_the_full_page(staff, link_factory):
    response = staff.get(
        "/links", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert "<html" in response.text


def test_sql_looking_search_and_filters_are_just_text(staff, link_factory):
    link_factory(patient_name="Ann Lee")
    for query in ("' OR 1=1 --", "%", "_", "\\", "Ann'; DROP TABLE payment_link; --"):
        response = staff.get("/links", query_string={"q": query})
        assert response.status_code == 200
    assert staff.get("/links", query_string={"status": "paid' OR '1'='1"}).status_code == 200
    for cursor in ("-1", "abc", "0", "1e3", "99999999999999999999", "١٢", "1 OR 1=1"):
        for name in ("after", "before"):
            response = staff.get("/links", query_string={name: cursor})
            assert response.status_code == 200 and "Ann Lee" in response.text, (name, cursor)
    for query in ('"', "*", "NEAR(ann lee)", "-ann", "ann OR bob", "lee*"):
        assert staff.get("/links", query_string={"q": query}).status_code == 200
    assert "Ann Lee" in staff.get("/links", query_string={"q": '"ann'}).text
    assert "Ann Lee" in staff.get("/links").text


def pager_links(html: str) -> dict[str, str]:
    return {
        word: href.replace("&amp;", "&")
        for href, word in re.findall(r'<a href="([^"]+)"[^>]*rel="(?:next|prev)">(\w+)</a>', html)
    }


def test_the_list_is_paged_with_shareable_older_and_newer_links(app, staff, link_factory):
    app.config["LINKS_PER_PAGE"] = 2
    for i in range(5):
        link_factory(reference=f"R-{i}", patient_name=f"Pat Smith{i}")
    first = staff.get("/links?q=smith").text
    assert "5 links" in first and "R-4" in first and "R-3" in first and "R-2" not in first
    assert set(pager_links(first)) == {"Older"}
    older = pager_links(first)["Older"]
    assert "after=" in older and "q=smith" in older
    second = staff.get(older).text  # a plain GET works without htmx, so the URL can be shared
    assert "R-2" in second and "R-1" in second and "R-4" not in second
    assert set(pager_links(second)) == {"Older", "Newer"}
    last = staff.get(pager_links(second)["Older"]).text
    assert "R-0" in last and set(pager_links(last)) == {"Newer"}
    back = staff.get(pager_links(last)["Newer"]).text
    assert "R-2" in back and "R-1" in back and "R-0" not in back
    fragment = staff.get(older, headers={"HX-Request": "true"}).text
    assert "<html" not in fragment and "R-2" in fragment


def test_the_count_stops_at_a_thousand(app, staff, monkeypatch, link_factory):
    from payapp import links

    monkeypatch.setattr(links, "SEARCH_COUNT_LIMIT", 2)
    for _ in range(4):
        link_factory()
    assert "More than 2 links" in staff.get("/links").text


def test_cancel_from_the_list_swaps_the_row(app, staff, link_factory):
    link = link_factory()
    page = staff.get("/links")
    response = staff.post(
        f"/links/{link.id}/cancel",
        data={"csrf_token": csrf_from(page.text)},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert f'<tr id="link-row-{link.id}">' in response.text and "Cancelled" in response.text
    assert only_link(app).status == "cancelled"
    assert staff.get(link.path).status_code == 410


def test_cancel_from_the_link_page_redirects_with_a_message(app, staff, link_factory):
    link = link_factory()
    response = staff_post(staff, f"/links/{link.id}/cancel", page_url=f"/links/{link.id}")
    assert response.status_code == 303
    assert "Link cancelled." in staff.get(f"/links/{link.id}").text
    again = staff_post(
        staff,
        f"/links/{link.id}/cancel",
        page_url=f"/links/{link.id}",
        headers={"HX-Request": "true"},
    )
    assert again.status_code == 409 and again.headers["HX-Retarget"] == "#flash"


def test_a_paid_link_cannot_be_cancelled(app, staff, client, link_factory):
    link = link_factory()
    submit_card(client, link.path)
    staff_post(staff, f"/links/{link.id}/cancel", page_url=f"/links/{link.id}")
    assert only_link(app).status == "paid"


def test_resend_adds_a_message(app, staff, link_factory):
    link = link_factory()
    staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")
    with app.app_context():
        rows = get_session().scalars(select(Message)).all()
    assert [(m.channel, m.status) for m in rows] == [("email", "sent"), ("email", "sent")]
    assert "Resend" in staff.get(f"/links/{link.id}").text


def test_a_locked_link_can_be_reissued(app, staff, client, link_factory):
    link = link_factory()
    for _ in range(5):
        submit_card(client, link.path, nonce="cnon:card-nonce-declined")
    detail = staff.get(f"/links/{link.id}").text
    assert "Locked" in detail and "Reissue as a new link" in detail
    response = staff_post(staff, f"/links/{link.id}/reissue", page_url=f"/links/{link.id}")
    assert response.status_code == 303
    with app.app_context():
        links = get_session().scalars(select(PaymentLink).order_by(PaymentLink.id)).all()
    assert [x.status for x in links] == ["locked", "open"]
    assert links[1].amount_cents == links[0].amount_cents and links[1].reissued_from_id == link.id


def test_unknown_link_ids_are_404(staff):
    assert staff.get("/links/999").status_code == 404


@pytest.mark.parametrize(
    "path", ["/links/new", "/links/1/cancel", "/links/1/resend", "/links/1/reissue", "/logout"]
)
def test_every_staff_post_needs_a_csrf_token(staff, link_factory, path):
    link_factory()
    assert staff.post(path, data={"patient_name": "x"}).status_code == 400


# 04:30 UTC on March 6 is 11:30 PM on March 5 in New York (the default clinic time zone).
LATE_EVENING = datetime(2027, 3, 6, 4, 30, tzinfo=UTC)
CLINIC_TIME = "Mar 5, 2027, 11:30 PM EST"


@pytest.fixture
def late_evening_link(client, link_factory):
    """A link made, declined once and paid at 11:30 PM clinic time (the next day in UTC)."""
    with time_machine.travel(LATE_EVENING, tick=False):
        link = link_factory(amount="125.00")
        submit_card(client, link.path, nonce="cnon:card-nonce-declined")
        submit_card(client, link.path)
    return link


def test_staff_pages_show_times_in_the_clinic_time_zone(admin, late_evening_link):
    link = late_evening_link
    listing = admin.get("/links").text
    assert CLINIC_TIME in listing and "Mar 6" not in listing
    detail = admin.get(f"/links/{link.id}").text
    timeline = re.search(r'<ol class="timeline">.*?</ol>', detail, re.S)[0]
    assert timeline.count(CLINIC_TIME) >= 3  # created, declined, paid
    payments = re.search(r'<table class="table compact">.*?</table>', detail, re.S)[0]
    assert payments.count(CLINIC_TIME) == 2  # the declined attempt and the payment
    assert "UTC" not in detail and "Mar 6" not in detail and "March 6" not in detail


def test_staff_pages_show_money_and_decline_reasons_in_plain_words(admin, late_evening_link):
    link = late_evening_link
    page = admin.get(f"/links/{link.id}").text
    form = {
        "csrf_token": csrf_from(page),
        "payment_id": re.search(r'name="payment_id" value="(\d+)"', page)[1],
        "refund_key": re.search(r'name="refund_key" value="([^"]+)"', page)[1],
        "amount": "25.00",
        "reason": "overpaid",
    }
    assert admin.post(f"/links/{link.id}/refund", data=form).status_code == 303
    for html in (admin.get(f"/links/{link.id}").text, admin.get("/links").text):
        assert not re.search(r"\d\s*cents", html)
    detail = admin.get(f"/links/{link.id}").text
    assert "Refund requested: $25.00: overpaid" in detail
    assert "Refund made: $25.00, completed" in detail
    # The bank's code stays available in a tooltip, the words say what happened.
    declined = 'title="GENERIC_DECLINE">The card&#39;s bank gave no reason</abbr>'
    assert detail.count(declined) == 2  # the payments table and the timeline
    assert ">GENERIC_DECLINE<" not in detail


def test_audit_pages_show_clinic_times_and_the_export_gives_both_with_offsets(
    admin, late_evening_link
):
    page = admin.get("/audit").text
    assert CLINIC_TIME in page and "UTC" not in page
    assert 'title="GENERIC_DECLINE">The card&#39;s bank gave no reason</abbr>' in page
    rows = list(csv.DictReader(io.StringIO(admin.get("/audit.csv").text)))
    created = next(r for r in rows if r["action"] == "link.created")
    assert created["when_utc"] == "2027-03-06T04:30:00+00:00"
    assert created["when_local"] == "2027-03-05T23:30:00-05:00"
    assert created["detail"] == "amount $125.00, expires in 14 days"
    users = admin.get("/users").text + admin.get("/account").text + admin.get("/security").text
    assert "UTC" not in users and re.search(r"\d:\d\d [AP]M E[SD]T", users)


def test_a_link_shown_only_as_a_qr_code_needs_no_email_or_phone(app, staff):
    response = new_link(staff, email="", phone="", send_now=None)

    assert response.status_code == 303
    link = only_link(app)
    assert (link.email, link.phone, link.status, link.sent_at) == (None, None, "open", None)
    page = staff.get(response.headers["Location"]).text
    assert "Payment link created." in page and "QR code for this link" in page
    assert outbox_files(app) == []


def test_sending_still_needs_an_email_or_phone_and_says_how_to_skip_sending(app, staff):
    response = new_link(staff, email="", phone="", send_now="y")

    assert response.status_code == 422
    assert "Enter an email address or a mobile number (or both) to send the link" in response.text
    assert "show the patient its QR code at the desk" in response.text
    with app.app_context():
        assert get_session().scalars(select(PaymentLink)).first() is None


def test_resending_a_link_without_contact_details_says_so(app, staff):
    new_link(staff, email="", phone="", send_now=None)
    link = only_link(app)

    response = staff_post(staff, f"/links/{link.id}/resend", page_url=f"/links/{link.id}")

    assert response.status_code == 303
    assert "no email address or mobile number, so nothing was sent" in staff.get(
        f"/links/{link.id}"
    ).text.replace("\n", " ")


def detail_facts(html: str) -> dict[str, str]:
    return dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", html))


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("open", "Expires"),
        ("locked", "Expires"),
        ("expired", "Expired"),
        ("paid", None),
        ("refunded", None),
        ("cancelled", None),
    ],
)
def test_the_link_page_names_the_expiry_as_the_state_has_it(
    app, staff, link_factory, status, label
):
    link = link_factory()
    with app.app_context():
        get_session().get(PaymentLink, link.id).status = status
        get_session().commit()
    shown = detail_facts(staff.get(f"/links/{link.id}").text)
    for word in ("Expires", "Expired"):
        assert (word in shown) == (word == label), (status, word)


def test_the_send_to_group_is_short_with_its_hint_beside_it(staff):
    html = staff.get("/links/new").text
    assert '<fieldset aria-describedby="send-to-hint">\n    <legend>Send to</legend>' in html
    assert re.search(r'<p class="hint" id="send-to-hint">Email, mobile, or both\. Not needed', html)


def test_a_long_email_address_breaks_after_its_at_sign_on_the_link_page(staff, link_factory):
    link = link_factory(email="jane.a.very.long.name@example.com")
    detail = staff.get(f"/links/{link.id}").text
    assert "<dd>jane.a.very.long.name@<wbr>example.com</dd>" in detail
    script = link_factory(email="x@example.com")
    assert "<dd>x@<wbr>example.com</dd>" in staff.get(f"/links/{script.id}").text
