"""CSRF on every state-changing request (requirement S4), htmx included.

Every POST route in the app's URL map is in ROUTES below with who posts it, a URL and a body
that would be accepted with the right token. A new POST route fails the first test until it is
added here, so the table stays complete. Each route is then posted without a token, with wrong
ones, with another session's token and with a token from before login: every one is a 400 and
the database is exactly as before. The same posts with the right token go through, which proves
the 400s came from the CSRF check and not from a bad body.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from itsdangerous import URLSafeTimedSerializer
from werkzeug.routing.converters import NumberConverter

from payapp import problems, reminders
from payapp.accounts import create_user
from payapp.db import get_session
from payapp.links import cancel_link
from payapp.models import FailureSurge, LinkRequest, Payment, PaymentLink

from ..conftest import (
    ADMIN_EMAIL,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    csrf_from,
    open_pay_page,
    submit_card,
)
from .conftest import snapshot, staff_user_id

CSRF_REFUSED = "This form expired or came from somewhere else"

# CSRF-exempt by design, each checked another way (test_webhook_forgeries.py, test_abuse.py).
EXEMPT = {
    "/webhooks/square": "Square cannot send a CSRF token: the HMAC signature over URL and body",
    "/webhooks/twilio": "Twilio cannot send a CSRF token: its signature over URL and fields "
    "(tests/integration/test_twilio.py)",
    "/csp-report": "browsers send reports without cookies: JSON-only, size- and rate-limited",
}


@dataclass
class World:
    """An app with one client of each kind and the things their forms act on."""

    app: object
    clients: dict = field(default_factory=dict)  # who -> test client
    tokens: dict = field(default_factory=dict)  # who -> that session's valid CSRF token
    ids: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)
    stale_staff_token: str = ""  # the staff client's token from its login page, before login
    foreign_token: str = ""  # a token from a session nobody here uses

    def fresh_token(self, who: str) -> str:
        page = {
            "anon": "/login",
            "payer": self.paths["open"],
            "second_step": "/login/code",
        }.get(who, "/links")
        response = self.clients[who].get(page)
        if response.status_code != 200:  # logged out (the last posts end sessions)
            response = self.clients[who].get("/login")
        return csrf_from(response.text)


@dataclass(frozen=True)
class Route:
    who: str  # anon | payer | second_step | staff | admin
    url: Callable[[World], str]
    body: Callable[[World], dict]
    accepted: tuple[int, ...]  # what the right token gets (anything but a CSRF 400)


def _const(value):
    return lambda _w: value


NEW_LINK = {
    "patient_name": "Carla Csrf",
    "email": "carla@example.com",
    "amount": "42.00",
    "reference": "CSRF-1",
    "expires_in_days": "14",
}

# In the order the acceptance test posts them: the ones that end sessions come last.
ROUTES: dict[str, Route] = {
    "/login": Route(
        "anon",
        _const("/login"),
        _const({"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "next": ""}),
        (303,),
    ),
    "/login/code": Route(
        "second_step", _const("/login/code"), _const({"code": "not-a-code"}), (422,)
    ),
    "/pay/<token>": Route(
        "payer",
        lambda w: w.paths["open"],
        _const(
            {
                "source_id": "cnon:card-nonce-ok",
                "postal_code": "94103",
                "attempt_key": "csrf-attempt-0001-xxxxxxxx",
            }
        ),
        (200,),
    ),
    "/pay/<token>/reminders/stop": Route(
        "payer", lambda w: f"{w.paths['open']}/reminders/stop", _const({}), (303,)
    ),
    "/reminders/stop/<token>": Route("payer", lambda w: w.paths["opt_out"], _const({}), (303,)),
    "/pay/<token>/problem": Route(
        "payer", lambda w: w.paths["open"] + "/problem", _const({"category": "other"}), (303,)
    ),
    "/pay/<token>/new-link": Route(
        "payer", lambda w: w.paths["expired"] + "/new-link", _const({}), (303,)
    ),
    # Found (303) or not (404): either way the lookup ran (a CSRF refusal is a 400).
    "/pay": Route(
        "payer", _const("/pay"), _const({"statement": "INV-1001", "last_name": "Doe"}), (303, 404)
    ),
    "/links/new": Route("staff", _const("/links/new"), _const(NEW_LINK), (303,)),
    "/link-requests/<id:request_id>/reissue": Route(
        "staff", lambda w: f"/link-requests/{w.ids['request']}/reissue", _const({}), (303,)
    ),
    "/link-requests/<id:request_id>/dismiss": Route(
        "staff", lambda w: f"/link-requests/{w.ids['request']}/dismiss", _const({}), (303,)
    ),
    "/problems/<id:report_id>/resolve": Route(
        "staff", lambda w: f"/problems/{w.ids['problem']}/resolve", _const({}), (303,)
    ),
    "/links/<id:link_id>/resend": Route(
        "staff", lambda w: f"/links/{w.ids['open']}/resend", _const({}), (303,)
    ),
    "/links/<id:link_id>/reminders/stop": Route(
        "staff", lambda w: f"/links/{w.ids['open']}/reminders/stop", _const({}), (303,)
    ),
    "/links/<id:link_id>/cancel": Route(
        "staff", lambda w: f"/links/{w.ids['open']}/cancel", _const({}), (303,)
    ),
    "/links/<id:link_id>/reissue": Route(
        "staff", lambda w: f"/links/{w.ids['closed']}/reissue", _const({}), (303,)
    ),
    "/links/<id:link_id>/refund": Route(
        "admin",
        lambda w: f"/links/{w.ids['paid']}/refund",
        lambda w: {
            "payment_id": str(w.ids["payment"]),
            "amount": "1.00",
            "reason": "CSRF test",
            "refund_key": "csrf-refund-key-0001",
        },
        (303,),
    ),
    "/reauth": Route(
        "staff",
        _const("/reauth"),
        _const({"password": STAFF_PASSWORD, "method": "password", "next": ""}),
        (303,),
    ),
    "/account/password": Route(
        "staff",
        _const("/account/password"),
        _const({"current": "not my password!", "new": "x", "confirm": "y"}),
        (422,),
    ),
    "/account/two-step": Route(
        "staff", _const("/account/two-step"), _const({"code": "not-a-code"}), (422,)
    ),
    "/account/recovery-codes": Route(
        "staff", _const("/account/recovery-codes"), _const({}), (200, 303)
    ),
    "/users/new": Route(
        "admin",
        _const("/users/new"),
        _const(
            {"email": "new.person@example.com", "role": "staff", "password": "a-new-pass-phrase-9"}
        ),
        (303,),
    ),
    "/users/<id:user_id>/refunds/grant": Route(
        "admin", lambda w: f"/users/{w.ids['victim']}/refunds/grant", _const({}), (303,)
    ),
    "/users/<id:user_id>/refunds/revoke": Route(
        "admin", lambda w: f"/users/{w.ids['victim']}/refunds/revoke", _const({}), (303,)
    ),
    "/users/<id:user_id>/unlock": Route(
        "admin", lambda w: f"/users/{w.ids['victim']}/unlock", _const({}), (303,)
    ),
    "/users/<id:user_id>/two-step/reset": Route(
        "admin", lambda w: f"/users/{w.ids['victim']}/two-step/reset", _const({}), (303,)
    ),
    "/users/<id:user_id>/password": Route(
        "admin",
        lambda w: f"/users/{w.ids['victim']}/password",
        _const({"password": "another-temp-phrase-7"}),
        (200, 303),
    ),
    "/users/<id:user_id>/deactivate": Route(
        "admin", lambda w: f"/users/{w.ids['victim']}/deactivate", _const({}), (303,)
    ),
    "/users/<id:user_id>/reactivate": Route(
        "admin", lambda w: f"/users/{w.ids['victim']}/reactivate", _const({}), (303,)
    ),
    "/alerts/<id:incident_id>/acknowledge": Route(
        "admin", lambda w: f"/alerts/{w.ids['surge']}/acknowledge", _const({}), (303,)
    ),
    "/account/logout-everywhere": Route(
        "staff", _const("/account/logout-everywhere"), _const({}), (303,)
    ),
    "/logout": Route("staff", _const("/logout"), _const({}), (303,)),
}


def a_surge(session) -> int:
    """An open failure-surge incident for the acknowledge form to act on."""
    surge = FailureSurge(
        kind="payment", open_kind="payment", failures=5, total=5, baseline_rate=0, threshold_rate=0
    )
    session.add(surge)
    session.commit()
    return surge.id


def post_rules(app) -> set[str]:
    return {r.rule for r in app.url_map.iter_rules() if "POST" in r.methods}


def guessed_route(app, rule: str) -> Route:
    """For a POST route missing from ROUTES: an admin posting with made-up URL values, so its
    CSRF check is still exercised while the table test fails and asks for it to be added."""
    [found] = [r for r in app.url_map.iter_rules() if r.rule == rule and "POST" in r.methods]
    values = {
        arg: 1 if isinstance(found._converters[arg], NumberConverter) else "x"
        for arg in found.arguments
    }
    with app.test_request_context():
        from flask import url_for

        url = url_for(found.endpoint, **values)
    return Route("admin", _const(url), _const({}), ())


def wrong_tokens(world: World, who: str) -> dict[str, str | None]:
    forged = URLSafeTimedSerializer("another-apps-secret-key-000000000000", salt="wtf-csrf-token")
    tokens = {
        "missing": None,
        "empty": "",
        "garbage": "not-a-csrf-token",
        "signed with another key": forged.dumps(hashlib.sha1(os.urandom(64)).hexdigest()),  # noqa: S324
        "another session's": world.foreign_token,
        "another of our clients'": world.tokens["payer" if who != "payer" else "anon"],
    }
    if who in ("staff",):
        tokens["from before login (the session was renewed)"] = world.stale_staff_token
    return tokens


@pytest.fixture
def world(app, admin, client, link_factory) -> World:
    w = World(app=app)
    w.clients["admin"] = admin
    # The staff client logs in itself, keeping the token of the login page it used.
    staff = app.test_client()
    w.stale_staff_token = csrf_from(staff.get("/login").text)
    response = staff.post(
        "/login",
        data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": w.stale_staff_token},
    )
    assert response.status_code == 303
    w.clients["staff"] = staff
    # Between the password and the code step of an admin login.
    second = app.test_client()
    page = second.get("/login")
    response = second.post(
        "/login",
        data={"email": ADMIN_EMAIL, "password": STAFF_PASSWORD, "csrf_token": csrf_from(page.text)},
    )
    assert response.headers["Location"] == "/login/code"
    w.clients["second_step"] = second
    w.clients["anon"] = client
    w.clients["payer"] = app.test_client()
    w.foreign_token = csrf_from(app.test_client().get("/login").text)

    opened, closed, paid = link_factory(), link_factory(), link_factory()
    submit_card(app.test_client(), paid.path)
    with app.app_context():
        session = get_session()
        cancel_link(session, session.get(PaymentLink, closed.id), staff_id=staff_user_id(app))
        w.ids["payment"] = session.query(Payment).filter_by(link_id=paid.id).one().id
        w.ids["victim"] = create_user(session, "victim@example.com", STAFF_PASSWORD, "staff").id
        w.ids["surge"] = a_surge(session)
        w.ids["problem"] = problems.create_report(
            session, session.get(PaymentLink, opened.id), problems.ProblemDraft(category="other")
        ).id
    with time_machine.travel(datetime.now(UTC) - timedelta(days=60)):
        expired = link_factory()
    with app.app_context():
        session = get_session()
        task = LinkRequest(link_id=expired.id)
        session.add(task)
        session.commit()
        w.ids["request"] = task.id
    w.paths["expired"] = expired.path
    w.ids.update(open=opened.id, closed=closed.id, paid=paid.id)
    w.paths["open"] = opened.path
    with app.app_context():
        token = reminders.sign_opt_out(
            get_session().get(PaymentLink, opened.id), app.config["SECRET_KEY"]
        )
    w.paths["opt_out"] = f"/reminders/stop/{token}"
    open_pay_page(w.clients["payer"], opened.path)
    for who in w.clients:
        w.tokens[who] = w.fresh_token(who)
    return w


def still_as_before(world: World) -> None:
    """Every client is still where it was: logged in, half logged in, or a visitor."""
    assert world.clients["staff"].get("/links").status_code == 200
    assert world.clients["admin"].get("/audit").status_code == 200
    assert world.clients["second_step"].get("/login/code").status_code == 200
    assert world.clients["anon"].get("/links").status_code in (302, 303)


def test_the_csrf_table_names_every_post_route(app):
    routes = post_rules(app)
    unknown = sorted(routes - set(ROUTES) - set(EXEMPT))
    assert not unknown, (
        f"POST routes this test does not know how to exercise: {unknown}. Add each to ROUTES in "
        "tests/security/test_csrf.py (who posts it, a URL, a body the right token would pass)."
    )
    gone = sorted((set(ROUTES) | set(EXEMPT)) - routes)
    assert not gone, f"ROUTES lists POST routes the app no longer has: {gone}"


def test_every_post_without_the_right_csrf_token_is_refused_and_changes_nothing(app, world):
    routes = {**ROUTES, **{r: guessed_route(app, r) for r in post_rules(app) - set(ROUTES)}}
    before = snapshot(app)
    tried = 0
    for rule, route in routes.items():
        if rule in EXEMPT:
            continue
        client = world.clients[route.who]
        for name, token in wrong_tokens(world, route.who).items():
            body = route.body(world)
            if token is not None:
                body["csrf_token"] = token
            response = client.post(route.url(world), data=body)
            assert response.status_code == 400, (rule, name, response.status_code)
            assert CSRF_REFUSED in response.text, (rule, name)
            tried += 1
    assert tried >= 6 * len(ROUTES)
    assert snapshot(app) == before
    still_as_before(world)


def test_htmx_posts_without_the_right_csrf_token_are_refused_too(app, world):
    before = snapshot(app)
    for rule, route in ROUTES.items():
        client = world.clients[route.who]
        for headers in (
            {"HX-Request": "true"},
            {"HX-Request": "true", "X-CSRFToken": "not-a-csrf-token"},
            {"HX-Request": "true", "X-CSRFToken": world.foreign_token},
        ):
            response = client.post(route.url(world), data=route.body(world), headers=headers)
            assert response.status_code == 400, (rule, headers, response.status_code)
            # htmx gets the message as a fragment for the page's #flash area.
            assert response.headers.get("HX-Retarget") == "#flash", rule
            assert CSRF_REFUSED in response.text and "<html" not in response.text, rule
    assert snapshot(app) == before
    still_as_before(world)


def test_the_same_posts_with_the_right_csrf_token_go_through(app, world, link_factory):
    """The control: with its session's token each post reaches its view."""
    # htmx posts carry it in the X-CSRFToken header instead (static/js/app.js).
    other = link_factory()
    response = world.clients["staff"].post(
        f"/links/{other.id}/cancel",
        headers={"HX-Request": "true", "X-CSRFToken": world.tokens["staff"]},
    )
    assert response.status_code == 200 and "Cancelled" in response.text
    for rule, route in ROUTES.items():
        body = {**route.body(world), "csrf_token": world.fresh_token(route.who)}
        response = world.clients[route.who].post(route.url(world), data=body)
        assert response.status_code in route.accepted, (rule, response.status_code)
        assert CSRF_REFUSED not in response.text, rule
    # And a few did what they say (the rest are covered by their own tests).
    with app.app_context():
        session = get_session()
        assert session.query(PaymentLink).filter_by(reference="CSRF-1").count() == 1
        assert session.get(PaymentLink, world.ids["open"]).status == "paid"
    assert world.clients["staff"].get("/links").status_code in (302, 303)  # logged out last
