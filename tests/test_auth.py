"""Staff login and logout, passwords, throttling and lockout, sessions, and re-authentication."""

import re
import statistics
import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from payapp import passwords
from payapp.accounts import UserError, clear_failures, create_user, find_user
from payapp.db import get_session
from payapp.login import LoginPolicy
from payapp.passwords import common_passwords, password_problem
from payapp.views.guards import reauth_required, safe_next

from .conftest import (
    ADMIN_EMAIL,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    audit_actions,
    csrf_from,
    fresh_totp,
    log_in,
    staff_post,
    stored_user,
)

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
WRONG = "wrong password!!"


def comparable(html: str, *emails: str) -> str:
    """A page with what legitimately differs between two responses taken out: the CSRF token,
    the CSP nonce and the email the visitor typed."""
    html = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+', r"\1", html)
    html = re.sub(r'(name="csrf-token" content=")[^"]+', r"\1", html)
    html = re.sub(r'nonce="[^"]+"', 'nonce=""', html)
    for email in emails:
        html = html.replace(email, "EMAIL")
    return html


# --- The login form ----------------------------------------------------------------------------


def test_login_page_has_labelled_email_and_password_fields(client):
    html = client.get("/login").text
    assert '<label for="email">Email</label>' in html
    assert '<label for="password">Password</label>' in html
    assert 'autocomplete="current-password"' in html


def test_good_credentials_log_in_and_land_on_the_dashboard(client):
    response = log_in(client)
    assert response.status_code == 303 and response.headers["Location"] == "/dashboard"
    assert "Payment links" in client.get("/links").text


def test_email_is_case_insensitive(client):
    assert log_in(client, email=STAFF_EMAIL.upper()).status_code == 303


@pytest.mark.parametrize(
    ("email", "password"),
    [(STAFF_EMAIL, WRONG), ("nobody@example.com", STAFF_PASSWORD), (STAFF_EMAIL, "")],
)
def test_bad_credentials_get_the_same_message_whatever_was_wrong(client, email, password):
    response = log_in(client, email=email, password=password)
    assert response.status_code == 422
    if password:
        assert "Email or password is incorrect." in response.text
    assert client.get("/links").status_code == 302  # still logged out


