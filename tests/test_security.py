"""Security headers on every page type, production mode, and the limits on /pay."""

import re

import pytest

from payapp import create_app
from payapp.config import ConfigError

from .conftest import TEST_SECRET, open_pay_page, submit_card


def csp_of(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d for d in (p.strip() for p in policy.split(";")) if d}


@pytest.fixture
def pages(staff, client, link_factory):
    """One response of each page type: patient page, pay fragment, staff page, login, error."""
    link = link_factory()
    return {
        "pay page": client.get(link.path),
        "pay fragment": submit_card(client, link.path, nonce="cnon:card-nonce-declined"),
        "staff list": staff.get("/links"),
        "staff detail": staff.get(f"/links/{link.id}"),
        "login": client.get("/login"),
        "404": client.get("/pay/nope"),
    }


def test_every_page_has_a_strict_nonce_based_csp(pages):
    for name, response in pages.items():
        csp = csp_of(response)
        assert re.search(r"'nonce-[\w-]{16,}'", csp["script-src"]), name
        assert "'nonce-" in csp["style-src"], name
        policy = response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, name
        assert csp["frame-ancestors"] == "frame-ancestors 'none'", name
        assert csp["frame-src"] == "frame-src 'none'", name  # the demo pay page too
        assert csp["object-src"] == "object-src 'none'", name
        assert csp["base-uri"] == "base-uri 'none'", name
        assert csp["form-action"] == "form-action 'self'", name
        assert "https:" not in policy and "*" not in policy, name  # no third-party hosts (demo)


def test_nonces_differ_per_response_and_match_the_script_tags(pages, client, link_factory):
    page = pages["pay page"]
    nonce = re.search(r"'nonce-([^']+)'", page.headers["Content-Security-Policy"])[1]
    scripts = re.findall(r"<script [^>]*>", page.text)
    assert scripts and all(f'nonce="{nonce}"' in s for s in scripts)
    other = client.get("/login").headers["Content-Security-Policy"]
    assert nonce not in other


def test_no_inline_script_or_style_anywhere(pages):
    for name, response in pages.items():
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text), name
        assert " style=" not in response.text and "<style" not in response.text, name
        assert not re.search(r"\son[a-z]+=", response.text), name
        assert "hx-on" not in response.text and "js:" not in response.text, name


def test_every_page_has_the_other_security_headers(pages):
    for name, response in pages.items():
        h = response.headers
        assert h["Referrer-Policy"] == "same-origin", name
        assert h["X-Content-Type-Options"] == "nosniff", name
        assert h["X-Frame-Options"] == "DENY", name
        assert h["Cross-Origin-Opener-Policy"] == "same-origin", name
        assert "no-store" in h["Cache-Control"], name
        permissions = h["Permissions-Policy"]
        for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
            assert feature in permissions, name


def test_static_files_may_be_cached_and_the_htmx_file_matches_its_sri_hash(client):
    import base64
    import hashlib

    page = client.get("/login").text
    src, integrity = re.search(r'<script src="([^"]*htmx[^"]*)" integrity="([^"]+)"', page).groups()
    body = client.get(src).data
    expected = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
    assert integrity == expected
    assert "no-store" not in client.get(src).headers.get("Cache-Control", "")


def test_htmx_is_configured_for_a_strict_csp(client):
    html = client.get("/login").text
    config = re.search(r"<meta name=\"htmx-config\" content='([^']+)'>", html)[1]
    import json

    settings = json.loads(config)
    assert settings["allowEval"] is False and settings["allowScriptTags"] is False
    assert settings["includeIndicatorStyles"] is False and settings["selfRequestsOnly"] is True
    assert settings["historyCacheSize"] == 0


def test_session_cookie_is_httponly_and_lax_in_development(client):
    client.get("/login")
    cookie = client.get_cookie("payapp_session")
    assert cookie.http_only and cookie.same_site == "Lax"


# --- production mode ------------------------------------------------------------------------------


@pytest.fixture
def prod_app(tmp_path, monkeypatch):
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    app = create_app(
        {
            "ENV": "production",
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/prod.db",
            "PUBLIC_BASE_URL": "https://pay.clinic.example",
            "RATELIMIT_ENABLED": False,
            "TRUSTED_PROXIES": 1,  # behind Caddy, as instance/config.example.py sets
        }
    )
    from payapp.db import upgrade_schema

    with app.app_context():
        upgrade_schema(app.extensions["payapp.engine"])
    return app


