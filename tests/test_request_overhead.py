"""Issue 10, third round: the work every request pays, cut where it does nothing; the controls
it served stay exactly as they were."""

import re
from datetime import UTC, datetime

import flask_limiter
import pytest
import time_machine
from markupsafe import Markup
from wtforms import ValidationError

from payapp.extensions import limiter


@pytest.fixture
def limit_checks(monkeypatch):
    """Every time flask-limiter's own check runs (the stock method behind ours)."""
    calls = []
    stock = flask_limiter.Limiter._check_request_limit

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("callable_name"))
        return stock(self, *args, **kwargs)

    monkeypatch.setattr(flask_limiter.Limiter, "_check_request_limit", counted)
    return calls


def test_disabled_limits_are_not_worked_out_on_a_limited_route(client, link_factory, limit_checks):
    link = link_factory()
    codes = [client.get(link.path).status_code for _ in range(70)]  # RATELIMIT_PAY_VIEW: 60/min
    assert codes == [200] * 70
    assert limit_checks == []


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "RATELIMIT_PAY_VIEW": "3 per minute"}]
)
def test_enabled_limits_still_apply_after_a_disabled_app_was_made(
    make_disabled_app, client, link_factory, limit_checks
):
    assert limiter.enabled
    link = link_factory()
    codes = [client.get(link.path).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    assert limit_checks  # the stock check ran: the limits were worked out as before


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "RATELIMIT_PAY_VIEW": "3 per minute"}]
)
def test_with_no_limits_outside_routes_only_the_routes_own_check_runs(
    client, link_factory, limit_checks
):
    assert not limiter.has_limits_outside_routes()
    link = link_factory()
    codes = [client.get(link.path).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # The decorator's check names its view; the before-view check (no name) did not run.
    assert limit_checks and None not in limit_checks


def _tiny_app(limiter_kwargs: dict, decorate_blueprint: bool = False):
    """A bare Flask app with payapp's Limiter class (not the shared instance) and an
    undecorated route, so only limits outside routes can refuse it."""
    import flask

    from payapp.extensions import Limiter

    app = flask.Flask("tiny")
    app.config["RATELIMIT_STORAGE_URI"] = "memory://"
    own = Limiter(key_func=lambda: "203.0.113.7", **limiter_kwargs)
    bp = flask.Blueprint("open", __name__)
    bp.add_url_rule("/open", "open", lambda: "ok")
    if decorate_blueprint:
        own.limit("2 per minute")(bp)
    app.register_blueprint(bp)
    own.init_app(app)
    return app, own


@pytest.mark.parametrize(
    ("kwargs", "blueprint"),
    [
        ({"default_limits": ["2 per minute"]}, False),
        ({"application_limits": ["2 per minute"]}, False),
        ({}, True),
    ],
    ids=["default", "application", "blueprint"],
)
def test_a_limit_outside_routes_is_still_applied_before_the_view(kwargs, blueprint):
    app, own = _tiny_app(kwargs, blueprint)
    assert own.has_limits_outside_routes()
    with app.test_client() as tiny:
        assert [tiny.get("/open").status_code for _ in range(3)] == [200, 200, 429]


def test_without_limits_outside_routes_an_undecorated_route_is_never_refused():
    app, own = _tiny_app({})
    assert not own.has_limits_outside_routes()
    with app.test_client() as tiny:
        assert {tiny.get("/open").status_code for _ in range(5)} == {200}


@pytest.fixture
def make_disabled_app(tmp_path, template_database):
    """An app with limits off, made before the test's app (the limiter is one object)."""
    from payapp import create_app

    from .conftest import TEST_SECRET

    (tmp_path / "other").mkdir()
    url = template_database.fresh(tmp_path / "other")
    other = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": url,
            "RATELIMIT_ENABLED": False,
        }
    )
    other.extensions["payapp.engine"].dispose()
    yield other
    template_database.drop(url)


def test_a_request_that_does_not_touch_the_session_sets_no_cookie(client, link_factory):
    assert "Set-Cookie" not in client.get("/healthz").headers
    page = client.get(link_factory().path)  # a new visitor: session cookie with the CSRF token
    assert any("session=" in c for c in page.headers.getlist("Set-Cookie"))
    again = client.get("/healthz")  # with that cookie: read, not changed, not re-sent
    assert again.status_code == 200 and "Set-Cookie" not in again.headers


