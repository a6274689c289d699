"""Card testing, token scanning, oversized and malformed bodies, decline spikes and the CSP report
endpoint (requirement A1, A4, T2, P4; issue 4 "Abuse").

Unhandled exceptions become the app's 500 page here (PROPAGATE_EXCEPTIONS off), so "never a
500" is checked on the status code a visitor would get.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import pytest
import time_machine
from limits import parse_many

from payapp import errors
from payapp.db import get_session
from payapp.models import AuditEvent, CspReport, PaymentLink, utcnow

from ..conftest import audit_actions, csrf_from, open_pay_page, submit_card
from .conftest import CLINIC_PHONE, counts

LIMITED = {"RATELIMIT_ENABLED": True, "PROPAGATE_EXCEPTIONS": False}
TOO_MANY = "Too many attempts"


@pytest.fixture
def config_overrides():
    return {"PROPAGATE_EXCEPTIONS": False}


@pytest.fixture(autouse=True)
def rate_limit_events_start_afresh(monkeypatch):
    """errors.py records one ratelimit.hit per address and minute in a module-level dict; a test
    must not inherit another test's minute."""
    monkeypatch.setattr(errors, "_last_recorded", {})


def card_attempt(client, path, csrf, i, *, address="203.0.113.7", nonce="cnon:card-nonce-declined"):
    return client.post(
        path,
        data={
            "csrf_token": csrf,
            "source_id": nonce,
            "postal_code": "94103",
            "attempt_key": f"card-test-{i:06d}-xxxxxxxx",
        },
        headers={"HX-Request": "true"},
        environ_base={"REMOTE_ADDR": address},
    )


def allowed_per_window(limit: str) -> int:
    return min(item.amount for item in parse_many(limit))


# --- card testing --------------------------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [LIMITED])
def test_a_thousand_card_tests_from_one_address_reach_the_bank_at_most_five_times(
    app, client, gateway, link_factory
):
    link = link_factory()
    csrf = open_pay_page(client, link.path).csrf
    outcomes = Counter()
    # Time stands still: the attack happens within one minute, whatever the clock says.
    with time_machine.travel(utcnow(), tick=False):
        for i in range(1000):
            response = card_attempt(client, link.path, csrf, i)
            if response.status_code == 429:
                assert TOO_MANY in response.text and "call the clinic" in response.text
                assert response.headers["HX-Retarget"] == "#flash"
                outcomes["429"] += 1
            else:
                assert response.status_code == 200, response.status_code
                if "locked" in response.text:
                    outcomes["locked"] += 1
                else:
                    assert "declined" in response.text
                    outcomes["declined"] += 1
    assert len(gateway.charges) <= app.config["MAX_DECLINES"] == 5
    assert outcomes["declined"] + outcomes["locked"] + outcomes["429"] == 1000
    assert outcomes["429"] >= 1000 - allowed_per_window(app.config["RATELIMIT_PAY_SUBMIT"])
    with app.app_context():
        assert get_session().get(PaymentLink, link.id).status == "locked"
    assert audit_actions(app).count("ratelimit.hit") == 1  # one per address and minute


@pytest.mark.parametrize("config_overrides", [LIMITED])
def test_card_tests_from_many_addresses_still_stop_at_the_link_lock(
    app, client, gateway, link_factory
):
    link = link_factory()
    csrf = open_pay_page(client, link.path).csrf
    for i in range(60):
        response = card_attempt(client, link.path, csrf, i, address=f"10.9.{i // 250}.{i % 250}")
        assert response.status_code == 200
    assert len(gateway.charges) == 5
    assert "locked" in card_attempt(client, link.path, csrf, 999, address="10.10.0.1").text


@pytest.mark.parametrize("config_overrides", [{**LIMITED, "RATELIMIT_PAY_GLOBAL": "50 per minute"}])
def test_a_botnet_spread_over_many_links_is_capped_by_the_global_limit(
    app, client, gateway, link_factory
):
    links = [link_factory() for _ in range(40)]
    csrf = open_pay_page(client, links[0].path).csrf
    codes = Counter()
    # One clock minute throughout: the global "50 per minute" restarts when a real minute ends.
    with time_machine.travel(utcnow(), tick=False):
        for i in range(120):
            link = links[i % len(links)]
            address = f"10.8.{i // 250}.{i % 250}"
            codes[card_attempt(client, link.path, csrf, i, address=address).status_code] += 1
    assert codes[429] == 120 - 50 and len(gateway.charges) <= 50


