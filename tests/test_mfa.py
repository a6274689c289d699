"""Two-step verification: TOTP codes and recovery codes, enrolment, the login's code step."""

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
import time_machine

from payapp import mfa
from payapp.accounts import create_user
from payapp.db import get_session

from .conftest import (
    ADMIN_EMAIL,
    ADMIN_TOTP_SECRET,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    audit_actions,
    csrf_from,
    fresh_totp,
    log_in,
    staff_post,
    stored_user,
    submit_code,
)

NOW = datetime(2026, 12, 1, 9, 0, 15, tzinfo=UTC)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NEW_ADMIN = "owner@example.com"


def code_at(when, secret=SECRET):
    return pyotp.TOTP(secret).at(when)


# --- TOTP and recovery codes, without HTTP ------------------------------------------------------


def test_a_totp_code_is_accepted_one_step_either_side_of_now():
    counter = mfa.counter_at(NOW)
    for offset in (-30, 0, 30):
        assert mfa.verify_totp(SECRET, code_at(NOW + timedelta(seconds=offset)), None, NOW)
    assert mfa.verify_totp(SECRET, code_at(NOW), None, NOW) == counter
    for offset in (-61, 61, 3600):
        assert mfa.verify_totp(SECRET, code_at(NOW + timedelta(seconds=offset)), None, NOW) is None


def test_a_totp_code_is_refused_when_its_step_was_already_used():
    counter = mfa.verify_totp(SECRET, code_at(NOW), None, NOW)
    assert mfa.verify_totp(SECRET, code_at(NOW), counter, NOW) is None  # the same code again
    earlier = code_at(NOW - timedelta(seconds=30))
    assert mfa.verify_totp(SECRET, earlier, counter, NOW) is None  # an older one after it
    later = code_at(NOW + timedelta(seconds=30))
    assert mfa.verify_totp(SECRET, later, counter, NOW) == counter + 1


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", None])
def test_malformed_codes_are_refused(typed):
    assert mfa.verify_totp(SECRET, typed, None, NOW) is None


def test_spaces_in_a_typed_code_do_not_matter():
    code = code_at(NOW)
    assert mfa.verify_totp(SECRET, f" {code[:3]} {code[3:]} ", None, NOW)


