"""payapp: self-hosted pay-by-link for small clinics."""

from __future__ import annotations

import functools
import inspect
import os
from pathlib import Path

from flask import Flask, Response, abort, jsonify
from sqlalchemy import text
from werkzeug.datastructures import Headers
from werkzeug.middleware.proxy_fix import ProxyFix

from .db import PreparedRead
from .paths import DEFAULT_INSTANCE_DIR, STATIC_DIR, TEMPLATES_DIR

# /healthz's question, compiled once and asked on a pooled DBAPI connection (db.PreparedRead).
SELECT_ONE = PreparedRead(text("SELECT 1"))
# Where Apple looks for the Apple Pay domain-association file (Square's Web Payments SDK docs).
APPLE_PAY_PATH = "/.well-known/apple-developer-merchantid-domain-association"


@functools.lru_cache(maxsize=1024)
def _is_async(func) -> bool:
    return inspect.iscoroutinefunction(func)


class PayResponse(Response):
    """Flask's Response, the same headers sent. Before sending, werkzeug copies the headers by
    adding each again, which checks every value for line breaks a second time (each was checked
    when it was set): about 10 us on a pay page with its security headers (issue 10, fifth
    round). For an ordinary response (no Location or Content-Location to rewrite, a status with
    a body) the copy here takes the list as it is, after checking all values in one pass; any
    other response is werkzeug's own."""

    def get_wsgi_headers(self, environ):
        headers = self.headers
        status = self.status_code
        if type(headers) is not Headers or status < 200 or status in (204, 304):
            return super().get_wsgi_headers(environ)
        content_length = None
        for key, value in headers._list:
            if type(value) is not str or "\n" in value or "\r" in value:
                return super().get_wsgi_headers(environ)  # werkzeug's refusal, as it words it
            name = key.lower()
            if name in ("location", "content-location"):
                return super().get_wsgi_headers(environ)
            if name == "content-length":
                content_length = value
        copy = Headers()
        copy._list = headers._list.copy()
        if self.automatically_set_content_length and self.is_sequence and content_length is None:
            copy["Content-Length"] = str(sum(len(x) for x in self.iter_encoded()))
        return copy


class PayApp(Flask):
    """Flask, remembering which functions are async: Flask asks it of every hook and view on
    every request (a twentieth of /healthz in a profile, issue 10), and the answer never changes.
    Its responses are PayResponse."""

    response_class = PayResponse

    def ensure_sync(self, func):
        return self.async_to_sync(func) if _is_async(func) else func


def create_app(test_config: dict | None = None) -> Flask:
    """The application factory: config, extensions, blueprints, commands, error pages."""
    from . import logs

    logs.install()  # before anything can log a token, an email or a phone number
    # Explicit folders: an installed package would otherwise get <venv>/var/payapp-instance.
    app = PayApp(
        __name__,
        instance_path=os.environ.get("PAYAPP_INSTANCE_PATH", str(DEFAULT_INSTANCE_DIR)),
        instance_relative_config=True,
        template_folder=str(TEMPLATES_DIR),
        static_folder=str(STATIC_DIR),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from . import alerts, assets, cli, db, errors, i18n, links, payments, security, states
    from .clinic import Clinic
    from .config import load_config
    from .decline_reasons import describe_code
    from .gateways.factory import make_gateway
    from .gateways.square_troubleshooting import gateway_hint
    from .money import format_cents
    from .views import (
        account,
        audit_log,
        dashboard,
        exports,
        guards,
        pay,
        problems,
        staff,
        twilio,
        users,
        webhooks,
    )
    from .views import alerts as alerts_views

    load_config(app, test_config)
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        # X-Forwarded-For/-Proto only from the configured proxies (Caddy: 1). With 0 nobody is
        # believed: a client could otherwise pick its own address for every rate limit.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0)

    db.init_app(app)
    security.init_app(app)
    assets.init_app(app)
    guards.init_app(app)
    cli.init_app(app)
    errors.init_app(app)
    app.register_blueprint(account.bp)
    app.register_blueprint(pay.bp)
    pay.init_app(app)
    i18n.init_app(app)
    app.register_blueprint(staff.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(twilio.bp)
    app.register_blueprint(audit_log.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(alerts_views.bp)
    app.register_blueprint(problems.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(exports.bp)
    app.extensions["payapp.gateway"] = make_gateway(app.config)

    clinic = Clinic.from_config(app.config)
    app.jinja_env.filters["money"] = format_cents
    # Staff pages show every time in the clinic's zone through this one filter.
    app.jinja_env.filters["local_time"] = clinic.local_time
    app.jinja_env.filters["code_words"] = describe_code
    app.jinja_env.filters["card_brand"] = payments.card_brand_name
    app.jinja_env.filters["wallet_name"] = states.Wallet.label_of
    app.jinja_env.globals.update(
        staff_alerts=lambda role: alerts.active_alerts(db.get_session(), role),
        surge_incidents=lambda: alerts.banner_incidents(db.get_session()),
        describe_surge=alerts.describe,
        gateway_hint=gateway_hint,
        clinic=clinic,
        demo_mode=app.config["DEMO_MODE"],
        link_status=links.effective_status,
    )
    # LinkStatus, AuditAction, ...: templates compare and label states with the domain's words.
    app.jinja_env.globals.update(states.jinja_globals())

    @app.get("/healthz")
    def healthz():
        # A pooled connection answers "is the database there?": no ORM session needed.
        SELECT_ONE.first(app.extensions["payapp.engine"])
        return jsonify(status="ok")

    @app.get(APPLE_PAY_PATH)
    def apple_pay_domain_association():
        # Apple fetches this file to verify the domain registered for Apple Pay in Square.
        path = app.config.get("APPLE_PAY_DOMAIN_ASSOCIATION")
        if not path or not os.path.isfile(path):
            abort(404)
        with open(path, "rb") as f:
            body = f.read()
        return Response(body, mimetype="text/plain")

    return app
