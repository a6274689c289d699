"""SQL injection in the search box, the filters, the page number, link ids and the audit filter:
a 200 or a 404, never a 500; nothing found that should not be; no table changes.

Unhandled exceptions are turned into the app's 500 page here (PROPAGATE_EXCEPTIONS off), so a
crash shows up as a status code like it would for a visitor.
"""

from __future__ import annotations

import pytest

from payapp.db import get_session
from payapp.models import PaymentLink

from ..conftest import csrf_from, log_in, staff_post
from .conftest import counts, snapshot

SQL = [
    "' OR '1'='1",
    "' OR 1=1--",
    '" OR ""="',
    "') OR ('1'='1",
    "1 OR 1=1",
    "1; DROP TABLE payment_link;--",
    "'; DELETE FROM audit_event; --",
    "' UNION SELECT email, password_hash FROM staff_user--",
    "' UNION SELECT NULL,NULL,NULL,NULL,NULL,NULL,NULL--",
    "1' AND (SELECT COUNT(*) FROM staff_user) > 0 --",
    "' AND 1=(SELECT 1 FROM sqlite_master)--",
    "1' AND randomblob(100000000)--",
    "admin'--",
    "%",
    "%%",
    "_",
    "%' --",
    "\\",
    "\\'",
    "'",
    "''",
    "`",
    "\x00",
    "' || (SELECT sqlite_version()) || '",
    "1e309",
    "-1",
    "0",
    "99999999999999999999999",
    "NaN",
    "[]",
    "ǅ' OR 1=1 --",
]


@pytest.fixture
def config_overrides():
    return {"PROPAGATE_EXCEPTIONS": False}


@pytest.fixture
def patients(link_factory):
    """Three links whose names and references no payload matches."""
    return [
        link_factory(patient_name="Ada Lovelace", reference="STMT-A"),
        link_factory(patient_name="Grace Hopper", reference="STMT-B"),
        link_factory(patient_name="Alan Turing", reference="STMT-C"),
    ]


NAMES = ("Ada Lovelace", "Grace Hopper", "Alan Turing")


def test_search_and_filters_treat_sql_as_text(app, staff, patients):
    before = snapshot(app)
    for payload in SQL:
        for params in (
            {"q": payload},
            {"status": payload},
            {"page": payload},
            {"q": payload, "status": "open", "page": "1"},
        ):
            for headers in ({}, {"HX-Request": "true"}):
                response = staff.get("/links", query_string=params, headers=headers)
                assert response.status_code == 200, (params, response.status_code)
                if "q" in params and payload != "\x00":
                    # Nothing matches these: no row may come back. (SQLite's LIKE stops at a
                    # NUL, so "\x00" lists every link: what staff see anyway, no more.)
                    assert not any(n in response.text for n in NAMES), params
    assert snapshot(app) == before
    # The search does work: the checks above could have failed.
    assert "Grace Hopper" in staff.get("/links", query_string={"q": "hopp"}).text
    everything = staff.get("/links", query_string={"status": "' OR '1'='1"}).text
    assert all(n in everything for n in NAMES)  # an unknown status is ignored: all links


def test_like_wildcards_in_the_search_are_literal(staff, link_factory):
    link_factory(patient_name="Percy 100% Sure", reference="A_B")
    link_factory(patient_name="Ada Lovelace", reference="AXB")
    # Search is by words (full-text): a lone wildcard is no word and matches nothing, not all.
    assert "No links match" in staff.get("/links", query_string={"q": "%"}).text
    percent = staff.get("/links", query_string={"q": "100%"}).text
    assert "Percy" in percent and "Ada" not in percent
    underscore = staff.get("/links", query_string={"q": "a_b"}).text
    assert "Percy" in underscore and "Ada" not in underscore


def test_link_ids_in_urls_that_are_not_small_numbers_are_404s(app, staff, patients):
    before = snapshot(app)
    # (Numbers too big for the database: test_huge_ids_are_404s_not_500s.)
    for payload in [p for p in SQL if not p.isdigit()] + ["1/../2", "1%20OR%201=1", "0x1", "1.0"]:
        response = staff.get("/links/" + payload.replace("/", "%2F"))
        assert response.status_code == 404, (payload, response.status_code)
        assert not any(n in response.text for n in NAMES)
    assert snapshot(app) == before


def test_huge_ids_are_404s_not_500s(app, staff, admin, paid_link):
    huge = "99999999999999999999"
    before = counts(app)
    assert staff.get(f"/links/{huge}").status_code == 404
    page = staff.get("/links")
    for action in ("cancel", "resend", "reissue"):
        response = staff.post(f"/links/{huge}/{action}", data={"csrf_token": csrf_from(page.text)})
        assert response.status_code == 404, action
    refund = staff_post(
        admin,
        f"/links/{paid_link.id}/refund",
        {"payment_id": huge, "amount": "1.00", "reason": "x", "refund_key": "huge-id-0001"},
        page_url=f"/links/{paid_link.id}",
    )
    assert refund.status_code == 404
    assert admin.get(f"/users/{huge}").status_code == 404
    assert counts(app) == before


def test_the_audit_filter_treats_sql_as_text(app, admin, patients):
    before = counts(app)
    for payload in SQL:
        response = admin.get("/audit", query_string={"action": payload})
        assert response.status_code == 200, payload
        assert "No events of this kind" in response.text, payload
    assert "link.created" in admin.get("/audit", query_string={"action": "link.created"}).text
    after = counts(app)
    assert after == before


def test_stored_text_that_looks_like_sql_is_kept_as_text(app, staff):
    before = counts(app)
    for i, payload in enumerate(p for p in SQL if p.strip("\x00") and "\x00" not in p):
        response = staff_post(
            staff,
            "/links/new",
            {
                "patient_name": f"Pat {payload}"[:120],
                "email": f"pat{i}@example.com",
                "amount": "20.00",
                "reference": payload[:40],
                "description": payload,
            },
        )
        assert response.status_code in (303, 422), (payload, response.status_code)
        if response.status_code == 303:
            link_id = int(response.headers["Location"].rsplit("/", 1)[1])
            with app.app_context():
                link = get_session().get(PaymentLink, link_id)
                assert link.patient_name == " ".join(f"Pat {payload}"[:120].split())
    after = counts(app)
    assert after["staff_user"] == before["staff_user"]
    assert after["payment_link"] > before["payment_link"]


def test_sql_in_pay_form_fields_and_the_login_form_changes_nothing(app, client, gateway, patients):
    link = patients[0]
    before = counts(app)
    page = client.get(link.path)
    token = csrf_from(page.text)
    for payload in SQL:
        response = client.post(
            link.path,
            data={
                "csrf_token": token,
                "source_id": payload or "x",
                "postal_code": payload,
                "attempt_key": payload,
                "amount": payload,
            },
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 200, (payload, response.status_code)
        assert "Payment received" not in response.text
    for payload in SQL[:4]:
        login = log_in(app.test_client(), email=f"admin@example.com{payload}", password=payload)
        assert login.status_code == 422, payload
    assert gateway.charges == []
    after = counts(app)
    assert after["payment"] == before["payment"] == 0
    assert after["staff_user"] == before["staff_user"]