def test_recovery_codes_are_random_readable_and_stored_only_as_digests():
    codes = mfa.new_recovery_codes()
    assert len(codes) == 10 == len(set(codes))
    assert all(re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", c) for c in codes)
    kept = mfa.store_recovery_codes(codes)
    assert all(c not in kept and c.replace("-", "") not in kept for c in codes)
    assert mfa.count_recovery_codes(kept) == 10


def test_a_recovery_code_works_once_however_it_is_typed():
    codes = mfa.new_recovery_codes()
    kept = mfa.store_recovery_codes(codes)
    after = mfa.use_recovery_code(kept, codes[3].upper().replace("-", " "))
    assert after is not None and mfa.count_recovery_codes(after) == 9
    assert mfa.use_recovery_code(after, codes[3]) is None
    assert mfa.use_recovery_code(after, "aaaa-bbbb-cccc") is None


# --- Enrolment ----------------------------------------------------------------------------------


def enrol(client, app, email):
    """Go through the set-up page like a person with an authenticator app; returns the secret
    read from the page and the recovery codes shown."""
    page = client.get("/account/two-step")
    assert page.status_code == 200
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page.text)[1].replace(" ", "")
    response = client.post(
        "/account/two-step",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 200, response.text
    codes = re.findall(r"<li><code>([a-z2-9-]{14})</code></li>", response.text)
    return secret, codes


def test_the_set_up_page_shows_a_qr_code_and_the_key_without_inline_code(app, staff):
    page = staff.get("/account/two-step")
    html = page.text
    assert "<svg" in html and "QR code for your authenticator app" in html
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', html)[1].replace(" ", "")
    assert stored_user(app, STAFF_EMAIL).totp_secret == secret
    assert not stored_user(app, STAFF_EMAIL).mfa_enabled  # not on until a code confirms it
    assert '<label for="code">6-digit code</label>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html and "<style" not in html and not re.search(r"\son[a-z]+=", html)
    # Reloading keeps the same key: an app that scanned it stays right.
    assert secret in staff.get("/account/two-step").text.replace(" ", "")


def test_a_wrong_code_does_not_turn_two_step_on(app, staff):
    page = staff.get("/account/two-step")
    response = staff.post(
        "/account/two-step", data={"code": "000000", "csrf_token": csrf_from(page.text)}
    )
    assert response.status_code == 422 and "did not match" in response.text
    assert not stored_user(app, STAFF_EMAIL).mfa_enabled


def test_enrolling_shows_ten_recovery_codes_once_and_keeps_only_digests(app, staff):
    secret, codes = enrol(staff, app, STAFF_EMAIL)
    assert len(codes) == 10
    user = stored_user(app, STAFF_EMAIL)
    assert user.mfa_enabled and user.totp_secret == secret
    assert not any(c in user.recovery_codes for c in codes)
    assert "mfa.enrolled" in audit_actions(app)
    assert "On" in staff.get("/account").text and all(
        c not in staff.get("/account").text for c in codes
    )
    assert staff.get("/account/two-step").status_code == 302  # already on: back to the account


def test_after_enrolling_login_takes_a_password_then_a_code(app, staff):
    secret, _ = enrol(staff, app, STAFF_EMAIL)
    browser = app.test_client()
    first = log_in(browser)
    assert first.status_code == 303 and first.headers["Location"] == "/login/code"
    assert browser.get("/links").status_code == 302  # the password alone logs nobody in
    page = browser.get("/login/code").text
    assert '<label for="code">Authentication code</label>' in page
    assert 'autocomplete="one-time-code"' in page
    wrong = submit_code(browser, "000000")
    assert wrong.status_code == 422 and "That code did not work" in wrong.text
    good = submit_code(browser, fresh_totp(app, STAFF_EMAIL, secret))
    assert good.status_code == 303 and good.headers["Location"] == "/dashboard"
    assert browser.get("/links").status_code == 200


def test_a_code_is_refused_the_second_time_within_its_window(app):
    with time_machine.travel(NOW, tick=False):
        code = code_at(NOW, ADMIN_TOTP_SECRET)
        first = app.test_client()
        log_in(first, email=ADMIN_EMAIL, totp_secret="")
        assert submit_code(first, code).status_code == 303
        second = app.test_client()
        log_in(second, email=ADMIN_EMAIL, totp_secret="")
        replay = submit_code(second, code)
        assert replay.status_code == 422 and second.get("/links").status_code == 302
        # The next step's code (phones run a little fast) still works.
        assert (
            submit_code(second, code_at(NOW + timedelta(seconds=30), ADMIN_TOTP_SECRET)).status_code
            == 303
        )


def test_a_recovery_code_logs_in_once(app, staff):
    _, codes = enrol(staff, app, STAFF_EMAIL)
    browser = app.test_client()
    log_in(browser)
    used = submit_code(browser, codes[0])
    assert used.status_code == 303
    landing = browser.get("/links").text
    assert "You used a recovery code" in landing and "you have 9 left" in landing
    again = app.test_client()
    log_in(again)
    assert submit_code(again, codes[0]).status_code == 422
    assert submit_code(again, codes[1].upper()).status_code == 303
    assert audit_actions(app).count("mfa.recovery_code_used") == 2


def test_the_code_step_expires_after_five_minutes(app):
    browser = app.test_client()
    log_in(browser, email=ADMIN_EMAIL, totp_secret="")
    token = csrf_from(browser.get("/login/code").text)
    with time_machine.travel(timedelta(minutes=6)):
        code = fresh_totp(app, ADMIN_EMAIL, ADMIN_TOTP_SECRET)
        response = browser.post("/login/code", data={"code": code, "csrf_token": token})
        assert response.status_code == 303 and response.headers["Location"] == "/login"
        assert browser.get("/links").status_code == 302
        assert "Log in again" in browser.get("/login").text


def test_wrong_codes_count_towards_the_account_lock(app):
    browser = app.test_client()
    log_in(browser, email=ADMIN_EMAIL, totp_secret="")
    for _ in range(5):
        assert submit_code(browser, "000000").status_code == 422
    blocked = submit_code(browser, fresh_totp(app, ADMIN_EMAIL, ADMIN_TOTP_SECRET))
    assert blocked.status_code == 422 and "Too many wrong attempts" in blocked.text
    assert stored_user(app, ADMIN_EMAIL).failed_logins == 5


def test_new_recovery_codes_replace_the_old_ones(app, staff):
    _, old = enrol(staff, app, STAFF_EMAIL)
    response = staff_post(staff, "/account/recovery-codes", page_url="/account")
    assert response.status_code == 200 and "Your old codes no longer work" in response.text
    new = re.findall(r"<li><code>([a-z2-9-]{14})</code></li>", response.text)
    assert len(new) == 10 and not set(new) & set(old)
    browser = app.test_client()
    log_in(browser)
    assert submit_code(browser, old[0]).status_code == 422
    assert submit_code(browser, new[0]).status_code == 303


# --- Who must use it ----------------------------------------------------------------------------


@pytest.fixture
def new_admin(app):
    with app.app_context():
        create_user(get_session(), NEW_ADMIN, STAFF_PASSWORD, "admin")
    return NEW_ADMIN


def test_an_admin_without_two_step_must_set_it_up_before_anything_else(app, new_admin):
    browser = app.test_client()
    response = log_in(browser, email=new_admin, next_url="/users")
    assert response.status_code == 303 and response.headers["Location"] == "/account/two-step"
    for path in ("/links", "/links/new", "/users", "/account", "/reauth"):
        blocked = browser.get(path)
        assert blocked.status_code == 302 and blocked.headers["Location"] == "/account/two-step", (
            path
        )
    setup = browser.get("/account/two-step").text
    assert "Admins must use two-step verification" in setup
    menu = re.search(r"<nav.*?</nav>", setup, re.S)[0]
    assert 'href="/links"' not in menu and "Log out" in menu  # no menu to wander off through
    assert browser.post("/links/new", data={"csrf_token": csrf_from(setup)}).status_code == 303

    page = browser.get("/account/two-step")
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page.text)[1].replace(" ", "")
    done = browser.post(
        "/account/two-step",
        data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_from(page.text)},
    )
    assert re.search(r'href="/users">I have saved them', done.text)  # on to where they were going
    assert browser.get("/users").status_code == 200


