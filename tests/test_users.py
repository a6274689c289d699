"""Admin user management under /users, and the role check on every staff and admin URL."""

import re
from datetime import timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import select

from payapp import problems, refunds
from payapp.accounts import create_user, find_user
from payapp.db import get_session
from payapp.models import FailureSurge, LinkRequest, Payment, PaymentLink

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
    submit_card,
)

TARGET = "hygienist@example.com"
GOOD_NEW_PASSWORD = "maple lantern orbit river"  # noqa: S105


@pytest.fixture
def target(app):
    """Another staff account for admins to change."""
    with app.app_context():
        return create_user(get_session(), TARGET, STAFF_PASSWORD, "staff").id


# --- The role × endpoint table (requirement S5) -------------------------------------------------

EXPORT_RANGE = {"from": "2026-11-01", "to": "2026-11-30"}
LOGIN, FORBIDDEN, OK = "redirect to login", "403", "200 or 303"
# Open to everyone by design: the login steps, the patient page, signed webhooks, CSP reports.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/.well-known/apple-developer-merchantid-domain-association"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/login/code"),
    ("POST", "/login/code"),
    ("POST", "/logout"),
    ("GET", "/pay/<token>"),
    ("POST", "/pay/<token>"),
    ("POST", "/pay/<token>/reminders/stop"),
    ("GET", "/reminders/stop/<token>"),
    ("POST", "/reminders/stop/<token>"),
    ("GET", "/pay/<token>/problem"),
    ("POST", "/pay/<token>/problem"),
    ("GET", "/pay/<token>/problem/sent"),
    ("POST", "/pay/<token>/new-link"),
    ("GET", "/pay"),
    ("POST", "/pay"),
    ("GET", "/static/<path:filename>"),
    ("GET", "/assets/<path:filename>"),
    ("POST", "/webhooks/square"),
    ("POST", "/webhooks/twilio"),
    ("POST", "/csp-report"),
}


def link_data(world, client):
    return {
        "patient_name": "Jane Doe",
        "email": "jane@example.com",
        "amount": "50.00",
        "reference": "R-1",
        "expires_in_days": "14",
    }


def refund_data(world, client):
    return {"payment_id": world["payment"], "amount": "1.00", "reason": "test", "refund_key": "k1"}


def two_step_data(world, client):
    page = client.get("/account/two-step")
    secret = re.search(r'<code id="totp-secret">([A-Z2-7 ]+)</code>', page.text)
    return {"code": pyotp.TOTP(secret[1].replace(" ", "")).now()} if secret else {}


def new_password(world, client):
    return {"current": STAFF_PASSWORD, "new": GOOD_NEW_PASSWORD, "confirm": GOOD_NEW_PASSWORD}


def reauth_data(world, client):
    return {"method": "password", "password": GOOD_NEW_PASSWORD, "next": "/links"}


def new_user(world, client):
    return {
        "email": f"new-{world['role']}@example.com",
        "role": "staff",
        "password": GOOD_NEW_PASSWORD,
    }


# (method, URL rule, what a logged-in staff member gets, form data). Anonymous visitors are sent
# to the login page by every one of them; admins get each page or action (200 or 303).
TABLE = [
    ("GET", "/links", OK, None),
    ("GET", "/links/new", OK, None),
    ("POST", "/links/new", OK, link_data),
    ("GET", "/links/<id:link_id>", OK, None),
    ("POST", "/links/<id:link_id>/resend", OK, None),
    ("POST", "/links/<id:link_id>/reminders/stop", OK, None),
    ("POST", "/links/<id:link_id>/cancel", OK, None),
    ("POST", "/links/<id:link_id>/reissue", OK, None),
    ("POST", "/links/<id:link_id>/refund", FORBIDDEN, refund_data),
    ("GET", "/account", OK, None),
    ("GET", "/account/password", OK, None),
    ("POST", "/account/password", OK, new_password),
    ("GET", "/account/two-step", OK, None),
    ("POST", "/account/two-step", OK, two_step_data),
    ("GET", "/reauth", OK, None),
    ("POST", "/reauth", OK, reauth_data),
    ("POST", "/account/recovery-codes", OK, None),
    ("GET", "/users", FORBIDDEN, None),
    ("GET", "/users/new", FORBIDDEN, None),
    ("POST", "/users/new", FORBIDDEN, new_user),
    ("GET", "/users/<id:user_id>", FORBIDDEN, None),
    ("POST", "/users/<id:user_id>/unlock", FORBIDDEN, None),
    ("POST", "/users/<id:user_id>/refunds/grant", FORBIDDEN, None),
    ("POST", "/users/<id:user_id>/refunds/revoke", FORBIDDEN, None),
    ("POST", "/users/<id:user_id>/two-step/reset", FORBIDDEN, None),
    (
        "POST",
        "/users/<id:user_id>/password",
        FORBIDDEN,
        lambda w, c: {"password": GOOD_NEW_PASSWORD},
    ),
    ("POST", "/users/<id:user_id>/deactivate", FORBIDDEN, None),
    ("POST", "/users/<id:user_id>/reactivate", FORBIDDEN, None),
    ("GET", "/dashboard", OK, None),
    ("GET", "/exports", OK, None),
    ("GET", "/exports/links.csv", OK, lambda w, c: EXPORT_RANGE),
    ("GET", "/exports/payments.csv", OK, lambda w, c: EXPORT_RANGE),
    ("GET", "/problems", OK, None),
    ("POST", "/problems/<id:report_id>/resolve", OK, None),
    ("POST", "/link-requests/<id:request_id>/reissue", OK, None),
    ("POST", "/link-requests/<id:request_id>/dismiss", OK, None),
    ("GET", "/audit", FORBIDDEN, None),
    ("GET", "/audit.csv", FORBIDDEN, None),
    ("GET", "/security", FORBIDDEN, None),
    ("POST", "/alerts/<id:incident_id>/acknowledge", FORBIDDEN, None),
    # Last: it ends the session the rows above use.
    ("POST", "/account/logout-everywhere", OK, None),
]


