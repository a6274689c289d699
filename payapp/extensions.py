"""Flask extensions, created unbound here and bound to the app in create_app()."""

import copy

import flask
import flask_limiter
import flask_talisman
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.datastructures import Headers

from . import ratelimit_store  # noqa: F401 - registers the sqlite:// rate-limit store with limits


class Talisman(flask_talisman.Talisman):
    """flask-talisman's headers, byte for byte, for less work on every response (a profile of
    /healthz found a third of payapp's own time here): a view's options are worked out once a
    request instead of four times, and the nonce is looked up once per policy, not per
    directive. The headers themselves are made by stock flask-talisman once per distinct set
    of inputs (the view's options with the live policy, HTTPS or not, nonce or not) and kept
    with a marker where the nonce goes, until one of its settings is set again; each response
    gets its own nonce."""

    NONCE_MARK = "\x00talisman-nonce\x00"

    def __init__(self, *args, **kwargs):
        self._kept_headers: dict[tuple, tuple] = {}
        super().__init__(*args, **kwargs)

    def _set_response_headers(self, response):
        request = flask.request._get_current_object()
        options = self._get_local_options()
        nonce = getattr(request, "csp_nonce", None)
        https = request.is_secure or request.headers.get("X-Forwarded-Proto", "http") == "https"
        key = (request.endpoint, https, nonce is None)
        kept = self._kept_headers.get(key)
        # Kept only while the options (the live policy included) are what made them; a changed
        # setting empties the kept headers (__setattr__).
        if kept is None or kept[0] != options:
            stock = self._stock_headers(nonce)
            names = frozenset(name.lower() for name, _value, _has_nonce in stock)
            kept = (copy.deepcopy(options), stock, names)
            if len(self._kept_headers) >= 256:
                self._kept_headers.clear()
            self._kept_headers[key] = kept
        target = response.headers
        headers = [
            (name, value.replace(self.NONCE_MARK, nonce) if has_nonce else value)
            for name, value, has_nonce in kept[1]
        ]
        if type(target) is Headers and kept[2].isdisjoint(
            name.lower() for name, _value in target._list
        ):
            # None of them set yet (every response of ours): appended as they are, in order.
            # Setting them one by one searched the list for each name and checked each value
            # again; each was checked when the stock headers were made, a nonce is URL-safe
            # base64, and PayResponse checks every value for line breaks before sending.
            target._list.extend(headers)
        else:
            for name, value in headers:
                target[name] = value
        return response

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name in Talisman._SETTINGS:  # init_app, or a test: no header made from the old value
            self.__dict__.get("_kept_headers", {}).clear()

    _SETTINGS = (
        "x_xss_protection",
        "x_content_type_options",
        "force_file_save",
        "content_security_policy_report_uri",
        "content_security_policy_report_only",
        "strict_transport_security",
        "strict_transport_security_max_age",
        "strict_transport_security_include_subdomains",
        "strict_transport_security_preload",
        "referrer_policy",
    )

    def _stock_headers(self, nonce) -> list[tuple[str, str, bool]]:
        """What stock flask-talisman sets for this request, in its order, the nonce marked."""
        scratch = type("Scratch", (), {})()
        scratch.headers = Headers()
        super()._set_response_headers(scratch)
        marked = []
        for name, value in scratch.headers.items():
            has_nonce = nonce is not None and f"'nonce-{nonce}'" in value
            if has_nonce:
                value = value.replace(f"'nonce-{nonce}'", f"'nonce-{self.NONCE_MARK}'")
            marked.append((name, value, has_nonce))
        return marked

    def _force_https(self):
        """flask-talisman's redirect to HTTPS, asking first what every request behind the proxy
        answers (it is HTTPS), without working the view's options out for that."""
        app = self.app
        if self.session_cookie_secure and not app.debug:
            app.config["SESSION_COOKIE_SECURE"] = True  # as stock, on every request
        request = flask.request._get_current_object()
        if request.is_secure or request.environ.get("HTTP_X_FORWARDED_PROTO") == "https":
            return None  # stock's criteria; then the view's force_https is never asked
        return super()._force_https()

    def _get_local_options(self):
        request = flask.request._get_current_object()
        options = request.__dict__.get("_talisman_options")
        if options is None:
            options = request._talisman_options = super()._get_local_options()
        return options

    def _parse_policy(self, policy):
        if isinstance(policy, str):
            return super()._parse_policy(policy)
        nonce = getattr(flask.request, "csp_nonce", None)
        nonce_in = self._get_local_options()["content_security_policy_nonce_in"] or ()
        parts = []
        for section, content in policy.items():
            part = f"{section} {content if isinstance(content, str) else ' '.join(content)}"
            if nonce is not None and section in nonce_in:
                part += f" 'nonce-{nonce}'"
            parts.append(part)
        return "; ".join(parts)


class Limiter(flask_limiter.Limiter):
    """flask-limiter, doing nothing when it is disabled (RATELIMIT_ENABLED=false). Stock, every
    route decorated with a limit still worked out its limits on each request and found every one
    exempt (a twentieth of the open pay page in a profile, issue 10).

    Enabled, each limited request is checked twice: once before the view (the "middleware"
    check, for application, default, blueprint, meta and in-memory-fallback limits) and once by
    the route's own decorator. payapp sets none of the first kind (each route names its own), so
    the first check always found nothing, at a sixth of an open pay page's cost with limits on.
    It is skipped while there is none of them; configure one and it runs as stock."""

    def _check_request_limit(self, callable_name=None, in_middleware=True):
        if not (self.enabled and self.initialized):
            return None
        if in_middleware and not self.has_limits_outside_routes():
            return None
        return super()._check_request_limit(
            callable_name=callable_name, in_middleware=in_middleware
        )

    def has_limits_outside_routes(self) -> bool:
        """Whether the before-view check has anything to work out (see the class)."""
        manager = self.limit_manager
        return bool(
            manager._application_limits
            or manager._default_limits
            or manager._blueprint_limits
            or self._meta_limits
            or self._in_memory_fallback
        )


csrf = CSRFProtect()
talisman = Talisman()
# No default limits: each sensitive route names its own (see security.py and the views).
limiter = Limiter(key_func=get_remote_address, default_limits=[])
# Staff login sessions; configured by views/guards.py.
login_manager = LoginManager()
