"""Security settings in one place: Talisman (CSP with nonces, HSTS, HTTPS), CSRF, rate limits,
the headers Talisman does not set, and serving only inventoried scripts (integrity.py, 6.4.3)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import re
import secrets
from json.encoder import encode_basestring

from flask import abort, current_app, g, has_app_context, request, session
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, int_to_bytes, want_bytes
from itsdangerous.signer import HMACAlgorithm
from werkzeug.http import dump_cookie

from .extensions import csrf, limiter, talisman
from .gateways import square_browser
from .integrity import Inventory

log = logging.getLogger(__name__)

NONE = "'none'"
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

# A card that needs 3-D Secure shows its issuer's challenge page in a frame Square's SDK adds to
# the pay page; issuers' hosts cannot be listed, so the Square-mode pay page admits frames from any
# HTTPS origin (Square's own included). Frames only: scripts, connections and forms stay limited
# (docs/security/README.md, "3-D Secure challenge frames").
ISSUER_CHALLENGE_FRAMES = "https:"

# Square's Web Payments SDK (hosts from gateways/square_browser.py): only on the pay page in
# Square mode, nowhere else.
SQUARE_CSP = {
    env: {
        "script-src": [hosts.web, square_browser.GOOGLE_PAY],
        "frame-src": [ISSUER_CHALLENGE_FRAMES],
        "connect-src": [
            hosts.web,
            hosts.pci,
            hosts.api,
            square_browser.ERROR_REPORTING,
            square_browser.GOOGLE_PAY,
        ],
        "style-src": [hosts.web],
        "img-src": [hosts.web],
        "font-src": list(square_browser.FONTS),
    }
    for env, hosts in square_browser.HOSTS.items()
}

PERMISSIONS_POLICY = {
    "camera": "()",
    "microphone": "()",
    "geolocation": "()",
    "payment": "()",  # only the pay page in Square mode allows it, for Square's frame
    "usb": "()",
}


def allow_square_scripts() -> None:
    """Called by the pay page view in Square mode: this response's CSP admits Square's hosts."""
    g.allow_square = True


def extend_csp_for_square(response):
    """Runs after Talisman has written the policy (registered before it; Flask runs after-request
    hooks in reverse) and adds the Square hosts where the view asked for them."""
    if not g.get("allow_square") or "Content-Security-Policy" not in response.headers:
        return response
    extra = SQUARE_CSP[current_app.config["SQUARE_ENVIRONMENT"]]
    directives = []
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        sources = [v for v in value.split() if v != NONE]
        sources += [src for src in extra.get(name, []) if src not in sources]
        directives.append(f"{name} {' '.join(sources) or NONE}")
    response.headers["Content-Security-Policy"] = "; ".join(directives)
    web = SQUARE_CSP[current_app.config["SQUARE_ENVIRONMENT"]]["script-src"][0]
    response.headers["Permissions-Policy"] = response.headers.get("Permissions-Policy", "").replace(
        "payment=()", f'payment=(self "{web}")'
    )
    return response


_derived_keys: dict[tuple, bytes] = {}


class OneShotHMAC(HMACAlgorithm):
    """itsdangerous' HMAC, the same bytes, in one call to OpenSSL: its default digest is a
    Python function (``_lazy_sha1``) that sends ``hmac.new`` down the pure-Python path (two
    hash objects and two translations of the key per signature)."""

    def __init__(self, digest_method=None):
        super().__init__(digest_method)
        name = getattr(self.digest_method(), "name", None)
        # A hashlib hash by name (sha1 for Flask's and flask-wtf's); anything else the stock way.
        self.digest_name = name if name in hashlib.algorithms_guaranteed else None

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        if self.digest_name is None:
            return super().get_signature(key, value)
        return hmac.digest(key, value, self.digest_name)


class KeptKeySigner(TimestampSigner):
    """itsdangerous' TimestampSigner, the same signatures, with the key it derives from a secret
    and salt (an HMAC or hash on every signature and every check) worked out once per process,
    and its HMAC made in one call (OneShotHMAC)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if type(self.algorithm) is HMACAlgorithm:
            self.algorithm = OneShotHMAC(self.algorithm.digest_method)

    def sign(self, value) -> bytes:
        """TimestampSigner.sign, the same bytes, in one step: the value, its timestamp and the
        HMAC of both, joined by the separator (itsdangerous goes through five calls)."""
        digest_name = getattr(self.algorithm, "digest_name", None)
        if digest_name is None:
            return super().sign(value)
        sep = self.sep
        value = want_bytes(value) + sep + base64_encode(int_to_bytes(self.get_timestamp()))
        return value + sep + base64_encode(hmac.digest(self.derive_key(), value, digest_name))

    def derive_key(self, secret_key=None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        key = (secret, self.salt, self.key_derivation, self.digest_method)
        derived = _derived_keys.get(key)
        if derived is None:
            derived = super().derive_key(secret_key)
            if len(_derived_keys) >= 64:  # keys change only in tests and rotations
                _derived_keys.clear()
            _derived_keys[key] = derived
        return derived


# itsdangerous zlib-compresses every payload and keeps the result when it is shorter. On a
# payload this short that saves a few bytes at most (never, for a random CSRF token), while each
# zlib.compress sets up and frees about 256 KB of state: 10-15 us in the server, twice on a new
# visitor's page (issue 10, fifth round).
UNCOMPRESSED_UP_TO = 120


class KeptSignerSerializer(URLSafeTimedSerializer):
    """itsdangerous' URLSafeTimedSerializer, the same signatures, for less work: its signer is
    built once per salt instead of on every call (a signer holds no per-call state), and a
    payload of at most UNCOMPRESSED_UP_TO bytes is never compressed. Any itsdangerous serializer
    with the same key and salt loads what it writes (compression is marked in the payload), and
    it loads theirs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._signers: dict = {}

    def make_signer(self, salt=None):
        signer = self._signers.get(salt)
        if signer is None:
            signer = self._signers[salt] = super().make_signer(salt)
        return signer

    def dump_payload(self, obj) -> bytes:
        compact = self.serializer is URLSafeTimedSerializer.default_serializer
        if type(obj) is str and compact and not self.serializer_kwargs:
            # A string (flask-wtf's raw CSRF token) as itsdangerous' compact JSON writes it,
            # without a new json encoder per call: ensure_ascii=False, so encode_basestring.
            data = encode_basestring(obj).encode()
        else:
            data = want_bytes(self.serializer.dumps(obj, **self.serializer_kwargs))
        if len(data) <= UNCOMPRESSED_UP_TO:
            return base64_encode(data)
        return super().dump_payload(obj)


_PLAIN = (str, int, bool, type(None))


@functools.cache
def compact_json_encoder(ensure_ascii: bool, sort_keys: bool) -> json.JSONEncoder:
    """What ``json.dumps(value, separators=(",", ":"), ensure_ascii=..., sort_keys=...)`` uses,
    made once (json.dumps makes a new encoder on every call with any setting of its own)."""
    return json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii, sort_keys=sort_keys)


class SessionJSON(TaggedJSONSerializer):
    """Flask's session serializer, byte for byte. A session of plain values (a patient's: the
    CSRF token, the language chosen) needs none of its tags, so it is written by json directly,
    with the app's own JSON settings; anything else (flashed messages...) goes the stock way."""

    def dumps(self, value) -> str:
        if (
            type(value) is dict
            and not (len(value) == 1 and next(iter(value)) in self.tags)
            and all(type(k) is str and type(v) in _PLAIN for k, v in value.items())
        ):
            if not has_app_context():  # flask.json.dumps without an app: json's defaults
                return json.dumps(value, separators=(",", ":"))
            provider = current_app.json
            return compact_json_encoder(provider.ensure_ascii, provider.sort_keys).encode(value)
        return super().dumps(value)


