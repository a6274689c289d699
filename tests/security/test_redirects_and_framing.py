"""Open redirects through next=, clickjacking, session fixation and replay, and role escalation
by URL (requirement S3, S5; issue 4: "next= redirects only to local paths")."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from flask import url_for
from flask.sessions import SecureCookieSessionInterface

from payapp.db import get_session
from payapp.models import StaffUser

from ..conftest import (
    ADMIN_EMAIL,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    csrf_from,
    log_in,
    staff_post,
    submit_card,
)
from .conftest import snapshot, staff_user_id

EVIL = "evil.example"
NEXT_ATTEMPTS = [
    f"https://{EVIL}/",
    f"http://{EVIL}",
    f"//{EVIL}",
    f"///{EVIL}",
    f"////{EVIL}/links",
    f"/\\{EVIL}",
    f"\\\\{EVIL}",
    f"\\/{EVIL}",
    f"/\\/{EVIL}",
    f"%2F%2F{EVIL}",
    f"/%2F%2F{EVIL}",
    f"/%2F/{EVIL}",
    f"/%5C{EVIL}",
    f"/%5C%5C{EVIL}",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    f"/\r\nLocation: https://{EVIL}",
    f"/%0d%0aLocation:%20https://{EVIL}",
    f"/\n/{EVIL}",
    f"/ /{EVIL}",
    f" //{EVIL}",
    f"\x00//{EVIL}",
    f"https:{EVIL}",
    f"https:/{EVIL}",
    f"//{EVIL}@localhost",
    f"//localhost@{EVIL}",
    f"/@{EVIL}",
    f"/.{EVIL}",
    f"/links@{EVIL}",
    "//%65vil.example",
    f"/\u2215\u2215{EVIL}",
    f"/\uff0f\uff0f{EVIL}",
    f"http://localhost.{EVIL}/",
    f"/login?next=//{EVIL}",
]
# Python's urlsplit (and so werkzeug, writing the Location header) drops tabs, as browsers do.
TAB_ATTEMPTS = [f"/\t/{EVIL}", f"/\t\t/{EVIL}/login", f"\t//{EVIL}"]
NEXT_ATTEMPTS += TAB_ATTEMPTS


def lands_on(location: str):
    """Where a browser goes for this Location, read after the login page: like a browser, it
    drops tabs and newlines, trims control characters and spaces, and reads \\ as /."""
    cleaned = re.sub(r"[\t\n\r]", "", location).strip("\x00 ").replace("\\", "/")
    return urlsplit(urljoin("http://localhost/login", cleaned))


def assert_local(location: str, attempt: str) -> None:
    target = lands_on(location)
    assert target.scheme == "http" and target.netloc == "localhost", (attempt, location)
    assert EVIL not in target.netloc, (attempt, location)


def hidden_next(html: str) -> str:
    match = re.search(r'<input[^>]*name="next"[^>]*>', html)
    value = re.search(r'value="([^"]*)"', match[0]) if match else None
    return value[1] if value else ""


def test_the_login_page_keeps_only_local_next_paths(client):
    for attempt in NEXT_ATTEMPTS:
        page = client.get("/login", query_string={"next": attempt})
        assert page.status_code == 200, attempt
        kept = hidden_next(page.text)
        assert kept == "" or (kept.startswith("/") and EVIL not in lands_on(kept).netloc), (
            attempt,
            kept,
        )


def test_logging_in_never_redirects_off_site(app):
    client = app.test_client()
    for attempt in NEXT_ATTEMPTS:
        # As a browser would: the next= of the page, and (as a forged form could) the raw value.
        page = client.get("/login", query_string={"next": attempt})
        for posted in {hidden_next(page.text), attempt}:
            response = client.post(
                "/login",
                data={
                    "email": STAFF_EMAIL,
                    "password": STAFF_PASSWORD,
                    "csrf_token": csrf_from(page.text),
                    "next": posted,
                },
            )
            assert response.status_code == 303, (attempt, response.status_code)
            assert_local(response.headers["Location"], attempt)
            page = client.get("/login", query_string={"next": attempt})
    # A local next= is honoured: the checks above could have failed.
    page = client.get("/login", query_string={"next": "/links?q=Jane"})
    assert hidden_next(page.text) == "/links?q=Jane"


def test_the_admin_code_step_does_not_redirect_off_site_either(app):
    """next= waits in the session through the second step; it is checked again at the end."""
    client = app.test_client()
    response = log_in(client, email=ADMIN_EMAIL, next_url=f"//{EVIL}")
    assert response.status_code == 303
    assert_local(response.headers["Location"], f"//{EVIL}")


def test_a_tab_in_next_does_not_redirect_off_site(app, client):
    """werkzeug writes the Location header through urlsplit(), which drops tabs as browsers do:
    next=/%09/evil.example would otherwise leave as "Location: //evil.example"."""
    for attempt in TAB_ATTEMPTS:
        page = client.get("/login", query_string={"next": attempt})
        kept = hidden_next(page.text)
        assert kept == "" or EVIL not in lands_on(kept).netloc, (attempt, kept)
        response = client.post(
            "/login",
            data={
                "email": STAFF_EMAIL,
                "password": STAFF_PASSWORD,
                "csrf_token": csrf_from(page.text),
                "next": attempt,
            },
        )
        assert response.status_code == 303
        # Read raw: the server itself must not name the other site.
        assert EVIL not in response.headers["Location"], (attempt, response.headers["Location"])


@pytest.mark.parametrize("config_overrides", [{"REAUTH_WINDOW": -1}])
def test_re_authentication_never_sends_anyone_off_site(app, admin):
    """A POST that needs a fresh password goes to /reauth with next= the page its form was on,
    taken from the Referer: a Referer from another site must not become the way back."""
    user_id = staff_user_id(app)
    page = admin.get("/links")
    for referer in (f"https://{EVIL}/users", f"//{EVIL}/x", f"http://localhost.{EVIL}/users"):
        response = admin.post(
            f"/users/{user_id}/unlock",
            data={"csrf_token": csrf_from(page.text)},
            headers={"Referer": referer},
        )
        assert response.status_code == 303, referer
        assert_local(response.headers["Location"], referer)
        back = re.search(r"next=([^&]*)", response.headers["Location"])
        assert back is None or EVIL not in back[1], response.headers["Location"]
    for attempt in NEXT_ATTEMPTS:
        reauth = admin.get("/reauth", query_string={"next": attempt})
        kept = hidden_next(reauth.text)
        assert kept == "" or EVIL not in lands_on(kept).netloc, (attempt, kept)


# --- clickjacking ---------------------------------------------------------------------------------


def every_page(app, admin, staff, client, link_factory):
    """One response of every GET route (each with real arguments), every error page, htmx
    fragments, redirects, a download, a static file and the JSON health check."""
    link = link_factory()
    closed = link_factory()
    paid = link_factory()
    submit_card(app.test_client(), paid.path)
    staff_post(staff, f"/links/{closed.id}/cancel", page_url=f"/links/{closed.id}")
    values = {"link_id": link.id, "user_id": staff_user_id(app), "token": link.token}
    responses = {}
    with app.test_request_context():
        urls = {
            rule.rule: url_for(
                rule.endpoint,
                **{a: values.get(a, "js/app.js") for a in rule.arguments},
            )
            for rule in app.url_map.iter_rules()
            if "GET" in rule.methods
        }
    for rule, url in urls.items():
        responses[f"admin GET {rule}"] = admin.get(url)
        responses[f"visitor GET {rule}"] = client.get(url)
    second = app.test_client()
    log_in(second, email=ADMIN_EMAIL, totp_secret="")  # stops at the code step
    responses["login code step"] = second.get("/login/code")
    responses["closed pay page"] = client.get(closed.path)
    responses["paid pay page"] = client.get(paid.path)
    responses["pay fragment"] = submit_card(client, link.path, nonce="cnon:card-nonce-declined")
    responses["link list fragment"] = staff.get("/links", headers={"HX-Request": "true"})
    responses["403"] = staff.get("/audit")
    responses["404"] = client.get("/pay/not-a-token")
    responses["404 elsewhere"] = client.get("/no-such-page")
    responses["405"] = client.get("/logout")
    responses["400 CSRF"] = client.post("/login", data={})
    responses["400 CSRF htmx"] = client.post("/login", headers={"HX-Request": "true"})
    responses["413"] = client.post("/login", data={"x": "y" * 70_000})
    responses["303"] = staff_post(staff, "/links/new", {"patient_name": "x"}, page_url="/links/new")
    responses["csp report 204"] = client.post("/csp-report", json={"csp-report": {"x": "y"}})
    return responses


def test_every_page_type_refuses_to_be_framed(app, admin, staff, client, link_factory):
    pages = every_page(app, admin, staff, client, link_factory)
    get_rules = {r.rule for r in app.url_map.iter_rules() if "GET" in r.methods}
    assert len(pages) >= 2 * len(get_rules) + 10
    statuses = {r.status_code for r in pages.values()}
    assert {200, 204, 302, 303, 400, 403, 404, 405, 410, 413} <= statuses
    for name, response in pages.items():
        assert response.headers.get("X-Frame-Options") == "DENY", name
        policy = response.headers.get("Content-Security-Policy", "")
        directives = [d.strip() for d in policy.split(";")]
        assert "frame-ancestors 'none'" in directives, name


# --- sessions -------------------------------------------------------------------------------------


def test_a_session_cookie_from_before_login_is_replaced_and_grants_nothing(app):
    victim = app.test_client()
    victim.get("/login")
    planted = victim.get_cookie("payapp_session").value  # what an attacker fixed in the browser
    assert log_in(victim).status_code == 303
    assert victim.get_cookie("payapp_session").value != planted
    assert victim.get("/links").status_code == 200
    attacker = app.test_client()
    attacker.set_cookie("payapp_session", planted)
    assert attacker.get("/links").status_code in (302, 303)
    assert attacker.get("/links/new").status_code in (302, 303)


def test_half_an_admin_login_reaches_nothing(app):
    client = app.test_client()
    response = log_in(client, email=ADMIN_EMAIL, totp_secret="")
    assert response.headers["Location"] == "/login/code"
    for path in ("/links", "/audit", "/users", "/security", "/account"):
        assert client.get(path).status_code in (302, 303), path


def test_a_session_cookie_signed_with_another_key_is_ignored(app):
    with app.app_context():
        admin_id = get_session().query(StaffUser).filter_by(email=ADMIN_EMAIL).one().id
    interface = SecureCookieSessionInterface()

    class Other:
        secret_key = "a-key-that-is-not-the-apps-0123456789"
        config = app.config

    forged = interface.get_signing_serializer(Other).dumps(
        {"staff_id": admin_id, "gen": 0, "login_at": 2**40, "seen_at": 2**40, "reauth_at": 2**40}
    )
    client = app.test_client()
    client.set_cookie("payapp_session", forged)
    assert client.get("/audit").status_code in (302, 303)


def test_a_copied_session_cookie_stops_working_once_the_user_logs_out(app, staff):
    """Sessions are signed cookies: a copy taken earlier (a shared PC, a proxy log) must not
    outlive the user's logout (OWASP ASVS 3.3.1)."""
    copied = staff.get_cookie("payapp_session").value
    logout = staff.post("/logout", data={"csrf_token": csrf_from(staff.get("/links").text)})
    assert logout.status_code == 303
    thief = app.test_client()
    thief.set_cookie("payapp_session", copied)
    assert thief.get("/links").status_code in (302, 303)