def test_healthz_asks_the_database_on_every_request(app, client):
    from sqlalchemy import event

    statements = []
    engine = app.extensions["payapp.engine"]
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert [client.get("/healthz").json for _ in range(2)] == [{"status": "ok"}] * 2
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements == ["SELECT 1", "SELECT 1"]


def test_the_profile_script_prints_cpu_per_request_against_the_bare_app(capsys):
    from bench import profile_request

    assert profile_request.main(["-n", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        "bare /healthz",
        "payapp /healthz",
        "GET /pay/<token> new",
        "GET /pay/<token> again",
    ]
    assert all(re.search(r"[\d.]+ ms CPU/request  \([\d.]+x of bare\)", line) for line in lines)


def test_the_profile_script_times_each_hook_of_each_target(capsys):
    from bench import profile_request

    assert profile_request.main(["-n", "50", "--hooks"]) == 0
    out = capsys.readouterr().out
    sections = out.split("--- ")[1:]
    assert [s.split(":")[0] for s in sections] == [
        "payapp /healthz",
        "GET /pay/<token> new",
        "GET /pay/<token> again",
    ]
    assert "us  view pay.show_pay_page" in sections[1] and "us  session save" in sections[1]
    assert all(re.search(r"\n +[\d.]+ us  total\n", s + "\n") for s in sections)


def test_our_csrf_token_is_the_one_flask_wtf_makes_and_checks(app):
    from flask import session
    from flask_wtf.csrf import generate_csrf, validate_csrf

    from payapp.security import csrf_token

    with app.test_request_context("/"):
        token = csrf_token()
        raw = session["csrf_token"]
        assert re.fullmatch(r"[0-9a-f]{40}", raw)
        assert generate_csrf() == token == csrf_token()  # one token a request, shared
        validate_csrf(token)
    with app.test_request_context("/"):
        session["csrf_token"] = raw  # the same visitor's next request
        validate_csrf(token)
        assert csrf_token() == generate_csrf()  # signed anew for this request
        validate_csrf(csrf_token())
        session["csrf_token"] = "0" * 40  # another visitor's session: the token is refused
        with pytest.raises(ValidationError):
            validate_csrf(token)


def test_a_csrf_token_from_flask_wtf_is_kept_by_ours(app):
    from flask_wtf.csrf import generate_csrf

    from payapp.security import csrf_token

    with app.test_request_context("/"):
        assert csrf_token() == generate_csrf()


SESSIONS = [
    {"csrf_token": "a" * 40},
    {"csrf_token": "b" * 40, "patient_lang": "es"},
    {"n": 1, "yes": True, "none": None, "text": "ñandú"},
    {"_flashes": [("success", "We won't send you reminders.")]},  # tagged: the stock way
    {" t": "looks like a tag"},
    {"when": datetime(2026, 11, 30, 12, 0, tzinfo=UTC), "html": Markup("<b>x</b>")},
    {"csrf_token": "c" * 40, "long": "d" * 200},  # long enough to be compressed, as Flask does
]


@pytest.mark.parametrize("value", SESSIONS)
def test_our_session_cookie_is_flasks_but_a_short_one_is_never_compressed(app, value):
    from flask.json.tag import TaggedJSONSerializer
    from flask.sessions import SecureCookieSessionInterface

    from payapp.security import UNCOMPRESSED_UP_TO, SessionJSON

    assert SessionJSON().dumps(value) == TaggedJSONSerializer().dumps(value)  # no app
    with app.test_request_context("/"), time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        assert SessionJSON().dumps(value) == TaggedJSONSerializer().dumps(value)
        stock = SecureCookieSessionInterface().get_signing_serializer(app)
        ours = app.session_interface.get_signing_serializer(app)
        cookie, flasks = ours.dumps(value), stock.dumps(value)
        assert stock.loads(cookie) == ours.loads(flasks) == value
        if len(SessionJSON().dumps(value).encode()) > UNCOMPRESSED_UP_TO:
            assert cookie == flasks
        else:
            # Flask's own serializer with compression off writes exactly this cookie.
            assert cookie == uncompressed(stock).dumps(value)
            assert not cookie.startswith(".")


def uncompressed(serializer):
    """``serializer``'s copy that never compresses (itsdangerous decides by length alone)."""
    from unittest import mock

    plain = mock.Mock(compress=lambda data: data + b"longer")
    copy = type(serializer).__new__(type(serializer))
    copy.__dict__.update(serializer.__dict__)
    real = type(serializer).dump_payload

    def dump_payload(obj):
        with mock.patch("itsdangerous.url_safe.zlib", plain):
            return real(copy, obj)

    copy.dump_payload = dump_payload
    return copy


def test_a_new_visitors_cookie_and_csrf_token_are_byte_for_byte_flask_and_flask_wtfs(app):
    # A random token never compresses, so every real patient's cookie and token are exactly what
    # Flask and flask-wtf would have written.
    from flask import g, session
    from flask.sessions import SecureCookieSessionInterface
    from flask_wtf.csrf import generate_csrf

    from payapp.security import csrf_token

    stock_cookies = SecureCookieSessionInterface().get_signing_serializer(app)
    ours = app.session_interface.get_signing_serializer(app)
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        for _ in range(200):
            with app.test_request_context("/"):
                token = csrf_token()
                raw = session["csrf_token"]
                g.pop("csrf_token")
                assert generate_csrf() == token  # flask-wtf's own, signing the same raw token
                assert session["csrf_token"] == raw
                assert ours.dumps(dict(session)) == stock_cookies.dumps(dict(session))


def test_a_cookie_signed_with_a_fallback_key_still_opens_and_a_forged_one_does_not(app):
    from flask.sessions import SecureCookieSessionInterface
    from itsdangerous import BadSignature

    ours = app.session_interface
    old = {"csrf_token": "c" * 40}
    with app.test_request_context("/"):
        previous_key, previous_fallbacks = app.secret_key, app.config["SECRET_KEY_FALLBACKS"]
        old_cookie = SecureCookieSessionInterface().get_signing_serializer(app).dumps(old)
        app.secret_key = "a-new-key-" + "x" * 40
        app.config["SECRET_KEY_FALLBACKS"] = [previous_key]
        try:
            assert ours.get_signing_serializer(app).loads(old_cookie) == old
            app.config["SECRET_KEY_FALLBACKS"] = []
            with pytest.raises(BadSignature):
                ours.get_signing_serializer(app).loads(old_cookie)
        finally:
            app.secret_key, app.config["SECRET_KEY_FALLBACKS"] = previous_key, previous_fallbacks


def response_cases():
    yield "page", dict(response="<p>hi</p>", headers={"Vary": "HX-Request"})
    yield "json", dict(response='{"status":"ok"}', mimetype="application/json")
    yield "redirect", dict(status=303, headers={"Location": "/pay/x?lang=es"})
    yield "content location", dict(response="x", headers={"Content-Location": "/ü"})
    yield "no content", dict(status=204, headers={"Content-Length": "0"})
    yield "not modified", dict(status=304, headers={"Content-Type": "text/html"})
    yield "switching", dict(status=101)
    yield "own length", dict(response="abc", headers={"Content-Length": "3"})
    yield "streamed", dict(response=iter([b"a", b"b"]))
    yield "two cookies", dict(response="x", headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])