def test_production_redirects_http_to_https(prod_app):
    response = prod_app.test_client().get("/login", base_url="http://pay.clinic.example")
    assert response.status_code in (301, 302)
    assert response.headers["Location"].startswith("https://pay.clinic.example/login")


def test_production_honours_one_proxy_saying_https(prod_app):
    response = prod_app.test_client().get(
        "/login", base_url="http://pay.clinic.example", headers={"X-Forwarded-Proto": "https"}
    )
    assert response.status_code == 200


def use_stock_talisman(app, monkeypatch) -> None:
    """Stock flask-talisman from here on: its class, and its own methods as the request hooks."""
    import flask_talisman

    from payapp.extensions import talisman

    monkeypatch.setattr(talisman, "__class__", flask_talisman.Talisman)
    for hook_lists in ("before_request_funcs", "after_request_funcs"):
        hooks = {
            name: [
                getattr(talisman, f.__name__) if getattr(f, "__self__", None) is talisman else f
                for f in funcs
            ]
            for name, funcs in getattr(app, hook_lists).items()
        }
        monkeypatch.setattr(app, hook_lists, hooks)


@pytest.mark.parametrize("forwarded", [None, "https", "http", "HTTPS", "https, http"])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_our_https_redirect_answers_as_stock_talismans(prod_app, monkeypatch, scheme, forwarded):

    headers = {"X-Forwarded-Proto": forwarded} if forwarded else {}
    base = f"{scheme}://pay.clinic.example"
    ours = prod_app.test_client().get("/login?next=%2Fstaff", base_url=base, headers=headers)
    use_stock_talisman(prod_app, monkeypatch)
    stock = prod_app.test_client().get("/login?next=%2Fstaff", base_url=base, headers=headers)
    assert ours.status_code == stock.status_code
    assert ours.headers.get("Location") == stock.headers.get("Location")
    assert prod_app.config["SESSION_COOKIE_SECURE"] is True


def test_production_sends_hsts_and_secure_cookies(prod_app):
    client = prod_app.test_client()
    response = client.get("/login", base_url="https://pay.clinic.example")
    hsts = response.headers["Strict-Transport-Security"]
    assert int(re.search(r"max-age=(\d+)", hsts)[1]) >= 31_536_000 and "includeSubDomains" in hsts
    assert (
        "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]
    )


def test_production_csrf_requires_a_same_origin_referer(prod_app):
    client = prod_app.test_client()
    base = "https://pay.clinic.example"
    page = client.get("/login", base_url=base)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)[1]
    data = {"email": "x@example.com", "password": "wrong password!!", "csrf_token": token}
    no_referer = client.post("/login", data=data, base_url=base)
    other = client.post(
        "/login", data=data, base_url=base, headers={"Referer": "https://evil.example/login"}
    )
    same = client.post("/login", data=data, base_url=base, headers={"Referer": f"{base}/login"})
    assert no_referer.status_code == 400 and other.status_code == 400
    assert same.status_code == 422  # past CSRF, to the (wrong) password


def test_development_has_no_hsts_and_no_forced_https(client):
    response = client.get("/login")
    assert response.status_code == 200 and "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "PAYAPP_SECRET_KEY"),
        ({"SECRET_KEY": "dev-only-not-secret"}, "PAYAPP_SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "PAYAPP_SECRET_KEY"),
        ({"SECRET_KEY": TEST_SECRET, "PUBLIC_BASE_URL": "http://pay.example"}, "https://"),
    ],
)
def test_production_refuses_unsafe_settings(tmp_path, monkeypatch, settings, message):
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("PAYAPP_SECRET_KEY", raising=False)
    with pytest.raises(ConfigError, match=message):
        create_app(
            {
                "ENV": "production",
                "PUBLIC_BASE_URL": "https://pay.example",
                "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
                **settings,
            }
        )