@pytest.mark.parametrize("config_overrides", [LIMITED])
def test_one_address_posting_to_a_made_up_token_cannot_stop_other_patients_paying(
    app, gateway, link_factory
):
    """Issue 7 section 3: 305 posts to /pay/not-a-real-token from one address within a minute,
    with the app's own limits, then a real patient at another address pays."""
    link = link_factory()
    attacker, patient = app.test_client(), app.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "203.0.113.66"
    patient.environ_base["REMOTE_ADDR"] = "198.51.100.4"
    csrf = csrf_from(attacker.get("/login").text)
    budget = allowed_per_window(app.config["RATELIMIT_PAY_GLOBAL"])
    assert budget < 305  # the attack is bigger than the global budget
    with time_machine.travel(utcnow(), tick=False):
        codes = Counter(
            attacker.post(
                "/pay/not-a-real-token",
                data={"csrf_token": csrf, "source_id": "cnon:card-nonce-ok"},
                headers={"HX-Request": "true"},
            ).status_code
            for _ in range(305)
        )
        assert codes[404] == allowed_per_window(app.config["RATELIMIT_PAY_SUBMIT"])
        assert codes[429] == 305 - codes[404]
        response = submit_card(patient, link.path)
    assert response.status_code == 200
    assert "Payment received" in response.text
    assert len(gateway.charges) == 1


@pytest.mark.parametrize("config_overrides", [{**LIMITED, "RATELIMIT_PAY_GLOBAL": "3 per minute"}])
def test_only_attempts_on_open_links_spend_the_global_payment_limit(
    app, client, gateway, link_factory
):
    paid, open_links = link_factory(), [link_factory() for _ in range(5)]
    submit_card(client, paid.path)  # the global budget: 3 - 1
    csrf = open_pay_page(client, open_links[0].path).csrf
    with time_machine.travel(utcnow(), tick=False):
        # Posts to a paid link and to forged tokens, each from its own address, spend nothing.
        for i in range(20):
            assert (
                card_attempt(client, paid.path, csrf, i, address=f"10.7.0.{i}").status_code == 200
            )
            forged = card_attempt(client, "/pay/forged", csrf, i, address=f"10.6.0.{i}")
            assert forged.status_code == 404
        codes = [
            card_attempt(client, link.path, csrf, 100 + i, address=f"10.5.0.{i}").status_code
            for i, link in enumerate(open_links)
        ]
    assert codes == [200, 200, 429, 429, 429]
    assert len(gateway.charges) == 3