# What response.vary.add("Cookie") leaves for the Vary values our pages start from; any other
# value goes through werkzeug's parse and rewrite.
_VARY_WITH_COOKIE = {
    None: "Cookie",
    "Cookie": "Cookie",
    "HX-Request": "HX-Request, Cookie",
    "HX-Request, Cookie": "HX-Request, Cookie",
}


def add_vary_cookie(response) -> None:
    """``response.vary.add("Cookie")``, the same header, without parsing it twice a request."""
    current = response.headers.get("Vary")
    wanted = _VARY_WITH_COOKIE.get(current)
    if wanted is None:
        response.vary.add("Cookie")
    elif wanted != current:
        response.headers["Vary"] = wanted


# Characters werkzeug never quotes in a cookie value (a subset of its own list): a signed
# cookie's URL-safe base64 and dots.
COOKIE_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.\-]*")
_cookie_templates: dict[tuple, tuple[str, str]] = {}


def set_cookie(response, key: str, value: str, max_size: int, **attributes) -> None:
    """``response.set_cookie(key, value, **attributes)``, the same Set-Cookie header. werkzeug
    writes the same attributes around every value (quoting the path, checking SameSite, ...);
    for a session cookie's plain value and no expiry here they are written once per set of
    attributes and kept. An expiring cookie, a value needing quotes or a cookie over the size
    browsers keep (werkzeug warns) goes werkzeug's way. ``max_size`` is that size, the
    response's ``max_cookie_size`` (Flask's: MAX_COOKIE_SIZE), passed in rather than looked up
    through the app's proxy twice."""
    if (
        attributes.get("expires") is not None
        or attributes.get("max_age") is not None
        or not COOKIE_PLAIN_VALUE.fullmatch(value)
    ):
        response.set_cookie(key, value, **attributes)
        return
    template_key = (key, *attributes.items())
    template = _cookie_templates.get(template_key)
    if template is None:
        head = f"{key.encode().decode('latin1')}="
        empty = dump_cookie(key, "", max_size=0, **attributes)
        if not empty.startswith(head):  # never with werkzeug 3.1; then always werkzeug's way
            response.set_cookie(key, value, **attributes)
            return
        if len(_cookie_templates) >= 64:  # attributes change only in tests
            _cookie_templates.clear()
        template = _cookie_templates[template_key] = (head, empty[len(head) :])
    header = template[0] + value + template[1]
    if max_size and len(header) > max_size:
        response.set_cookie(key, value, **attributes)  # werkzeug's warning
        return
    response.headers.add("Set-Cookie", header)


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, the same cookies, for less work per request: the signing
    serializer is built once per set of keys instead of twice per request (it holds no
    per-request state), its signer keeps its derived key, and a session of plain values skips
    the tagging walk."""

    serializer = SessionJSON()

    def __init__(self):
        self._serializers: dict[tuple, object] = {}

    def open_session(self, app, request):
        # A request with no Cookie header at all (a new visitor, wrk) gets the new session Flask
        # would give it, without parsing the absent header first.
        if "HTTP_COOKIE" not in request.environ and self.get_signing_serializer(app) is not None:
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        """Flask's save_session, step for step, with "Vary: Cookie" added by add_vary_cookie."""
        name = self.get_cookie_name(app)
        attributes = {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "partitioned": self.get_cookie_partitioned(app),
            "samesite": self.get_cookie_samesite(app),
            "httponly": self.get_cookie_httponly(app),
        }
        if session.accessed:
            add_vary_cookie(response)
        if not session:
            if session.modified:
                response.delete_cookie(name, **attributes)
                add_vary_cookie(response)
            return
        if not self.should_set_cookie(app, session):
            return
        expires = self.get_expiration_time(app, session)
        val = self.get_signing_serializer(app).dumps(dict(session))
        max_size = app.config["MAX_COOKIE_SIZE"]
        set_cookie(response, name, val, max_size, expires=expires, **attributes)
        add_vary_cookie(response)

    def get_signing_serializer(self, app):
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        serializer = self._serializers.get(keys)
        if serializer is None:
            # As Flask builds it (current key last), with the signer that keeps its key.
            serializer = self._serializers[keys] = KeptSignerSerializer(
                list(keys),
                salt=self.salt,
                serializer=self.serializer,
                signer=KeptKeySigner,
                signer_kwargs={
                    "key_derivation": self.key_derivation,
                    "digest_method": self.digest_method,
                },
            )
        return serializer