# --- rate limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "RATELIMIT_PAY_VIEW": "5 per minute"}]
)
def test_viewing_pay_pages_is_rate_limited(client, link_factory):
    link = link_factory()
    codes = [client.get(link.path).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    limited = client.get(link.path)
    assert "Too many attempts" in limited.text and "call the clinic" in limited.text


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_paying_is_rate_limited_per_address(client, link_factory, gateway):
    link = link_factory()
    page = open_pay_page(client, link.path)
    codes = []
    for i in range(12):
        page.attempt_key = f"attempt-{i:04d}-xxxxxxxxxxxx"
        codes.append(
            submit_card(client, link.path, nonce="cnon:card-nonce-declined", page=page).status_code
        )
    assert codes[:10] == [200] * 10 and codes[10:] == [429, 429]
    assert len(gateway.charges) == 5  # the link locked after five; the rest never reached it


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1",
            "RATELIMIT_PAY_VIEW": "3 per minute",
        }
    ],
)
def test_an_unreachable_redis_falls_back_to_per_process_limits(client, link_factory):
    """With several workers the limits live in Redis; if Redis is down, patients can still pay
    and limits still apply, per process, instead of every request failing."""
    link = link_factory()
    codes = [client.get(link.path).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_session_cookies_follow_a_secret_key_rotation(app):
    # The signing serializer is built once per set of keys (security.SessionCookies), never
    # kept past a key change: a rotated key signs new cookies, the fallback still opens old ones.
    from itsdangerous import BadSignature

    interface = app.session_interface
    before = interface.get_signing_serializer(app)
    assert interface.get_signing_serializer(app) is before
    old_cookie = before.dumps({"csrf_token": "abc"})
    app.config["SECRET_KEY_FALLBACKS"] = [app.secret_key]
    app.secret_key = "rotated-secret-" + "r" * 40
    after = interface.get_signing_serializer(app)
    assert after.loads(old_cookie) == {"csrf_token": "abc"}
    with pytest.raises(BadSignature):
        before.loads(after.dumps({"csrf_token": "new"}))


SECURITY_HEADERS = (
    "Content-Security-Policy",
    "Strict-Transport-Security",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Cache-Control",
)


@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("path", ["/healthz", "/login", "pay"])
def test_our_faster_talisman_sends_exactly_the_stock_headers(
    app, link_factory, monkeypatch, path, scheme
):
    import flask_talisman

    path = link_factory().path if path == "pay" else path
    nonces = iter(["N" * 32, "M" * 32, "K" * 32])
    monkeypatch.setattr(flask_talisman.talisman, "get_random_string", lambda _n: next(nonces))
    base = {"base_url": f"{scheme}://localhost"}
    ours = [app.test_client().get(path, **base) for _ in range(2)]  # made, then kept
    use_stock_talisman(app, monkeypatch)
    stock = app.test_client().get(path, **base)
    assert [r.status_code for r in (*ours, stock)] == [200] * 3
    assert "'nonce-NNNN" in ours[0].headers["Content-Security-Policy"]
    assert "'nonce-MMMM" in ours[1].headers["Content-Security-Policy"]  # each its own nonce
    for name in SECURITY_HEADERS:
        stock_value = stock.headers.get(name)
        assert ours[0].headers.get(name) == (stock_value or "").replace("K" * 32, "N" * 32) or (
            stock_value is None and ours[0].headers.get(name) is None
        ), name
        assert ours[1].headers.get(name) == (stock_value or "").replace("K" * 32, "M" * 32) or (
            stock_value is None and ours[1].headers.get(name) is None
        ), name
    assert [k for k, _v in ours[0].headers] == [k for k, _v in stock.headers]  # same order


@pytest.mark.parametrize(
    "preset",
    [{}, {"X-Frame-Options": "SAMEORIGIN"}, {"content-security-policy": "default-src *"}],
)
def test_talismans_headers_replace_any_a_response_already_has_as_stock_does(
    app, monkeypatch, preset
):
    from flask import Response

    from payapp.extensions import talisman

    def headers_after(hook):
        with app.test_request_context("/login", base_url="https://localhost"):
            from flask import request

            request.csp_nonce = "N" * 32
            response = Response("x", headers={"Vary": "Cookie", **preset})
            return list(hook(response).headers.items())

    ours = [headers_after(talisman._set_response_headers) for _ in range(2)]  # made, then kept
    use_stock_talisman(app, monkeypatch)
    stock = headers_after(talisman._set_response_headers)
    assert ours[0] == ours[1] == stock
    assert sum(name.lower() == "x-frame-options" for name, _v in stock) == 1


def test_a_changed_talisman_setting_is_sent_from_the_next_response_on(app, monkeypatch):
    from payapp.extensions import talisman

    client = app.test_client()
    assert client.get("/login").headers["Referrer-Policy"] == "same-origin"  # made and kept
    monkeypatch.setattr(talisman, "referrer_policy", "no-referrer")
    assert client.get("/login").headers["Referrer-Policy"] == "no-referrer"
    monkeypatch.setattr(talisman, "content_security_policy_report_uri", "/elsewhere")
    assert "report-uri /elsewhere" in client.get("/login").headers["Content-Security-Policy"]