# --- token scanning ------------------------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [LIMITED])
def test_a_scanner_guessing_links_gets_429_after_the_configured_number(app, link_factory):
    link = link_factory()
    scanner, patient = app.test_client(), app.test_client()
    allowed = allowed_per_window(app.config["RATELIMIT_INVALID_TOKEN"])
    csrf = csrf_from(scanner.get("/login").text)
    codes = []
    for i in range(100):
        guess = f"/pay/WyJndWVzcyIsMTc5Njg5NTI5NV0.guess{i:06d}xxxxxxxxxxxxxx"
        # Guessing by posting counts against the same budget as guessing by opening.
        response = scanner.post(guess, data={"csrf_token": csrf}) if i % 2 else scanner.get(guess)
        codes.append(response.status_code)
    assert codes[:allowed] == [404] * allowed
    assert codes[allowed:] == [429] * (100 - allowed)
    limited = scanner.get(link.path)
    assert limited.status_code == 429 and "call the clinic" in limited.text
    assert limited.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in limited.headers["Content-Security-Policy"]
    # Someone at another address is not affected.
    assert patient.get(link.path, environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 200
    assert "ratelimit.hit" in audit_actions(app)


# --- bodies --------------------------------------------------------------------------------------


def test_oversized_bodies_get_413_and_a_page_that_says_to_call_the_clinic(
    app, client, staff, gateway, link_factory
):
    link = link_factory()
    csrf = open_pay_page(client, link.path).csrf
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    before = counts(app)
    cases = [
        (client, link.path, lambda: {"csrf_token": csrf, "source_id": big}),
        (client, link.path, lambda: {"csrf_token": csrf, "f": (io.BytesIO(big.encode()), "a")}),
        (client, "/login", lambda: {"email": big}),
        (staff, "/links/new", lambda: {"patient_name": big}),
    ]
    for who, path, data in cases:
        for headers in ({}, {"HX-Request": "true"}):
            response = who.post(path, data=data(), headers=headers)
            assert response.status_code == 413, (path, response.status_code)
            # Patients are told to call the clinic; staff (who are the clinic) get their own words.
            patient_page = path.startswith("/pay/")
            advice = "call the clinic" if patient_page else "Shorten what you typed and try again."
            assert advice in response.text, path
            if headers:
                assert response.headers["HX-Retarget"] == "#flash"
            else:
                assert (CLINIC_PHONE in response.text) == patient_page, path
    # A Content-Length that claims more than the limit is refused before the body is read.
    response = client.post(
        link.path,
        data=b"csrf_token=x",
        content_type="application/x-www-form-urlencoded",
        environ_overrides={"CONTENT_LENGTH": str(1 << 30)},
    )
    assert response.status_code == 413
    assert gateway.charges == [] and counts(app) == before


MALFORMED = [
    ("binary garbage as a form", bytes(range(256)) * 8, "application/x-www-form-urlencoded"),
    ("binary garbage as multipart", bytes(range(256)) * 8, "multipart/form-data"),
    ("binary garbage, boundary given", bytes(range(256)) * 8, "multipart/form-data; boundary=b"),
    (
        "a multipart body cut short",
        b'--b\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nx',
        "multipart/form-data; boundary=b",
    ),
    (
        "a 5,000 character boundary",
        b"--" + b"b" * 5000 + b"\r\n",
        "multipart/form-data; boundary=" + "b" * 5000,
    ),
    ("JSON", b'{"csrf_token": "x", "source_id": "cnon:card-nonce-ok"}', "application/json"),
    (
        "XML with an external entity",
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
        "application/xml",
    ),
    ("plain text", b"csrf_token=x&source_id=y", "text/plain"),
    ("no content type", b"csrf_token=x&source_id=y", None),
    (
        "broken percent-encoding",
        b"csrf_token=%zz%&source_id=%E0%A4%A&%",
        "application/x-www-form-urlencoded",
    ),
    (
        "bytes that are not UTF-8",
        b"csrf_token=\xff\xfe&source_id=\xc3\x28",
        "application/x-www-form-urlencoded",
    ),
    ("a 60 KB field name", b"a" * 60_000 + b"=1", "application/x-www-form-urlencoded"),
    (
        "5,000 fields",
        "&".join(f"f{i}=1" for i in range(5000)).encode(),
        "application/x-www-form-urlencoded",
    ),
    (
        "1,100 multipart parts",
        b"".join(
            b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n1\r\n' % i
            for i in range(1100)
        )
        + b"--b--\r\n",
        "multipart/form-data; boundary=b",
    ),
    ("a NUL in a field", b"csrf_token=a\x00b&source_id=\x00", "application/x-www-form-urlencoded"),
    ("an unknown charset", b"csrf_token=x", "application/x-www-form-urlencoded; charset=utf-7"),
]


@pytest.mark.parametrize("config_overrides", [{"PROPAGATE_EXCEPTIONS": False}])
def test_malformed_bodies_are_refused_plainly_and_never_crash(
    app, client, staff, gateway, link_factory
):
    link = link_factory()
    open_pay_page(client, link.path)
    before = counts(app)
    for name, body, content_type in MALFORMED:
        for who, path in (
            (client, link.path),
            (client, "/login"),
            (staff, "/links/new"),
            (client, "/csp-report"),
            (client, "/webhooks/square"),  # not configured in demo mode: a plain 404
        ):
            headers = {"Content-Type": content_type} if content_type else {}
            response = who.post(path, data=body, headers=headers)
            assert response.status_code in (400, 404, 413, 415, 422), (
                name,
                path,
                response.status_code,
            )
    assert gateway.charges == []
    assert counts(app) == before


def test_a_post_that_repeats_a_field_with_another_value_is_refused(
    app, client, gateway, link_factory
):
    link = link_factory()
    page = open_pay_page(client, link.path)
    body = (
        f"csrf_token={page.csrf}&csrf_token=not-the-token"
        "&source_id=cnon:card-nonce-ok&source_id=cnon:card-nonce-declined"
        f"&attempt_key={page.attempt_key}&attempt_key=another-attempt-key-000001"
        "&postal_code=94103&postal_code=10001"
    )
    response = client.post(link.path, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 422), response.status_code
    assert gateway.charges == []


# --- decline spikes ------------------------------------------------------------------------------


@pytest.mark.parametrize("config_overrides", [{"SURGE_MIN_PAYMENT_FAILURES": 3}])
def test_a_surge_of_declines_raises_one_admin_alert(app, client, admin, staff, link_factory):
    first, second = link_factory(), link_factory()
    for link in (first, first):
        submit_card(client, link.path, nonce="cnon:card-nonce-declined")
    assert "surge.started" not in audit_actions(app)
    assert "Surge of card payment failures" not in admin.get("/links").text
    for link in (second, second, first):
        submit_card(client, link.path, nonce="cnon:card-nonce-declined")
    assert audit_actions(app).count("surge.started") == 1  # once per incident, not per decline
    with app.app_context():
        surge = get_session().query(AuditEvent).filter_by(action="surge.started").one()
        assert surge.detail.startswith("3 card payment failures")
    assert "Surge of card payment failures" in admin.get("/links").text
    assert "Surge of card payment failures" not in staff.get("/links").text  # admins only
    outbox = Path(app.config["OUTBOX_DIR"])
    assert len(list(outbox.glob("surge-*-started-*.eml"))) == 1  # the one active admin


# --- the CSP report endpoint ---------------------------------------------------------------------


def stored_reports(app) -> list[CspReport]:
    with app.app_context():
        return get_session().query(CspReport).order_by(CspReport.id).all()


def test_csp_reports_of_both_shapes_are_stored_without_link_tokens(app, client, link_factory):
    link = link_factory()
    classic = client.post(
        "/csp-report",
        data=json.dumps(
            {
                "csp-report": {
                    "document-uri": f"http://localhost{link.path}",
                    "violated-directive": "script-src-elem",
                    "blocked-uri": "https://evil.example/skim.js",
                    "original-policy": "default-src 'self'; report-uri /csp-report",
                }
            }
        ),
        content_type="application/csp-report",
    )
    reporting_api = client.post(
        "/csp-report",
        data=json.dumps(
            [
                {
                    "type": "csp-violation",
                    "age": 10,
                    "url": f"http://localhost{link.path}",
                    "body": {
                        "documentURL": f"http://localhost{link.path}",
                        "effectiveDirective": "script-src-elem",
                        "blockedURL": "inline",
                        "disposition": "enforce",
                    },
                }
            ]
        ),
        content_type="application/reports+json",
    )
    assert classic.status_code == reporting_api.status_code == 204
    reports = stored_reports(app)
    assert [r.violated_directive for r in reports] == ["script-src-elem", "script-src-elem"]
    assert reports[0].blocked_uri == "https://evil.example/skim.js"
    assert all(r.document_uri == "http://localhost/pay/[token]" for r in reports)
    assert all(link.token not in r.raw for r in reports)
    assert audit_actions(app).count("csp.violation") == 2


def test_csp_report_garbage_is_400_and_oversized_is_413_and_nothing_is_stored(app, client):
    garbage = [
        b"not json",
        b"",
        b"{}",
        b"[]",
        b"[1]",
        b'"csp-report"',
        b"null",
        b'{"csp-report": "x"}',
        b'{"csp-report": ["x"]}',
        b'[{"type": "csp-violation"}]',
        b"\xff\xfe\x00",
        b'{"csp-report": {' + b'"a":' * 100 + b"1}",
    ]
    for body in garbage:
        response = client.post("/csp-report", data=body, content_type="application/csp-report")
        assert response.status_code == 400, body
    big = json.dumps({"csp-report": {"blocked-uri": "x" * 9000}})
    assert (
        client.post("/csp-report", data=big, content_type="application/csp-report").status_code
        == 413
    )
    assert stored_reports(app) == []
    assert "csp.violation" not in audit_actions(app)


@pytest.mark.parametrize("config_overrides", [{**LIMITED, "RATELIMIT_CSP_REPORT": "5 per minute"}])
def test_csp_reports_are_rate_limited(app, client):
    body = json.dumps({"csp-report": {"violated-directive": "img-src"}})
    codes = [
        client.post("/csp-report", data=body, content_type="application/csp-report").status_code
        for _ in range(8)
    ]
    assert codes == [204] * 5 + [429] * 3
    assert len(stored_reports(app)) == 5
