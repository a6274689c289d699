"""Staff login and logout, sessions, and the passwords behind them."""

from datetime import timedelta

import pytest
import time_machine

from payapp.auth import UserError, create_user, safe_next
from payapp.db import get_session
from payapp.models import AuditEvent, StaffUser

from .conftest import STAFF_EMAIL, STAFF_PASSWORD, csrf_from, log_in


def test_login_page_has_labelled_email_and_password_fields(client):
    html = client.get("/login").text
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert 'autocomplete="current-password"' in html


def test_good_credentials_log_in_and_land_on_the_links(client):
    response = log_in(client)
    assert response.status_code == 303 and response.headers["Location"] == "/links"
    assert "Payment links" in client.get("/links").text


def test_email_is_case_insensitive(client):
    assert log_in(client, email=STAFF_EMAIL.upper()).status_code == 303


@pytest.mark.parametrize(
    ("email", "password"),
    [(STAFF_EMAIL, "wrong password!!"), ("nobody@example.com", STAFF_PASSWORD), (STAFF_EMAIL, "")],
)
def test_bad_credentials_get_the_same_message_whatever_was_wrong(client, email, password):
    response = log_in(client, email=email, password=password)
    assert response.status_code == 422
    if password:
        assert "Email or password is incorrect." in response.text
    assert client.get("/links").status_code == 302  # still logged out


def test_staff_pages_send_anonymous_visitors_to_login(client):
    for path in ("/links", "/links/new", "/links/1"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_htmx_requests_are_redirected_with_a_header(client):
    response = client.get("/links", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"].startswith("/login")


def test_next_takes_you_back_to_a_local_page(client):
    response = log_in(client, next_url="/links/new")
    assert response.headers["Location"] == "/links/new"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/links\r\nSet-Cookie: x=1",
    ],
)
def test_next_never_leaves_the_site(client, target):
    assert safe_next(target) is None
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "email": STAFF_EMAIL,
            "password": STAFF_PASSWORD,
            "csrf_token": csrf_from(page.text),
            "next": target,
        },
    )
    assert response.headers["Location"] == "/links"


def test_login_without_csrf_token_is_refused(client):
    response = client.post("/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD})
    assert response.status_code == 400
    assert client.get("/links").status_code == 302


def test_login_starts_a_fresh_session(client):
    client.get("/login")
    before = client.get_cookie("payapp_session").value
    log_in(client)
    assert client.get_cookie("payapp_session").value != before


def test_logout_ends_the_session(staff):
    page = staff.get("/links")
    response = staff.post("/logout", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    assert staff.get("/links").status_code == 302


def test_an_idle_session_times_out(staff):
    with time_machine.travel(timedelta(minutes=16)):
        assert staff.get("/links").status_code == 302


def test_an_active_session_stays_logged_in(staff):
    with time_machine.travel(timedelta(minutes=10)):
        assert staff.get("/links").status_code == 200


def test_ten_failed_logins_lock_the_account_for_a_while(app, client):
    for _ in range(10):
        log_in(client, password="wrong password!!")
    locked = log_in(client)
    assert locked.status_code == 422 and "Too many failed attempts" in locked.text
    with time_machine.travel(timedelta(minutes=16)):
        assert log_in(client).status_code == 303
    with app.app_context():
        actions = [e.action for e in get_session().query(AuditEvent)]
    assert "account.locked" in actions and actions.count("login.failed") == 10


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_the_login_form_is_rate_limited(app):
    client = app.test_client()
    responses = [log_in(client, password="wrong password!!") for _ in range(12)]
    assert [r.status_code for r in responses] == [422] * 10 + [429, 429]
    assert "Too many attempts" in responses[-1].text and "call the clinic" in responses[-1].text


def test_passwords_are_stored_hashed_with_scrypt(app):
    with app.app_context():
        user = get_session().query(StaffUser).filter_by(email=STAFF_EMAIL).one()
    assert user.password_hash.startswith("scrypt:") and STAFF_PASSWORD not in user.password_hash


@pytest.mark.parametrize(
    ("email", "password", "role", "message"),
    [
        ("a@example.com", "short", "staff", "at least 12"),
        ("not-an-email", "long enough password", "staff", "valid email"),
        ("a@example.com", "long enough password", "owner", "admin or staff"),
        (STAFF_EMAIL, "long enough password", "staff", "already exists"),
    ],
)
def test_bad_users_are_refused(app, email, password, role, message):
    with app.app_context(), pytest.raises(UserError, match=message):
        create_user(get_session(), email, password, role)
