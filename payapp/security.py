"""Security settings in one place: Talisman (CSP with nonces, HSTS, HTTPS), CSRF, rate limits,
and the headers Talisman does not set."""

from __future__ import annotations

from flask import request

from .extensions import csrf, limiter, talisman

# Everything from our own origin; scripts and styles also need the per-request nonce.
BASE_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "frame-src": "'none'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

PERMISSIONS_POLICY = {
    "camera": "()",
    "microphone": "()",
    "geolocation": "()",
    "payment": "(self)",
    "usb": "()",
}


def init_app(app) -> None:
    production = app.config["PRODUCTION"]
    talisman.init_app(
        app,
        force_https=production,
        force_https_permanent=True,
        strict_transport_security=production,
        strict_transport_security_max_age=31_536_000,
        strict_transport_security_include_subdomains=True,
        session_cookie_secure=production,
        session_cookie_http_only=True,
        content_security_policy=BASE_CSP,
        content_security_policy_nonce_in=["script-src", "style-src"],
        # same-origin, never no-referrer: flask-wtf's HTTPS CSRF check needs a same-origin Referer,
        # and the token in /pay URLs must never leak to another origin.
        referrer_policy="same-origin",
        frame_options="DENY",
        permissions_policy=PERMISSIONS_POLICY,
    )
    limiter.init_app(app)
    csrf.init_app(app)
    app.after_request(add_security_headers)


def add_security_headers(response):
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Pages carry patient data or a payment token: no cache may keep them.
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response