def test_staff_pages_send_anonymous_visitors_to_login(client):
    for path in ("/links", "/links/new", "/links/1", "/account", "/users"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login?next=")


def test_htmx_requests_are_redirected_with_a_header(client):
    response = client.get("/links", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"].startswith("/login")


def test_next_takes_you_back_to_a_local_page(client):
    response = log_in(client, next_url="/links/new")
    assert response.headers["Location"] == "/links/new"


def test_next_survives_the_code_step(client):
    response = log_in(client, email=ADMIN_EMAIL, next_url="/users")
    assert response.headers["Location"] == "/users"


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
    assert response.headers["Location"] == "/dashboard"


def test_login_without_csrf_token_is_refused(client):
    response = client.post("/login", data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD})
    assert response.status_code == 400
    assert client.get("/links").status_code == 302


def test_login_starts_a_fresh_session(client):
    client.get("/login")
    before = client.get_cookie("payapp_session").value
    log_in(client)
    assert client.get_cookie("payapp_session").value != before


def test_logout_ends_the_session(app, staff):
    page = staff.get("/links")
    response = staff.post("/logout", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    assert staff.get("/links").status_code == 302
    assert "logout" in audit_actions(app)


def test_logging_out_ends_copies_of_the_session_and_the_users_other_sessions(app, staff):
    copied = staff.get_cookie("payapp_session").value
    phone = app.test_client()
    log_in(phone)
    staff.post("/logout", data={"csrf_token": csrf_from(staff.get("/links").text)})
    thief = app.test_client()
    thief.set_cookie("payapp_session", copied)
    assert thief.get("/links").status_code == 302
    assert phone.get("/links").status_code == 302


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\x7f/evil.example", "/links\x00"])
def test_next_refuses_control_characters(client, target):
    """Browsers drop tabs: "/<tab>/evil.example" would land on //evil.example."""
    assert safe_next(target) is None
    assert log_in(client, next_url=target).headers["Location"] == "/dashboard"


def test_next_keeps_a_local_path_with_its_query():
    assert safe_next("/links?q=Jane&status=open") == "/links?q=Jane&status=open"


def test_an_idle_session_times_out(staff):
    with time_machine.travel(timedelta(minutes=16)):
        assert staff.get("/links").status_code == 302


def test_an_active_session_stays_logged_in(staff):
    with time_machine.travel(timedelta(minutes=10)):
        assert staff.get("/links").status_code == 200


def test_a_session_ends_after_its_absolute_lifetime_even_when_active(staff):
    for minutes in range(14, 600, 14):  # busy all day: never idle for 15 minutes
        with time_machine.travel(timedelta(minutes=minutes)):
            assert staff.get("/links").status_code == 200
    with time_machine.travel(timedelta(minutes=601)):
        assert staff.get("/links").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_the_login_form_is_rate_limited(app):
    client = app.test_client()
    responses = [log_in(client, password=WRONG) for _ in range(12)]
    assert [r.status_code for r in responses] == [422] * 10 + [429, 429]
    assert "Too many attempts" in responses[-1].text and "Wait and try again" in responses[-1].text
    assert "Questions about a bill" not in responses[-1].text  # the staff layout, not a patient's


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_the_code_step_shares_the_login_rate_limit(app):
    client = app.test_client()
    # One clock minute throughout: "10 per minute" restarts when a real minute ends mid-test.
    with time_machine.travel(datetime.now(UTC), tick=False):
        for _ in range(9):
            log_in(client, email="nobody@example.com")
        login = log_in(client, email=ADMIN_EMAIL, totp_secret="")
        assert login.headers["Location"] == "/login/code"
        page = client.get("/login/code")
        response = client.post(
            "/login/code", data={"code": "123456", "csrf_token": csrf_from(page.text)}
        )
    assert response.status_code == 429


# --- Passwords ---------------------------------------------------------------------------------


@pytest.mark.real_password_hash
def test_passwords_are_stored_hashed_with_scrypt(app):
    stored = stored_user(app)
    assert stored.password_hash.startswith("scrypt:") and STAFF_PASSWORD not in stored.password_hash


def test_the_common_password_list_is_a_few_thousand_long_with_the_classics():
    common = common_passwords()
    assert len(common) > 5000
    for classic in ("123456", "password", "qwerty", "iloveyou", "letmein", "password1234"):
        assert classic in common


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 12"),
        ("x" * 257, "at most 256"),
        ("password1234", "commonly used"),
        ("Password1234", "commonly used"),
        ("qwertyuiopas", "commonly used"),
        ("123456789012", "commonly used"),
        ("1q2w3e4r5t6y", "commonly used"),
        ("dragon2026!!!", "commonly used"),  # a common password with digits and symbols added
        ("!!sunshine1987", "commonly used"),
        ("aaaaaaaaaaaaaa", "repeats too few"),
        ("abcabcabcabcabc", "repeats too few"),
        ("frontdesk@example.com", "email"),
        ("FRONTDESK@example.com", "email"),
        ("frontdesk2026!", "email"),  # the email's name with digits added
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password, message):
    problem = password_problem(password, STAFF_EMAIL)
    assert problem and message in problem


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "maple lantern orbit river",
        "Tr0ub4dor&3-extended",
        "bright smile dental",
    ],
)
def test_long_uncommon_passwords_are_accepted(password):
    assert password_problem(password, STAFF_EMAIL) is None


@pytest.mark.parametrize(
    ("email", "password", "role", "message"),
    [
        ("a@example.com", "short", "staff", "at least 12"),
        ("a@example.com", "password1234", "staff", "commonly used"),
        ("a@example.com", "a@example.com", "staff", "email"),
        ("not-an-email", "long enough password", "staff", "valid email"),
        ("jane doe@example.com", "long enough password", "staff", "valid email"),
        ("jane@example..com", "long enough password", "staff", "valid email"),
        ("<b>jane</b>@example.com", "long enough password", "staff", "valid email"),
        ("a@example.com", "long enough password", "owner", "admin or staff"),
        (STAFF_EMAIL, "long enough password", "staff", "already exists"),
    ],
)
def test_bad_users_are_refused(app, email, password, role, message):
    with app.app_context(), pytest.raises(UserError, match=message):
        create_user(get_session(), email, password, role)