@pytest.mark.parametrize("config_overrides", [{"REQUIRE_MFA_FOR_STAFF": True}])
def test_a_clinic_can_require_two_step_for_staff_too(app):
    browser = app.test_client()
    assert log_in(browser).headers["Location"] == "/account/two-step"
    setup = browser.get("/account/two-step").text
    assert f"Everyone at {app.config['CLINIC_NAME']} must use two-step verification" in setup


def test_staff_may_use_the_links_without_two_step_by_default(staff):
    assert staff.get("/links").status_code == 200
    assert "Set up two-step verification" in staff.get("/account").text


def test_an_admin_reset_removes_two_step_and_ends_the_users_sessions(app, staff, admin):
    enrol(staff, app, STAFF_EMAIL)
    target = stored_user(app, STAFF_EMAIL).id
    response = staff_post(admin, f"/users/{target}/two-step/reset", page_url=f"/users/{target}")
    assert response.status_code == 303
    user = stored_user(app, STAFF_EMAIL)
    assert not user.mfa_enabled and user.totp_secret is None and user.recovery_codes == ""
    assert staff.get("/links").status_code == 302
    assert log_in(app.test_client()).headers["Location"] == "/dashboard"  # staff: password only now
    assert "user.mfa_reset" in audit_actions(app)


def test_an_admin_whose_two_step_was_reset_enrols_again_at_next_login(app, runner):
    with app.app_context():
        result = runner.invoke(args=["reset-mfa", ADMIN_EMAIL])
    assert result.exit_code == 0, result.output
    browser = app.test_client()
    assert log_in(browser, email=ADMIN_EMAIL).headers["Location"] == "/account/two-step"