# flask-wtf signs its CSRF tokens with this salt (flask_wtf.csrf.generate_csrf / validate_csrf).
CSRF_SALT = "wtf-csrf-token"
_csrf_serializers: dict[object, KeptSignerSerializer] = {}


def csrf_token() -> str:
    """flask-wtf's ``generate_csrf()``, step for step: the same raw token in the session, signed
    the same way (flask-wtf's ``validate_csrf`` checks it) and kept in ``g`` for the request, so
    generate_csrf() returns the same one. Only the signing serializer is built once per key
    instead of on every call (a tenth of the open pay page, issue 10's fourth round), and the raw
    token is 160 random bits as 40 hex digits from ``secrets`` (flask-wtf hashes 512 random bits
    with SHA-1 to the same shape)."""
    app = current_app._get_current_object()  # each object once, not through its proxy each time
    config = app.config
    secret_key = config.get("WTF_CSRF_SECRET_KEY", app.secret_key)
    field_name = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    if secret_key is None or field_name is None:
        raise RuntimeError("CSRF is not configured.")
    request_globals = g._get_current_object()
    token = request_globals.get(field_name)
    if field_name not in request_globals:
        serializer = _csrf_serializers.get(secret_key)
        if serializer is None:
            serializer = KeptSignerSerializer(secret_key, salt=CSRF_SALT, signer=KeptKeySigner)
            if len(_csrf_serializers) >= 8:  # keys change only in tests and rotations
                _csrf_serializers.clear()
            _csrf_serializers[secret_key] = serializer
        visitor = session._get_current_object()
        if field_name not in visitor:
            visitor[field_name] = secrets.token_hex(20)  # flask-wtf's: 40 hex digits
        try:
            token = serializer.dumps(visitor[field_name])
        except TypeError:
            visitor[field_name] = secrets.token_hex(20)  # flask-wtf's: 40 hex digits
            token = serializer.dumps(visitor[field_name])
        setattr(request_globals, field_name, token)
    return token