@pytest.mark.parametrize("case", list(response_cases()), ids=lambda case: case[0])
def test_our_responses_send_exactly_werkzeugs_headers(app, case):
    from flask import Response

    from payapp import PayResponse

    with app.test_request_context("/pay/x", base_url="https://pay.example.org"):
        environ = app.test_request_context("/pay/x").request.environ
        ours = PayResponse(**case[1]).get_wsgi_headers(environ)
        stock = Response(**case[1]).get_wsgi_headers(environ)
    assert list(ours.items()) == list(stock.items())
    assert type(ours) is type(stock)


def test_a_header_value_with_a_line_break_is_still_refused_when_sent(app):
    from payapp import PayResponse

    response = PayResponse("x")
    response.headers._list.append(("X-Smuggled", "a\r\nSet-Cookie: b=1"))  # past set()'s check
    with app.test_request_context("/"), pytest.raises(ValueError, match="newline"):
        response.get_wsgi_headers(app.test_request_context("/").request.environ)


def test_the_app_answers_with_our_responses(app):
    from payapp import PayResponse

    assert app.response_class is PayResponse


def test_csrf_is_checked_by_flask_wtf_on_every_write_and_never_on_a_read(
    app, client, link_factory, monkeypatch
):
    from payapp.extensions import csrf
    from payapp.security import FLASK_WTF_HOOK

    hooks = [f.__qualname__ for f in app.before_request_funcs[None]]
    assert FLASK_WTF_HOOK not in hooks  # replaced in place, not added beside
    assert hooks.count("ask_the_method_first.<locals>.csrf_protect") == 1
    checked = []
    stock = type(csrf).protect
    monkeypatch.setattr(
        type(csrf), "protect", lambda self, **kw: checked.append(kw) or stock(self, **kw)
    )
    link = link_factory()
    assert client.get(link.path).status_code == 200
    assert client.head(link.path).status_code == 200
    assert checked == []
    response = client.post(link.path, data={"source_id": "cnon:card-nonce-ok"})
    assert response.status_code == 400  # no token: refused, as before
    assert checked == [{"apply_exemptions": True}]