def test_logging_out_everywhere_ends_copies_of_the_session(app, staff):
    copied = staff.get_cookie("payapp_session").value
    response = staff_post(staff, "/account/logout-everywhere", page_url="/account")
    assert response.status_code == 303
    thief = app.test_client()
    thief.set_cookie("payapp_session", copied)
    assert thief.get("/links").status_code in (302, 303)


# --- role escalation by URL ---------------------------------------------------------------------

ADMIN_ONLY_ENDPOINTS = {"audit.show_audit", "audit.export_audit", "audit.show_security"}


def admin_only_routes(app, link_id: int, user_id: int) -> list[tuple[str, str]]:
    """(method, url) of every admin-only route: the audit pages, every /users route, refunds."""
    found = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if not (rule.endpoint in ADMIN_ONLY_ENDPOINTS or rule.endpoint.startswith("users.")):
                continue
            url = url_for(rule.endpoint, **{a: user_id for a in rule.arguments})
            found += [(m, url) for m in ("GET", "POST") if m in rule.methods]
        found.append(("POST", url_for("staff.refund_link", link_id=link_id)))
    return found


def test_staff_get_403_on_every_admin_route(app, staff, client, paid_link):
    user_id = staff_user_id(app)
    with app.app_context():
        admin_id = get_session().query(StaffUser).filter_by(email=ADMIN_EMAIL).one().id
    routes = admin_only_routes(app, paid_link.id, admin_id)
    assert len(routes) >= 5
    token = csrf_from(staff.get("/links").text)
    before = snapshot(app)
    for method, url in routes:
        data = {
            "csrf_token": token,
            "payment_id": "1",
            "amount": "1.00",
            "reason": "escalation",
            "refund_key": "escalation-0001",
            "email": "new-admin@example.com",
            "role": "admin",
            "password": "a-new-pass-phrase-9",
        }
        for headers in ({}, {"HX-Request": "true"}):
            response = staff.open(url, method=method, data=data, headers=headers)
            assert response.status_code == 403, (method, url, headers, response.status_code)
        anonymous = client.open(
            url, method=method, data={"csrf_token": csrf_from(client.get("/login").text)}
        )
        assert anonymous.status_code in (302, 303), (method, url)
        assert "/login" in anonymous.headers["Location"]
    assert snapshot(app) == before
    # The staff user is still staff, and still cannot refund.
    with app.app_context():
        me = get_session().get(StaffUser, user_id)
        assert me.role == "staff" and not me.can_refund