@pytest.mark.parametrize(
    ("password", "message"),
    [("qwertyuiopas", "commonly used"), ("new@example.com", "email"), ("short", "at least 12")],
)
def test_the_create_user_command_refuses_weak_passwords(app, runner, password, message):
    with app.app_context():
        result = runner.invoke(
            args=["create-user", "new@example.com", "--role", "staff"],
            env={"PAYAPP_PASSWORD": password},
        )
    assert result.exit_code != 0 and message in result.output
    assert stored_user(app, "new@example.com") is None


def change_password(client, current, new, confirm=None):
    return staff_post(
        client,
        "/account/password",
        {"current": current, "new": new, "confirm": new if confirm is None else confirm},
    )


def test_changing_the_password_needs_the_current_one_and_a_strong_new_one(app, staff):
    wrong = change_password(staff, WRONG, "maple lantern orbit river")
    assert wrong.status_code == 422 and "current password is not right" in wrong.text
    weak = change_password(staff, STAFF_PASSWORD, "password1234")
    assert weak.status_code == 422 and "commonly used" in weak.text
    as_email = change_password(staff, STAFF_PASSWORD, STAFF_EMAIL)
    assert as_email.status_code == 422 and "email" in as_email.text
    mismatch = change_password(staff, STAFF_PASSWORD, "maple lantern orbit river", "maple lantern")
    assert mismatch.status_code == 422 and "not the same" in mismatch.text

    done = change_password(staff, STAFF_PASSWORD, "maple lantern orbit river")
    assert done.status_code == 303
    assert "password.changed" in audit_actions(app)
    assert log_in(staff.application.test_client(), password=STAFF_PASSWORD).status_code == 422
    assert log_in(app.test_client(), password="maple lantern orbit river").status_code == 303


def test_changing_the_password_ends_the_other_sessions_but_not_this_one(app, staff):
    other = app.test_client()
    log_in(other)
    assert change_password(staff, STAFF_PASSWORD, "maple lantern orbit river").status_code == 303
    assert staff.get("/links").status_code == 200
    assert other.get("/links").status_code == 302


# --- Same answer for unknown, known, waiting and locked accounts -------------------------------


def lock(app, email=STAFF_EMAIL):
    with app.app_context():
        u = find_user(get_session(), email)
        u.failed_logins = 10
        u.locked_at = datetime.now(UTC)
        get_session().commit()


def test_unknown_and_known_emails_get_the_same_page(app, client):
    known = log_in(client, email=STAFF_EMAIL, password=WRONG)
    unknown = log_in(client, email="nobody@example.com", password=WRONG)
    assert known.status_code == unknown.status_code == 422
    assert comparable(known.text, STAFF_EMAIL) == comparable(unknown.text, "nobody@example.com")


def test_a_locked_account_gets_the_same_page_even_with_the_right_password(app, client):
    baseline = log_in(client, email="nobody@example.com", password=STAFF_PASSWORD)
    lock(app)
    locked = log_in(client, email=STAFF_EMAIL, password=STAFF_PASSWORD)
    assert locked.status_code == 422
    assert comparable(locked.text, STAFF_EMAIL) == comparable(baseline.text, "nobody@example.com")
    assert "lock" not in locked.text.lower()


def test_a_waiting_or_deactivated_account_gets_the_same_page(app, client):
    baseline = comparable(log_in(client, email="nobody@example.com").text, "nobody@example.com")
    for _ in range(5):
        log_in(client, password=WRONG)
    waiting = log_in(client)
    assert comparable(waiting.text, STAFF_EMAIL) == baseline
    with app.app_context():
        u = find_user(get_session(), ADMIN_EMAIL)
        u.active = False
        get_session().commit()
    inactive = log_in(client, email=ADMIN_EMAIL)
    assert comparable(inactive.text, ADMIN_EMAIL) == baseline


def test_every_refused_login_costs_one_password_hash_check(app, client, monkeypatch):
    calls = []
    real = passwords.check_password_hash
    monkeypatch.setattr(
        passwords, "check_password_hash", lambda h, p: calls.append(h) or real(h, p)
    )
    cases = [("nobody@example.com", STAFF_PASSWORD), (STAFF_EMAIL, WRONG)]
    for email, password in cases:
        calls.clear()
        log_in(client, email=email, password=password)
        assert len(calls) == 1, email
    lock(app)
    calls.clear()
    log_in(client, email=STAFF_EMAIL, password=STAFF_PASSWORD)
    assert len(calls) == 1