def outcome(response) -> str:
    where = response.headers.get("Location", "")
    if response.status_code in (302, 303) and where.startswith("/login?next="):
        return LOGIN
    if response.status_code == 403:
        return FORBIDDEN
    if response.status_code == 200 or (
        response.status_code in (302, 303)
        and not where.startswith(("/reauth", "/account/two-step"))
    ):
        return OK
    return f"{response.status_code} {where}"


@pytest.fixture
def world(app, client, link_factory, target):
    """An open link, a paid one, and a user to act on."""
    paid = link_factory(reference="PAID-1")
    assert "Payment received" in submit_card(client, paid.path).text
    with app.app_context():
        payment = get_session().scalar(select(Payment.id))
        surge = FailureSurge(kind="message", failures=3, total=3, baseline_rate=0, threshold_rate=0)
        get_session().add(surge)
        get_session().commit()
        session = get_session()
        report = problems.create_report(
            session, session.get(PaymentLink, paid.id), problems.ProblemDraft(category="other")
        ).id
        task = LinkRequest(link_id=paid.id)
        session.add(task)
        session.commit()
        task_id = task.id
    return {
        "link": link_factory().id,
        "paid": paid.id,
        "payment": payment,
        "target": target,
        "surge": surge.id,
        "report": report,
        "request": task_id,
    }


@pytest.mark.parametrize("role", ["anonymous", "staff", "admin"])
def test_every_staff_and_admin_url_checks_the_role(app, world, role):
    client = app.test_client()
    if role != "anonymous":
        assert (
            log_in(client, email=STAFF_EMAIL if role == "staff" else ADMIN_EMAIL).status_code == 303
        )
    world = {**world, "role": role}
    wrong = []
    for method, rule, staff_gets, data in TABLE:
        link = world["paid"] if rule.endswith("/refund") else world["link"]
        path = (
            rule.replace("<id:link_id>", str(link))
            .replace("<id:user_id>", str(world["target"]))
            .replace("<id:incident_id>", str(world["surge"]))
            .replace("<id:report_id>", str(world["report"]))
            .replace("<id:request_id>", str(world["request"]))
        )
        expected = {"anonymous": LOGIN, "staff": staff_gets, "admin": OK}[role]
        if method == "GET":
            query = data(world, client) if data and role != "anonymous" else None
            response = client.get(path, query_string=query)
            response.get_data()  # a streamed export must be read to its end
        else:
            token = csrf_from(client.get("/login" if role == "anonymous" else "/account").text)
            form = data(world, client) if data and role != "anonymous" else {}
            response = client.post(path, data={"csrf_token": token, **form})
        if outcome(response) != expected:
            wrong.append(f"{method} {path}: expected {expected}, got {outcome(response)}")
    assert wrong == []


def test_the_role_table_covers_every_url_of_the_app(app):
    rules = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    in_table = {(method, rule) for method, rule, _, _ in TABLE}
    assert rules - PUBLIC - in_table == set(), "add these URLs to the role table"
    assert in_table - rules == set(), "these URLs in the role table no longer exist"


# --- The users pages ----------------------------------------------------------------------------