def init_app(app) -> None:
    production = app.config["PRODUCTION"]
    app.session_interface = SessionCookies()
    app.after_request(extend_csp_for_square)
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
        content_security_policy_report_uri="/csp-report",
        # same-origin, never no-referrer: flask-wtf's HTTPS CSRF check needs a same-origin Referer,
        # and the token in /pay URLs must never leak to another origin.
        referrer_policy="same-origin",
        frame_options="DENY",
        permissions_policy=PERMISSIONS_POLICY,
    )
    limiter.init_app(app)
    csrf.init_app(app)
    ask_the_method_first(app)
    app.after_request(add_security_headers)
    app.before_request(refuse_repeated_fields)
    inventory = Inventory.load(app.static_folder)
    app.extensions["payapp.inventory"] = inventory
    app.before_request(refuse_changed_scripts)
    app.jinja_env.globals["sri"] = inventory.sri


FLASK_WTF_HOOK = "CSRFProtect.init_app.<locals>.csrf_protect"


def ask_the_method_first(app) -> None:
    """flask-wtf's before-request CSRF check, replaced in place by the same check asking the
    request's method first: a GET, HEAD or OPTIONS is never checked, but flask-wtf looked up the
    view and its exemptions before finding that out (about 8 us on every page, issue 10's fifth
    round). Every method it checks is checked by its own ``protect``, exemptions and all."""
    hooks = app.before_request_funcs.setdefault(None, [])
    place = next((i for i, f in enumerate(hooks) if f.__qualname__ == FLASK_WTF_HOOK), None)
    if place is None:
        return  # a flask-wtf that registers its check another way keeps it as it is

    def csrf_protect():
        config = app.config
        if not config["WTF_CSRF_ENABLED"] or not config["WTF_CSRF_CHECK_DEFAULT"]:
            return
        if request.method in config["WTF_CSRF_METHODS"]:
            csrf.protect(apply_exemptions=True)

    hooks[place] = csrf_protect


def refuse_repeated_fields():
    """Strict form parsing: none of our forms sends a field twice, so a repeated field (two CSRF
    tokens, two amounts) is an attack or a bug, never a patient: 400 before anything reads it."""
    form_types = ("application/x-www-form-urlencoded", "multipart/form-data")
    if (
        request.method == "POST"
        and request.mimetype in form_types
        and any(len(values) > 1 for values in request.form.listvalues())
    ):
        abort(400)


def add_security_headers(response):
    headers = response.headers
    # What headers.setdefault does, in one pass: werkzeug looks a name up three times, and
    # raises and catches an exception for each name missing (issue 10, fifth round).
    present = {name.lower() for name, _value in headers}
    if "cross-origin-opener-policy" not in present:
        headers.add("Cross-Origin-Opener-Policy", "same-origin")
    if "x-content-type-options" not in present:
        headers.add("X-Content-Type-Options", "nosniff")
    # Pages carry patient data or a payment token: no cache may keep them. (/assets/ sets its
    # own: fingerprinted files, public and immutable.)
    if not request.path.startswith(("/static/", "/assets/")):
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def refuse_changed_scripts():
    """before_request: a script under static/ that is not the inventoried one is not served."""
    if request.endpoint != "static":
        return None
    filename = (request.view_args or {}).get("filename", "")
    if not filename.lower().endswith((".js", ".mjs", ".cjs")):
        return None
    inventory: Inventory = current_app.extensions["payapp.inventory"]
    if inventory.is_intact(current_app.static_folder, filename):
        return None
    log.error("refused to serve %s: not in the script inventory or its hash changed", filename)
    abort(404)