COOKIE_ATTRIBUTES = [
    dict(httponly=True, domain=None, path="/", secure=True, partitioned=False, samesite="Lax"),
    dict(httponly=False, domain="pay.example.org", path="/a b", secure=False, samesite=None),
    dict(httponly=True, path="/", secure=False, partitioned=True, samesite="strict"),
    dict(expires=datetime(2026, 12, 1, tzinfo=UTC), httponly=True, path="/", secure=True),
    dict(max_age=600, path="/"),
]
COOKIE_VALUES = ["eyJjc3JmX3Rva2VuIjoiYSJ9.Z0s7sA.x-Y_z", "", 'say "hi"; yes', "é", "v" * 5000]


@pytest.mark.parametrize("attributes", COOKIE_ATTRIBUTES)
@pytest.mark.filterwarnings("ignore:The 'session' cookie is too large")
def test_our_session_cookie_header_is_werkzeugs(attributes):
    from flask import Response

    from payapp.security import set_cookie

    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        for value in COOKIE_VALUES:
            for _ in range(2):  # the second time from the kept attributes
                ours, stock = Response(), Response()
                set_cookie(ours, "session", value, stock.max_cookie_size, **attributes)
                stock.set_cookie("session", value, **attributes)
                assert ours.headers.getlist("Set-Cookie") == stock.headers.getlist("Set-Cookie")


def test_security_headers_a_response_set_itself_are_kept(app):
    from flask import Response

    from payapp.security import add_security_headers

    response = Response("x", headers={"x-content-type-options": "nosniff", "Pragma": "x"})
    with app.test_request_context("/pay/x"):
        headers = add_security_headers(response).headers
    assert headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert headers.getlist("Cross-Origin-Opener-Policy") == ["same-origin"]
    assert headers.getlist("Pragma") == ["no-cache"]
    assert headers.getlist("Cache-Control") == ["no-store"]


# --- issue 10, sixth round: the signer in one step, the JSON encoders kept ---------------------

SIGNER_SETTINGS = [
    {},  # itsdangerous' defaults: django-concat, SHA-1 (Flask's session and flask-wtf's token)
    {"salt": "cookie-session", "key_derivation": "hmac"},
    {"salt": "s", "key_derivation": "concat", "sep": "~"},
    {"salt": "s", "key_derivation": "none"},
    {"salt": b"bytes-salt", "digest_method": __import__("hashlib").sha256},
]
SIGNED_VALUES = [b"", b"abc", "ñandú", "eyJjc3JmX3Rva2VuIjoiYSJ9", b"x" * 500]


@pytest.mark.parametrize("settings", SIGNER_SETTINGS)
def test_our_one_step_signature_is_itsdangerous_own(settings):
    from itsdangerous import TimestampSigner

    from payapp.security import KeptKeySigner

    keys = ["an-old-key", "the-current-key-" + "k" * 30]
    ours, stock = KeptKeySigner(keys, **settings), TimestampSigner(keys, **settings)
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        for value in SIGNED_VALUES:
            assert ours.sign(value) == stock.sign(value)
            assert stock.unsign(ours.sign(value)) == ours.unsign(stock.sign(value))


@pytest.mark.parametrize(
    "raw", ["a" * 40, "ñ", 'say "hi"', "</script>\u2028", "\x00\x1f", "😀", "x" * 200]
)
def test_a_string_payload_is_written_as_itsdangerous_compact_json_writes_it(raw):
    from itsdangerous import URLSafeTimedSerializer

    from payapp.security import CSRF_SALT, KeptKeySigner, KeptSignerSerializer

    ours = KeptSignerSerializer("k" * 40, salt=CSRF_SALT, signer=KeptKeySigner)
    stock = URLSafeTimedSerializer("k" * 40, salt=CSRF_SALT)
    with time_machine.travel("2026-11-30 12:00:00Z", tick=False):
        if len(stock.serializer.dumps(raw).encode()) <= 120:
            assert ours.dump_payload(raw) == uncompressed(stock).dump_payload(raw)
        assert stock.loads(ours.dumps(raw)) == raw == ours.loads(stock.dumps(raw))