def test_the_list_shows_role_two_step_status_refunds_and_last_login(app, admin, target):
    with app.app_context():
        user = find_user(get_session(), TARGET)
        user.failed_logins, user.locked_at = 10, user.created_at
        get_session().commit()
    html = admin.get("/users").text
    for heading in ("Email", "Role", "Two-step", "Status", "Refunds", "Last login"):
        assert f'<th scope="col">{heading}</th>' in html
    row = re.search(
        rf"<tr>\s*<td data-label=\"Email\"><a href=\"/users/{target}\">{TARGET}.*?</tr>", html, re.S
    )[0]
    assert "Locked" in row and "Never" in row and ">Off<" in row and ">No<" in row
    admin_row = re.search(rf"{ADMIN_EMAIL}.*?</tr>", html, re.S)[0]
    assert "(you)" in admin_row and ">On<" in admin_row and "Always" in admin_row


def test_staff_are_refused_every_users_page(staff, target):
    for path in ("/users", "/users/new", f"/users/{target}"):
        assert staff.get(path).status_code == 403
    assert "Users" not in re.search(r"<nav.*?</nav>", staff.get("/links").text, re.S)[0]


def test_a_refused_staff_member_gets_the_staff_layout_with_its_menu(staff):
    response = staff.get("/audit")
    assert response.status_code == 403
    nav = re.search(r'<nav aria-label="Staff">.*?</nav>', response.text, re.S)
    assert nav and ">Links</a>" in nav[0] and ">Your account</a>" in nav[0]
    assert "Questions about a bill" not in response.text
    assert "Back to payment links" in response.text


def test_staff_get_the_staff_layout_for_missing_pages_and_patients_keep_theirs(
    staff, client, link_factory
):
    for path in ("/links/999999", "/no-such-page"):
        page = staff.get(path)
        assert page.status_code == 404 and '<nav aria-label="Staff">' in page.text, path
        assert "Questions about a bill" not in page.text, path
    for c in (staff, client):  # a pay link is the patient's page, whoever opens it
        page = c.get("/pay/not-a-real-token")
        assert page.status_code == 404 and "Questions about a bill" in page.text
        assert '<nav aria-label="Staff">' not in page.text
    page = client.get("/no-such-page")
    assert "Questions about a bill" in page.text and "<nav" not in page.text


def test_an_admin_creates_a_user_who_then_chooses_their_own_password(app, admin):
    response = staff_post(
        admin,
        "/users/new",
        {
            "email": "New.Person@Example.com",
            "role": "staff",
            "password": GOOD_NEW_PASSWORD,
            "can_refund": "y",
        },
    )
    assert response.status_code == 303
    created = stored_user(app, "new.person@example.com")
    assert created.role == "staff" and created.can_refund and created.password_must_change
    assert (
        "Account created for new.person@example.com" in admin.get(response.headers["Location"]).text
    )
    assert "user.created" in audit_actions(app)

    newcomer = app.test_client()
    landing = log_in(newcomer, email="new.person@example.com", password=GOOD_NEW_PASSWORD)
    assert landing.headers["Location"] == "/account/password"
    assert newcomer.get("/links").headers["Location"] == "/account/password"
    assert "Choose your own password" in newcomer.get("/account/password").text
    done = staff_post(
        newcomer,
        "/account/password",
        {
            "current": GOOD_NEW_PASSWORD,
            "new": "quiet harbour lamp 42",
            "confirm": "quiet harbour lamp 42",
        },
    )
    assert done.status_code == 303
    assert newcomer.get("/links").status_code == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"password": "password1234"}, "commonly used"),
        ({"password": "short"}, "at least 12"),
        ({"password": "x@example.com"}, "email"),
        ({"email": "not-an-email"}, "valid email"),
        ({"email": STAFF_EMAIL}, "already exists"),
        ({"role": "owner"}, "admin or staff"),
    ],
)
def test_creating_a_user_explains_what_to_fix(app, admin, fields, message):
    data = {"email": "x@example.com", "role": "staff", "password": GOOD_NEW_PASSWORD, **fields}
    response = staff_post(admin, "/users/new", data)
    assert response.status_code == 422 and message in response.text
    assert 'aria-invalid="true"' in response.text or "role-error" in response.text
    assert stored_user(app, "x@example.com") is None


def test_an_admin_deactivates_and_reactivates_a_user(app, admin, target):
    page = f"/users/{target}"
    assert staff_post(admin, f"{page}/deactivate", page_url=page).status_code == 303
    assert not stored_user(app, TARGET).active
    assert "Deactivated" in admin.get(page).text
    assert log_in(app.test_client(), email=TARGET).status_code == 422
    staff_post(admin, f"{page}/reactivate", page_url=page)
    assert log_in(app.test_client(), email=TARGET).status_code == 303
    assert {"user.deactivated", "user.reactivated"} <= set(audit_actions(app))


def test_an_admin_cannot_deactivate_their_own_account(app, admin):
    me = stored_user(app, ADMIN_EMAIL).id
    assert "Deactivate" not in admin.get(f"/users/{me}").text
    response = staff_post(admin, f"/users/{me}/deactivate", page_url=f"/users/{me}")
    assert "deactivate your own account" in admin.get(response.headers["Location"]).text
    assert stored_user(app, ADMIN_EMAIL).active