@pytest.mark.real_password_hash
def test_unknown_and_known_emails_take_comparable_time(app, client):
    def median_seconds(email):
        times = []
        for _ in range(5):
            page = client.get("/login")
            data = {"email": email, "password": WRONG, "csrf_token": csrf_from(page.text)}
            start = time.perf_counter()
            client.post("/login", data=data)
            times.append(time.perf_counter() - start)
        with app.app_context():  # keep the known account from reaching its waits
            clear_failures(find_user(get_session(), STAFF_EMAIL))
            get_session().commit()
        return statistics.median(times)

    known, unknown = median_seconds(STAFF_EMAIL), median_seconds("nobody@example.com")
    assert 0.5 < known / unknown < 2, (known, unknown)


# --- Growing delays, then a lock an admin clears -----------------------------------------------


def test_the_delay_doubles_with_each_failure_up_to_a_cap():
    policy = LoginPolicy()
    delays = [policy.delay_for(n) for n in range(4, 12)]
    minutes = [d.total_seconds() / 60 if d else 0 for d in delays]
    assert minutes == [0, 1, 2, 4, 8, 15, 15, 15]


def test_after_five_failures_each_try_must_wait_longer(app, client):
    with time_machine.travel(T0, tick=False) as clock:
        for _ in range(5):
            assert log_in(client, password=WRONG).status_code == 422
        assert log_in(client).status_code == 422  # right password, but within the wait
        clock.shift(timedelta(seconds=61))
        assert log_in(client, password=WRONG).status_code == 422  # 6th failure: wait 2 minutes
        clock.shift(timedelta(seconds=110))
        assert log_in(client).status_code == 422
        clock.shift(timedelta(seconds=11))
        assert log_in(client).status_code == 303
    assert stored_user(app).failed_logins == 0  # a good login starts the count again
    events = audit_actions(app)
    assert events.count("login.failed") == 8 and "login" in events


def fail_until_locked(client, clock):
    for _ in range(5):
        log_in(client, password=WRONG)
    for _ in range(5):
        clock.shift(timedelta(minutes=16))
        log_in(client, password=WRONG)


def test_ten_failures_lock_the_account_until_an_admin_clears_it(app, client):
    with time_machine.travel(T0, tick=False) as clock:
        fail_until_locked(client, clock)
        assert stored_user(app).locked_at is not None
        clock.shift(timedelta(days=3))
        assert log_in(client).status_code == 422  # still locked, days later

        admin_client = app.test_client()
        assert log_in(admin_client, email=ADMIN_EMAIL).status_code == 303
        target = stored_user(app).id
        assert "Locked" in admin_client.get("/users").text
        response = staff_post(admin_client, f"/users/{target}/unlock", page_url=f"/users/{target}")
        assert response.status_code == 303
        assert log_in(client).status_code == 303
    events = audit_actions(app)
    assert "account.locked" in events and "user.unlocked" in events
    assert events.count("login.failed") >= 10


@pytest.mark.parametrize("config_overrides", [{"LOGIN_LOCK_SECONDS": 3600}])
def test_a_lock_can_be_set_to_clear_itself(app, client):
    with time_machine.travel(T0, tick=False) as clock:
        fail_until_locked(client, clock)
        clock.shift(timedelta(minutes=59))
        assert log_in(client).status_code == 422
        clock.shift(timedelta(minutes=2))
        assert log_in(client).status_code == 303


def test_the_unlock_user_command_clears_a_lock(app, runner, client):
    lock(app)
    with app.app_context():
        result = runner.invoke(args=["unlock-user", STAFF_EMAIL])
    assert result.exit_code == 0 and "unlocked" in result.output
    assert log_in(client).status_code == 303
    assert "user.unlocked" in audit_actions(app)


# --- Logging out everywhere --------------------------------------------------------------------


def test_log_out_everywhere_ends_every_session_of_that_user(app, staff):
    laptop = app.test_client()
    assert log_in(laptop).status_code == 303
    bystander = app.test_client()
    assert log_in(bystander, email=ADMIN_EMAIL).status_code == 303

    response = staff_post(staff, "/account/logout-everywhere", page_url="/account")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert laptop.get("/links").status_code == 302
    assert staff.get("/links").status_code == 302
    assert bystander.get("/links").status_code == 200  # other users are not affected
    assert "sessions.revoked" in audit_actions(app)
    assert log_in(laptop).status_code == 303  # a new login works as usual