def test_an_admin_grants_and_revokes_refunds(app, admin, target):
    page = f"/users/{target}"
    staff_post(admin, f"{page}/refunds/grant", page_url=page)
    assert refunds.can_refund(stored_user(app, TARGET))
    assert "Take away refund permission" in admin.get(page).text
    staff_post(admin, f"{page}/refunds/revoke", page_url=page)
    assert not refunds.can_refund(stored_user(app, TARGET))
    assert {"user.refunds_granted", "user.refunds_revoked"} <= set(audit_actions(app))


def test_a_temporary_password_clears_the_lock_and_ends_the_users_sessions(app, admin, target):
    victim = app.test_client()
    log_in(victim, email=TARGET)
    with app.app_context():
        user = find_user(get_session(), TARGET)
        user.failed_logins, user.locked_at = 10, user.created_at
        get_session().commit()
    page = f"/users/{target}"
    weak = staff_post(admin, f"{page}/password", {"password": "qwertyuiopas"}, page_url=page)
    assert weak.status_code == 422 and "commonly used" in weak.text
    response = staff_post(admin, f"{page}/password", {"password": GOOD_NEW_PASSWORD}, page_url=page)
    assert response.status_code == 303
    user = stored_user(app, TARGET)
    assert user.password_must_change and user.locked_at is None and user.failed_logins == 0
    assert victim.get("/links").status_code == 302
    assert log_in(app.test_client(), email=TARGET, password=GOOD_NEW_PASSWORD).headers[
        "Location"
    ] == ("/account/password")
    assert "user.password_reset" in audit_actions(app)


def test_the_users_pages_ask_to_re_authenticate_after_five_minutes(app, admin, target):
    page = f"/users/{target}"
    token = csrf_from(admin.get(page).text)
    with app.app_context():
        user = find_user(get_session(), TARGET)
        user.failed_logins = 3
        get_session().commit()
    with time_machine.travel(timedelta(minutes=6)):
        assert admin.get("/users").headers["Location"] == "/reauth?next=/users"
        response = admin.post(
            f"{page}/unlock",
            data={"csrf_token": token},
            headers={"Referer": f"http://localhost{page}"},
        )
        assert (
            response.status_code == 303 and response.headers["Location"] == f"/reauth?next={page}"
        )
        assert stored_user(app, TARGET).failed_logins == 3  # the POST was not carried out
        assert "confirm it&#39;s you" in admin.get(response.headers["Location"]).text.lower()
        code = fresh_totp(app, ADMIN_EMAIL, ADMIN_TOTP_SECRET)
        back = admin.post(
            "/reauth", data={"csrf_token": token, "method": "code", "code": code, "next": page}
        )
        assert back.headers["Location"] == page
        assert admin.post(f"{page}/unlock", data={"csrf_token": token}).status_code == 303
        assert stored_user(app, TARGET).failed_logins == 0


def test_every_users_post_needs_a_csrf_token(app, admin, target):
    for action in (
        "deactivate",
        "reactivate",
        "unlock",
        "refunds/grant",
        "two-step/reset",
        "password",
    ):
        assert admin.post(f"/users/{target}/{action}").status_code == 400
    assert admin.post("/users/new", data={"email": "a@example.com"}).status_code == 400
    assert stored_user(app, TARGET).active


def test_account_pages_have_no_inline_script_style_or_handlers(app, admin, staff, target):
    pages = [
        admin.get("/users"),
        admin.get("/users/new"),
        admin.get(f"/users/{target}"),
        admin.get("/account"),
        admin.get("/reauth?next=/users"),
        staff.get("/account/password"),
        staff.get("/account/two-step"),
        staff_post(admin, "/account/recovery-codes", page_url="/account"),
    ]
    anonymous = app.test_client()
    log_in(anonymous, email=ADMIN_EMAIL, totp_secret="")
    pages.append(anonymous.get("/login/code"))
    for response in pages:
        html = response.text
        assert response.status_code == 200, response.request.path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), response.request.path
        assert " style=" not in html and "<style" not in html, response.request.path
        assert not re.search(r"\son[a-z]+=", html), response.request.path
        assert "hx-on" not in html and "js:" not in html, response.request.path
        # Every input that people type into has a label.
        for input_id in re.findall(r'<input id="([^"]+)"(?![^>]*type="hidden")', html):
            assert f'<label for="{input_id}"' in html, (response.request.path, input_id)


def test_unknown_and_impossible_user_ids_are_404(admin):
    for user_id in ("999", "0", "99999999999999999999"):
        assert admin.get(f"/users/{user_id}").status_code == 404, user_id