def test_deactivating_a_user_ends_their_sessions(app, staff, admin):
    target = stored_user(app).id
    staff_post(admin, f"/users/{target}/deactivate", page_url=f"/users/{target}")
    assert staff.get("/links").status_code == 302
    assert log_in(app.test_client()).status_code == 422


# --- Re-authentication --------------------------------------------------------------------------


@pytest.fixture
def sensitive(app):
    """A throwaway view behind reauth_required, like the refund view."""

    @reauth_required
    def sensitive_view():
        return "done"

    app.add_url_rule("/test/sensitive", "sensitive", sensitive_view, methods=["GET", "POST"])
    return "/test/sensitive"


def reauth(client, password=None, code=None, next_url="/links"):
    page = client.get(f"/reauth?next={next_url}" + ("&with=password" if password else ""))
    data = {"csrf_token": csrf_from(page.text), "next": next_url}
    data.update(
        {"method": "password", "password": password}
        if password
        else {"method": "code", "code": code}
    )
    return client.post("/reauth", data=data)


def test_a_fresh_login_covers_sensitive_actions_for_five_minutes(app, sensitive, staff):
    with time_machine.travel(timedelta(minutes=4)):
        assert staff.get(sensitive).text == "done"
    with time_machine.travel(timedelta(minutes=6)):
        response = staff.get(sensitive)
        assert response.status_code == 302
        assert response.headers["Location"] == f"/reauth?next={sensitive}"


def test_re_authenticating_with_the_password_returns_to_the_page(app, sensitive, staff):
    with time_machine.travel(timedelta(minutes=6)):
        wrong = reauth(staff, password=WRONG, next_url=sensitive)
        assert wrong.status_code == 422 and "not right" in wrong.text
        response = reauth(staff, password=STAFF_PASSWORD, next_url=sensitive)
        assert response.status_code == 303 and response.headers["Location"] == sensitive
        assert staff.get(sensitive).text == "done"
    assert "reauth" in audit_actions(app)


def test_an_admin_re_authenticates_with_a_totp_code(app, sensitive, admin):
    with time_machine.travel(timedelta(minutes=6)):
        page = admin.get(f"/reauth?next={sensitive}").text
        assert 'name="code"' in page and "Use your password instead" in page
        code = fresh_totp(app, ADMIN_EMAIL, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
        response = reauth(admin, code=code, next_url=sensitive)
        assert response.headers["Location"] == sensitive
        assert reauth(admin, code=code, next_url=sensitive).status_code == 422  # used already
        assert admin.get(sensitive).text == "done"


def test_a_post_that_needs_re_authentication_is_not_replayed(app, sensitive, staff):
    page = staff.get("/links")
    token = csrf_from(page.text)
    with time_machine.travel(timedelta(minutes=6)):
        local = staff.post(
            sensitive,
            data={"csrf_token": token},
            headers={"Referer": "http://localhost/links/7?tab=x"},
        )
        assert local.status_code == 303
        assert local.headers["Location"] == "/reauth?next=/links/7?tab%3Dx"
        foreign = staff.post(
            sensitive, data={"csrf_token": token}, headers={"Referer": "https://evil.example/x"}
        )
        assert foreign.headers["Location"] == "/reauth?next=/links"
        htmx = staff.post(sensitive, data={"csrf_token": token}, headers={"HX-Request": "true"})
        assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/reauth?next=")


def test_wrong_re_authentication_counts_towards_the_lock_and_logs_out(app, staff):
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=6), tick=False) as clock:
        for _ in range(5):
            reauth(staff, password=WRONG)
        waiting = reauth(staff, password=STAFF_PASSWORD)
        assert waiting.status_code == 422 and "Too many wrong attempts" in waiting.text
        for _ in range(5):
            for _ in range(2):  # wait out the delay without the session going idle
                clock.shift(timedelta(minutes=8))
                assert staff.get("/account").status_code == 200
            last = reauth(staff, password=WRONG)
        assert last.status_code == 303 and last.headers["Location"] == "/login"
        assert staff.get("/links").status_code == 302
    assert stored_user(app).locked_at is not None
