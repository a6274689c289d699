"""A local HTTP server that speaks Square's Payments, Refunds and Locations wire format.

Point the real SDK at it::

    with SquareStandin() as standin:
        client = Square(token=standin.access_token, base_url=standin.base_url, version="2026-09-16")
        client.payments.create(source_id="cnon:card-nonce-ok", idempotency_key="k1",
                               amount_money={"amount": 1500, "currency": "USD"})

or run it for local development: ``python -m payapp.devtools.square_standin --port 8765``.

Standard library only for serving (one thread per request). Every JSON response of the nine
operations in ``tests/square/payments-openapi-subset.json`` is checked against the operation's
declared response schema with ``openapi-schema-validator`` (when installed); failures are listed
in ``schema_errors`` instead of being raised inside the server.

Where the behaviour comes from
------------------------------
DOCUMENTED (Square's spec/docs, see /work/shared/square/README.md): paths and bodies; the sandbox
nonces and their error codes (README 2.2; codes confirmed by third-party test suites); declines
answer with both ``errors`` and a FAILED ``payment`` (README 1.4); the error category of every
code (the spec's ``ErrorCode`` ``x-enum-elements``); idempotency (same key + same body replays,
different body -> IDEMPOTENCY_KEY_REUSED); cancel voids only APPROVED payments; cancel by
idempotency key succeeds silently when nothing matches (its answer for a COMPLETED payment is
not documented: a constructor switch, see GUESSES); refunds of an APPROVED payment ->
REFUND_ERROR_PAYMENT_NEEDS_COMPLETION; refund over the remaining amount -> REFUND_AMOUNT_INVALID;
``delay_duration`` only with ``autocomplete`` false, default P7D for card-not-present; the
``main`` location alias; the webhook envelope and its HMAC-SHA256 signature (README 1.7, 4.2).

THIRD-PARTY evidence (forum/issue threads, not contract): an unknown nonce answers HTTP 404
NOT_FOUND "Card nonce not found" (square/in-app-payments-flutter-plugin#66,
square/react-square-payment-form#32); decline details read ``Authorization error: '<CODE>'``;
CARD_TOKEN_USED's detail "Card nonce already used; please request new nonce."; the v2 API answers
card declines with HTTP 400; MISSING_REQUIRED_PARAMETER's detail "Field must be set".

GUESSES (no source found; see ``GUESSES`` below, which the tests and the closing note quote):
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import hmac
import json
import re
import secrets
import socket
import string
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC_PATH = REPO_ROOT / "tests" / "square" / "payments-openapi-subset.json"

GUESSES: tuple[str, ...] = (
    "HTTP status by error code: NOT_FOUND -> 404 everywhere (also an unknown location_id and a "
    "refund of an unknown payment), UNAUTHORIZED -> 401, INTERNAL_SERVER_ERROR -> 500, "
    "everything else -> 400. (404 for an unknown nonce is third-party evidence; the rest follows "
    "from it.)",
    "Wrong location_id on CreatePayment: 404 INVALID_REQUEST_ERROR/NOT_FOUND, "
    "detail 'Location `X` not found.', field location_id.",
    "Currency other than the location's (CreatePayment) or the payment's (RefundPayment): 400 "
    "INVALID_REQUEST_ERROR/INVALID_VALUE, field amount_money.currency.",
    "amount_money missing -> MISSING_REQUIRED_PARAMETER; amount < 1 -> VALUE_TOO_LOW "
    "(CreatePayment and RefundPayment).",
    "Request-shape errors are derived from the spec's request schema: required -> "
    "MISSING_REQUIRED_PARAMETER, maxLength -> VALUE_TOO_LONG (reference_id > 40, note > 500, "
    "idempotency_key > 45, reason > 192), minLength -> VALUE_TOO_SHORT, wrong JSON type -> "
    "EXPECTED_INTEGER/STRING/BOOLEAN/OBJECT/ARRAY/FLOAT, enum -> INVALID_ENUM_VALUE; the "
    "`field` is the dotted path; detail texts are invented. Only the first error is reported.",
    "JSON null in a request is treated as an absent field (README 1.3 only says the SDK sends it).",
    "A body that is not JSON: 400 INVALID_REQUEST_ERROR/BAD_REQUEST.",
    "Any source_id that is not a known sandbox nonce: 404 INVALID_REQUEST_ERROR/NOT_FOUND "
    "'Card nonce not found' (third-party evidence), field source_id.",
    "cnon:gift-card-nonce-insufficient-permission -> CARDHOLDER_INSUFFICIENT_PERMISSIONS.",
    "Stand-in-only nonces: cnon:standin-verification-required -> "
    "CARD_DECLINED_VERIFICATION_REQUIRED (with a FAILED payment); cnon:standin-token-expired -> "
    "CARD_TOKEN_EXPIRED, cnon:standin-invalid-card-data -> INVALID_CARD_DATA (both "
    "INVALID_REQUEST_ERROR, no payment); cnon:standin-temporary-error -> HTTP 400 "
    "PAYMENT_METHOD_ERROR/TEMPORARY_ERROR, no payment, idempotency key NOT consumed (the spec "
    "says to retry with the same key). Amount 2222 -> risk MODERATE, 3333 -> HIGH (an "
    "unverified third-party note about the sandbox).",
    "Shape of a FAILED (declined) payment: card_details.status FAILED, card_details.errors = the "
    "errors, no approved_money, no card_payment_timeline.authorized_at.",
    "Gift cards: card_brand SQUARE_GIFT_CARD, last_4 '0000', bin '778332', card_type DEBIT, "
    "prepaid_type PREPAID, no expiry.",
    "What consumes an idempotency key: approvals, declines and CARD_TOKEN_USED/CARD_TOKEN_EXPIRED/"
    "INVALID_CARD_DATA are stored and replayed verbatim (the first response, not the payment's "
    "current state); request-shape, location, currency, unknown-nonce and TEMPORARY_ERROR "
    "answers are not stored. Keys are per endpoint (CreatePayment and RefundPayment are "
    "separate), never expire, and are compared on the parsed JSON body.",
    "CancelPaymentByIdempotencyKey: an APPROVED payment is voided and the key is RELEASED (a "
    "later CreatePayment with that key charges afresh, per the doc's 'you can submit your "
    "CreatePayment request again'); FAILED/CANCELED/no payment -> 200 {}. A CreatePayment "
    "still in flight is not blocked. Square does not document the answer for a COMPLETED "
    "payment, so it is a switch: cancel_completed_by_key='error' (default; CLI "
    "--cancel-completed-by-key error) -> 400 INVALID_REQUEST_ERROR/BAD_REQUEST, or 'ok' -> "
    "200 {} with the payment left COMPLETED (no action). Tests that depend on it run both.",
    "CancelPayment of a COMPLETED/FAILED payment -> 400 INVALID_REQUEST_ERROR/BAD_REQUEST; of an "
    "already CANCELED one -> 200 with the payment (idempotent). CompletePayment of a COMPLETED "
    "payment -> 200 (idempotent); of CANCELED/FAILED -> 400 BAD_REQUEST.",
    "version_token / payment_version_token are accepted and ignored (VERSION_MISMATCH is listed "
    "in the spec's x-endpoint-errors but is in neither the ErrorCode enum nor the SDK).",
    "delay_duration/delay_action with autocomplete true -> 400 INVALID_VALUE; a delay_duration "
    "that is not an ISO-8601 duration -> 400 INVALID_VALUE. Payments always carry delay_action, "
    "delay_duration (default PT168H) and delayed_until, as in Square's examples. Delayed "
    "capture never expires by itself (use update_payment).",
    "RefundPayment: payment_id is required (unlinked refunds unsupported); refund of a "
    "FAILED/CANCELED payment -> 400 REFUND_ERROR/PAYMENT_NOT_REFUNDABLE; PENDING refunds count "
    "against the refundable amount and in payment.refunded_money at once; refunds start "
    "PENDING and stay so until complete_refund(); refund ids are '<payment id>_<random>'; "
    "each refund gets a fresh order_id.",
    "No processing_fee, capabilities or device details are ever filled in.",
    "401 details: 'This request could not be authorized.' (wrong token) and 'Your request did "
    "not include an `Authorization` http header with an access token.' (missing) - recalled "
    "wording, unverified.",
    "Routes that do not exist (and wrong methods): 404 INVALID_REQUEST_ERROR/NOT_FOUND.",
    "Order of checks on CreatePayment: Authorization -> JSON -> request schema -> idempotency "
    "key lookup -> location -> amounts/currency -> delay settings -> nonce. Square-Version is "
    "recorded, never checked; responses carry no Square-specific headers.",
    "Webhook bodies are compact JSON (',' and ':' separators); Square's exact whitespace is "
    "unknown (the signature covers whatever bytes are sent, so it does not matter).",
    "In-memory corrections to the subset spec before validating: RiskEvaluation's "
    "`required: [status]` is dropped - the property is not even declared and Square's own "
    "examples (CreatePaymentResponse, PaymentUpdatedEvent, ...) omit it.",
)

if __doc__:  # None under python -OO
    __doc__ += "".join(f"\n* {g}" for g in GUESSES) + "\n"

FAULTS = (
    "delay",  # sleep, then process normally
    "timeout_no_charge",  # sleep, then close the connection without processing
    "500",  # HTTP 500 INTERNAL_SERVER_ERROR without processing
    "drop_after_charge",  # process fully, then close without sending a byte
    "delay_after_charge",  # stand-in extra: process fully, sleep, then answer
    "temporary_error",  # stand-in extra: 400 TEMPORARY_ERROR without processing (key unused)
)
FAULTABLE_OPERATIONS = ("CreatePayment", "RefundPayment")
# What CancelPaymentByIdempotencyKey answers for a COMPLETED payment (undocumented; see GUESSES).
CANCEL_COMPLETED_ANSWERS = ("error", "ok")

_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"
_FINAL_PAYMENT_STATES = ("COMPLETED", "CANCELED", "FAILED")
_CARD_STATUS_FOR = {
    "APPROVED": "AUTHORIZED",
    "COMPLETED": "CAPTURED",
    "CANCELED": "VOIDED",
    "FAILED": "FAILED",
}


# --- small helpers -----------------------------------------------------------------------------


def _rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _square_id() -> str:
    """29 characters ending in "ZY", like the payment and order ids in Square's examples."""
    return _rand(27) + "ZY"


def _version_token() -> str:
    return _rand(43) + "6o"


def _error(category: str, code: str, detail: str | None = None, field: str | None = None) -> dict:
    err: dict[str, str] = {"category": category, "code": code}
    if detail:
        err["detail"] = detail
    if field:
        err["field"] = field
    return err


def _status_for(code: str) -> int:
    return {"NOT_FOUND": 404, "UNAUTHORIZED": 401, "INTERNAL_SERVER_ERROR": 500}.get(code, 400)


def _fail(category: str, code: str, detail: str | None = None, field: str | None = None):
    return _status_for(code), {"errors": [_error(category, code, detail, field)]}


def _invalid(code: str, detail: str | None = None, field: str | None = None):
    return _fail("INVALID_REQUEST_ERROR", code, detail, field)


def _refund_error(code: str, detail: str | None = None, field: str | None = None):
    return _fail("REFUND_ERROR", code, detail, field)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


_DURATION = re.compile(
    r"^P(?!$)(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


def _parse_duration(text: str) -> timedelta | None:
    match = _DURATION.match(text)
    if not match:
        return None
    parts = {k: int(v or 0) for k, v in match.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sign_webhook(body: str, *, signature_key: str, notification_url: str) -> str:
    """The ``x-square-hmacsha256-signature`` value Square sends with ``body`` (README 1.7)."""
    digest = hmac.new(
        signature_key.encode("utf-8"), (notification_url + body).encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


# --- sandbox nonces ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    code: str | None = None  # None: approved
    category: str = "PAYMENT_METHOD_ERROR"
    detail: str | None = None
    with_payment: bool = True  # a decline carries a FAILED payment
    gift_card: bool = False
    cvv_status: str = "CVV_ACCEPTED"
    avs_status: str = "AVS_ACCEPTED"
    consumes_key: bool = True


def _decline(code: str, **kw: Any) -> _Outcome:
    return _Outcome(code=code, detail=f"Authorization error: '{code}'", **kw)


def _token_error(code: str, detail: str, **kw: Any) -> _Outcome:
    return _Outcome(code=code, category="INVALID_REQUEST_ERROR", detail=detail, **kw)


NONCES: dict[str, _Outcome] = {
    "cnon:card-nonce-ok": _Outcome(),
    "cnon:gift-card-nonce-ok": _Outcome(gift_card=True),
    "cnon:card-nonce-declined": _decline("GENERIC_DECLINE"),
    "cnon:card-nonce-rejected-cvv": _decline("CVV_FAILURE", cvv_status="CVV_REJECTED"),
    "cnon:card-nonce-rejected-postalcode": _decline(
        "ADDRESS_VERIFICATION_FAILURE", avs_status="AVS_REJECTED"
    ),
    "cnon:card-nonce-rejected-expiration": _decline("INVALID_EXPIRATION"),
    "cnon:gift-card-nonce-insufficient-funds": _decline("INSUFFICIENT_FUNDS", gift_card=True),
    "cnon:gift-card-nonce-insufficient-permission": _decline(
        "CARDHOLDER_INSUFFICIENT_PERMISSIONS", gift_card=True
    ),
    "cnon:card-nonce-already-used": _token_error(
        "CARD_TOKEN_USED", "Card nonce already used; please request new nonce.", with_payment=False
    ),
    # Stand-in-only test values (not Square's):
    "cnon:standin-verification-required": _decline("CARD_DECLINED_VERIFICATION_REQUIRED"),
    "cnon:standin-token-expired": _token_error(
        "CARD_TOKEN_EXPIRED", "Card nonce expired.", with_payment=False
    ),
    "cnon:standin-invalid-card-data": _token_error(
        "INVALID_CARD_DATA", "Invalid card data.", with_payment=False
    ),
    "cnon:standin-temporary-error": _Outcome(
        code="TEMPORARY_ERROR",
        detail="A temporary internal error occurred. Retry with the same idempotency key.",
        with_payment=False,
        consumes_key=False,
    ),
}
RISK_BY_AMOUNT = {2222: "MODERATE", 3333: "HIGH"}


# --- OpenAPI validation ------------------------------------------------------------------------

_TYPE_CODES = {
    "integer": "EXPECTED_INTEGER",
    "string": "EXPECTED_STRING",
    "boolean": "EXPECTED_BOOLEAN",
    "object": "EXPECTED_OBJECT",
    "array": "EXPECTED_ARRAY",
    "number": "EXPECTED_FLOAT",
}


class SpecValidators:
    """Validators for the subset spec's schemas, built once per spec file."""

    def __init__(self, spec: dict):
        from openapi_schema_validator import OAS30Validator, oas30_format_checker

        spec = copy.deepcopy(spec)
        # Correction (see GUESSES): Square's own examples have no risk_evaluation.status.
        spec["components"]["schemas"]["RiskEvaluation"].pop("required", None)
        self._components = spec["components"]
        self._cls = OAS30Validator
        self._format_checker = oas30_format_checker
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.response_schema: dict[str, str] = {}
        self.request_schema: dict[str, str] = {}
        for ops in spec["paths"].values():
            for op in ops.values():
                ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                self.response_schema[op["operationId"]] = ref.rsplit("/", 1)[1]
                body = op.get("requestBody", {}).get("content", {}).get("application/json")
                if body:
                    self.request_schema[op["operationId"]] = body["schema"]["$ref"].rsplit("/")[-1]
        for name in self.response_schema.values():
            self.validator(name)

    def validator(self, schema_name: str):
        with self._lock:
            if schema_name not in self._cache:
                if schema_name not in self._components["schemas"]:
                    raise KeyError(f"no schema {schema_name!r} in the spec")
                root = {
                    "$ref": f"#/components/schemas/{schema_name}",
                    "components": self._components,
                }
                self._cache[schema_name] = self._cls(root, format_checker=self._format_checker)
            return self._cache[schema_name]

    def errors(self, schema_name: str, instance: Any) -> list:
        found = self.validator(schema_name).iter_errors(instance)
        return sorted(found, key=lambda e: [str(p) for p in e.absolute_path])

    def check(self, schema_name: str, instance: Any) -> list[str]:
        """Readable messages, one per violation; empty when ``instance`` is valid."""
        out = []
        for e in self.errors(schema_name, instance):
            where = "/".join(str(p) for p in e.absolute_path) or "<root>"
            message = e.message if len(e.message) <= 200 else e.message[:200] + "..."
            out.append(f"{schema_name}: {where}: {message} [{e.validator}]")
        return out

    def request_error(self, schema_name: str, body: dict) -> tuple[int, dict] | None:
        """The first violation of a request schema as Square-style error (see GUESSES)."""
        errors = self.errors(schema_name, body)
        if not errors:
            return None
        e = errors[0]
        path = [str(p) for p in e.absolute_path]
        if e.validator == "required":
            missing = next(r for r in e.validator_value if r not in e.instance)
            return _invalid(
                "MISSING_REQUIRED_PARAMETER", "Field must be set", ".".join([*path, missing])
            )
        where = ".".join(path)
        if e.validator == "maxLength":
            code, detail = (
                "VALUE_TOO_LONG",
                f"Field must not be greater than {e.validator_value} length",
            )
        elif e.validator == "minLength":
            code, detail = (
                "VALUE_TOO_SHORT",
                f"Field must not be less than {e.validator_value} length",
            )
        elif e.validator == "type":
            expected = e.validator_value if isinstance(e.validator_value, str) else "object"
            code, detail = _TYPE_CODES.get(expected, "INVALID_VALUE"), f"Expected {expected}."
        elif e.validator == "enum":
            code, detail = (
                "INVALID_ENUM_VALUE",
                f"`{e.instance}` is not a valid enum value for `{where}`.",
            )
        else:
            code, detail = "INVALID_VALUE", f"Invalid value for `{where}`."
        return _invalid(code, detail, where or None)


@lru_cache(maxsize=4)
def load_spec_validators(spec_path: str) -> SpecValidators:
    return SpecValidators(json.loads(Path(spec_path).read_text(encoding="utf-8")))


# --- state -------------------------------------------------------------------------------------


@dataclass
class _KeyEntry:
    body: Any  # the request as parsed, for "same key + same body"
    status: int
    response: dict
    object_id: str | None = None


@dataclass
class _Fault:
    kind: str
    remaining: int
    delay: float
    operation: str | None


@dataclass
class _Reply:
    status: int
    body: dict | None
    operation: str | None = None  # spec operationId, for response validation


Route = tuple[str | None, Callable[..., tuple[int, dict]], dict[str, str]]


class SquareStandin:
    """A Square stand-in on 127.0.0.1. ``start()`` it (or use ``with``) and read ``base_url``.

    State tests can read (plain dicts/lists, safe to inspect between requests):

    * ``payments`` / ``refunds``: id -> the object's CURRENT JSON, as GET would return it.
    * ``requests``: (method, request target incl. any query string, parsed JSON body or None)
      for every request received, faulted and unauthorized ones included;
      ``request_headers`` runs parallel (lower-case names); ``square_versions`` is a shortcut.
    * ``charges``: a snapshot of every payment approved or completed at creation (money moved);
      declined (FAILED) payments are in ``payments`` but not here.
    * ``schema_errors``: responses/webhooks that failed the OpenAPI schema; ``server_errors``:
      exceptions inside the stand-in (answered as HTTP 500).

    Test hooks: ``inject``/``clear_faults``, ``wait_until_idle``, ``reset``, ``update_payment``,
    ``create_dashboard_refund``, ``update_refund``, ``complete_refund``, ``webhook``,
    ``check_schema``.
    """

    def __init__(
        self,
        *,
        access_token: str = "standin-token",  # noqa: S107 - a fake token for a local test server
        location_id: str = "LSTANDIN1",
        currency: str = "USD",
        location_name: str = "Stand-in Dental",
        spec_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        merchant_id: str = "MSTANDIN1",
        application_id: str = "sandbox-sq0idb-STANDIN",
        country: str = "US",
        timezone: str = "America/New_York",
        location_status: str = "ACTIVE",
        location_capabilities: tuple[str, ...] = ("CREDIT_CARD_PROCESSING",),
        validate: bool | None = None,
        verbose: bool = False,
        cancel_completed_by_key: str = "error",
    ):
        if cancel_completed_by_key not in CANCEL_COMPLETED_ANSWERS:
            raise ValueError(f"cancel_completed_by_key must be one of {CANCEL_COMPLETED_ANSWERS}")
        self.cancel_completed_by_key = cancel_completed_by_key
        self.access_token = access_token
        self.location_id = location_id
        self.currency = currency
        self.location_name = location_name
        self.merchant_id = merchant_id
        self.application_id = application_id
        self.host = host
        self.port = port
        self.verbose = verbose
        self.spec_path = Path(spec_path) if spec_path else DEFAULT_SPEC_PATH
        self.validators: SpecValidators | None = None
        if validate is not False:
            try:
                self.validators = load_spec_validators(str(self.spec_path))
            except (ImportError, OSError) as exc:
                if validate:
                    raise
                print(f"square stand-in: schema validation off ({exc})", file=sys.stderr)
        self._location = {
            "id": location_id,
            "name": location_name,
            "business_name": location_name,
            "timezone": timezone,
            "capabilities": list(location_capabilities),
            "status": location_status,
            "created_at": "2024-01-02T15:04:05.000Z",
            "merchant_id": merchant_id,
            "country": country,
            "language_code": "en-US",
            "currency": currency,
            "type": "PHYSICAL",
        }

        self.payments: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.request_headers: list[dict[str, str]] = []  # lower-case names, parallel to requests
        self.charges: list[dict] = []
        self.schema_errors: list[str] = []
        self.server_errors: list[str] = []  # exceptions inside the stand-in itself (a bug)
        self._payment_keys: dict[str, _KeyEntry] = {}
        self._refund_keys: dict[str, _KeyEntry] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._last_stamp = datetime.fromtimestamp(0, UTC)
        self._busy = 0
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def validating(self) -> bool:
        return self.validators is not None

    def start(self) -> SquareStandin:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"square-standin-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes injected sleeps
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self.wait_until_idle(timeout=2)

    def __enter__(self) -> SquareStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_until_idle(self, timeout: float = 5.0) -> bool:
        """Block until no request is being handled (e.g. a delayed one still sleeping)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)

    def reset(self) -> None:
        """Forget every payment, refund, key, fault and recorded request."""
        with self._lock:
            for container in (self.payments, self.refunds, self._payment_keys, self._refund_keys):
                container.clear()
            for seq in (
                self.requests,
                self.request_headers,
                self.charges,
                self.schema_errors,
                self.server_errors,
                self._faults,
            ):
                seq.clear()

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    @property
    def square_versions(self) -> list[str | None]:
        return [h.get("square-version") for h in self.request_headers]

    # --- faults --------------------------------------------------------------------------------

    def inject(
        self, fault: str, times: int = 1, delay: float = 0.0, *, operation: str | None = None
    ) -> None:
        """Apply ``fault`` to the next ``times`` CreatePayment/RefundPayment requests.

        ``operation`` ("CreatePayment" or "RefundPayment") narrows it to one of them. Faults
        queue: the first one with uses left applies.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        if operation not in (None, *FAULTABLE_OPERATIONS):
            raise ValueError(f"faults apply to {FAULTABLE_OPERATIONS}, not {operation!r}")
        if times < 1 or delay < 0:
            raise ValueError("times must be >= 1 and delay >= 0")
        with self._lock:
            self._faults.append(_Fault(fault, times, delay, operation))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, operation: str | None) -> _Fault | None:
        if operation not in FAULTABLE_OPERATIONS:
            return None
        with self._lock:
            for fault in self._faults:
                if fault.operation in (None, operation):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- clock ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """Strictly increasing, millisecond precision, so every change bumps updated_at."""
        with self._lock:
            now = datetime.now(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if now <= self._last_stamp:
                now = self._last_stamp + timedelta(milliseconds=1)
            self._last_stamp = now
            return now

    def _stamp(self) -> str:
        return _fmt(self._now())

    def _touch(self, obj: dict) -> None:
        obj["updated_at"] = self._stamp()
        if "version_token" in obj:
            obj["version_token"] = _version_token()
        if "version" in obj:
            obj["version"] += 1

    # --- request handling ----------------------------------------------------------------------

    def _route(self, method: str, path: str) -> Route | None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) < 2 or parts[0] != "v2":
            return None
        resource, rest = parts[1], parts[2:]
        table: dict[tuple[str, str, int], tuple[str | None, Callable[..., tuple[int, dict]]]] = {
            ("GET", "payments", 0): ("ListPayments", self._list_payments),
            ("POST", "payments", 0): ("CreatePayment", self._create_payment),
            ("GET", "payments", 1): ("GetPayment", self._get_payment),
            ("POST", "payments", 2): ("", self._payment_action),
            ("GET", "refunds", 0): ("ListPaymentRefunds", self._list_refunds),
            ("POST", "refunds", 0): ("RefundPayment", self._refund_payment),
            ("GET", "refunds", 1): ("GetPaymentRefund", self._get_refund),
            ("GET", "locations", 0): (None, self._list_locations),
            ("GET", "locations", 1): (None, self._get_location),
        }
        if method == "POST" and resource == "payments" and rest == ["cancel"]:
            return "CancelPaymentByIdempotencyKey", self._cancel_by_key, {}
        hit = table.get((method, resource, len(rest)))
        if hit is None:
            return None
        operation, handler = hit
        params = {"id": rest[0]} if rest else {}
        if operation == "":  # POST /v2/payments/{id}/<action>
            action = rest[1]
            if action not in ("cancel", "complete"):
                return None
            operation = "CancelPayment" if action == "cancel" else "CompletePayment"
            params["action"] = action
        return operation, handler, params

    def _serve(self, handler: _Handler) -> None:
        """Everything about one HTTP request; called on the request's own thread."""
        with self._in_flight():
            method = handler.command
            raw = handler.read_body()
            parsed: Any = None
            bad_json = False
            if raw.strip():
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    bad_json = True
            headers = {k.lower(): v for k, v in handler.headers.items()}
            split = urlsplit(handler.path)
            with self._lock:
                self.requests.append((method, handler.path, parsed))
                self.request_headers.append(headers)
            route = self._route(method, split.path)
            operation = route[0] if route else None
            fault = self._take_fault(operation)

            sleep_first = fault is not None and fault.kind in ("delay", "timeout_no_charge")
            # (a stop() during the sleep abandons the request rather than charging late)
            if sleep_first and (self._stopping.wait(fault.delay) or fault.kind != "delay"):
                handler.drop()
                return
            if fault and fault.kind == "500":
                status, body = _fail("API_ERROR", "INTERNAL_SERVER_ERROR", "Internal server error.")
                reply = _Reply(status, body, operation)
            elif fault and fault.kind == "temporary_error":
                detail = NONCES["cnon:standin-temporary-error"].detail
                status, body = _fail("PAYMENT_METHOD_ERROR", "TEMPORARY_ERROR", detail)
                reply = _Reply(status, body, operation)
            else:
                reply = self._process(route, headers, parsed, bad_json, split.query)
            if reply.body is not None and reply.operation:
                self._check_response(reply.operation, reply.body)
            if fault and fault.kind == "drop_after_charge":
                handler.drop()
                return
            if fault and fault.kind == "delay_after_charge" and self._stopping.wait(fault.delay):
                handler.drop()
                return
            handler.send_json(reply.status, reply.body)

    def _process(
        self, route: Route | None, headers: dict, parsed: Any, bad_json: bool, query: str
    ) -> _Reply:
        operation = route[0] if route else None
        auth = headers.get("authorization")
        if auth is None:
            detail = (
                "Your request did not include an `Authorization` http header with an access token."
            )
            return _Reply(*_fail("AUTHENTICATION_ERROR", "UNAUTHORIZED", detail), operation)
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.access_token}".encode()):
            detail = "This request could not be authorized."
            return _Reply(*_fail("AUTHENTICATION_ERROR", "UNAUTHORIZED", detail), operation)
        if route is None:
            return _Reply(*_invalid("NOT_FOUND", "Resource not found."))
        if bad_json or (parsed is not None and not isinstance(parsed, dict)):
            detail = "The request body is not a JSON object."
            return _Reply(*_invalid("BAD_REQUEST", detail), operation)
        operation, func, params = route
        try:
            with self._lock:
                status, body = func(params=params, body=parsed, query=parse_qs(query))
        except Exception as exc:  # a stand-in bug: answer like Square's 500 and keep a note
            self.server_errors.append(f"{type(exc).__name__}: {exc}")
            status, body = _fail("API_ERROR", "INTERNAL_SERVER_ERROR", "Stand-in error.")
        return _Reply(status, body, operation)

    def _check_response(self, operation: str, body: dict) -> None:
        if self.validators is None or operation not in self.validators.response_schema:
            return
        schema = self.validators.response_schema[operation]
        for message in self.validators.check(schema, body):
            self.schema_errors.append(f"{operation} response: {message}")

    def check_schema(self, schema_name: str, instance: Any) -> list[str]:
        """Validate ``instance`` against a component schema; returns messages, records nothing."""
        if self.validators is None:
            raise RuntimeError(
                "schema validation is off (openapi-schema-validator or spec missing)"
            )
        return self.validators.check(schema_name, instance)

    def _request_error(self, schema: str, body: dict) -> tuple[int, dict] | None:
        if self.validators is None:
            return None
        return self.validators.request_error(schema, body)

    def _money_error(self, money: Any, field_name: str, currency: str) -> tuple[int, dict] | None:
        if not isinstance(money, dict):
            return _invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", field_name)
        for part in ("amount", "currency"):
            if part not in money:
                return _invalid(
                    "MISSING_REQUIRED_PARAMETER", "Field must be set", f"{field_name}.{part}"
                )
        if not isinstance(money["amount"], int) or isinstance(money["amount"], bool):
            return _invalid("EXPECTED_INTEGER", "Expected integer.", f"{field_name}.amount")
        if money["amount"] < 1:
            return _invalid(
                "VALUE_TOO_LOW", "Amount must be greater than 0.", f"{field_name}.amount"
            )
        if money["currency"] != currency:
            detail = f"Currency `{money['currency']}` does not match `{currency}`."
            return _invalid("INVALID_VALUE", detail, f"{field_name}.currency")
        return None

    # --- payments ------------------------------------------------------------------------------

    def _create_payment(self, *, params: dict, body: dict | None, query: dict):
        original = body or {}
        req = _strip_nulls(original)
        problem = self._request_error("CreatePaymentRequest", req)
        if problem:
            return problem
        key = req["idempotency_key"]
        prior = self._payment_keys.get(key)
        if prior is not None:
            if prior.body == original:
                return prior.status, copy.deepcopy(prior.response)
            return _invalid(
                "IDEMPOTENCY_KEY_REUSED",
                f"The idempotency key `{key}` has already been used with a different request.",
                "idempotency_key",
            )
        location_id = req.get("location_id", self.location_id)
        if location_id != self.location_id:  # GUESS: code, status and wording
            return _invalid("NOT_FOUND", f"Location `{location_id}` not found.", "location_id")
        problem = self._money_error(req.get("amount_money"), "amount_money", self.currency)
        if problem:
            return problem
        if "tip_money" in req:
            problem = self._money_error(req["tip_money"], "tip_money", self.currency)
            if problem:
                return problem
        autocomplete = req.get("autocomplete", True)
        if autocomplete and ("delay_duration" in req or "delay_action" in req):
            which = "delay_duration" if "delay_duration" in req else "delay_action"
            return _invalid(
                "INVALID_VALUE", f"`{which}` can only be set when `autocomplete` is false.", which
            )
        delay_duration = req.get("delay_duration", "PT168H")
        delay = _parse_duration(delay_duration)
        if delay is None:
            return _invalid("INVALID_VALUE", "Expected an RFC 3339 duration.", "delay_duration")
        delay_action = req.get("delay_action", "CANCEL")
        if delay_action not in ("CANCEL", "COMPLETE"):
            return _invalid(
                "INVALID_ENUM_VALUE",
                f"`{delay_action}` is not a valid enum value for `delay_action`.",
                "delay_action",
            )

        outcome = NONCES.get(req["source_id"])
        if outcome is None:
            return _invalid("NOT_FOUND", "Card nonce not found", "source_id")
        if outcome.code and not outcome.with_payment:
            status, response = _fail(outcome.category, outcome.code, outcome.detail)
            if outcome.consumes_key:
                self._payment_keys[key] = _KeyEntry(original, status, copy.deepcopy(response))
            return status, response

        payment = self._new_payment(req, outcome, autocomplete, delay, delay_duration, delay_action)
        self.payments[payment["id"]] = payment
        if outcome.code:
            err = _error(outcome.category, outcome.code, outcome.detail)
            payment["card_details"]["errors"] = [err]
            status, response = 400, {"errors": [err], "payment": copy.deepcopy(payment)}
        else:
            self.charges.append(copy.deepcopy(payment))
            status, response = 200, {"payment": copy.deepcopy(payment)}
        self._payment_keys[key] = _KeyEntry(
            original, status, copy.deepcopy(response), payment["id"]
        )
        return status, response

    def _new_payment(
        self,
        req: dict,
        outcome: _Outcome,
        autocomplete: bool,
        delay: timedelta,
        delay_duration: str,
        delay_action: str,
    ) -> dict:
        created = self._now()
        created_at = _fmt(created)
        pid = _square_id()
        amount = dict(req["amount_money"])
        tip = req.get("tip_money")
        total = {
            "amount": amount["amount"] + (tip["amount"] if tip else 0),
            "currency": self.currency,
        }
        status = "FAILED" if outcome.code else ("COMPLETED" if autocomplete else "APPROVED")
        year = created.year + 4
        if outcome.gift_card:
            card = {
                "card_brand": "SQUARE_GIFT_CARD",
                "last_4": "0000",
                "bin": "778332",
                "card_type": "DEBIT",
                "prepaid_type": "PREPAID",
            }
        else:
            card = {
                "card_brand": "VISA",
                "last_4": "1111",
                "exp_month": 11,
                "exp_year": year,
                "card_type": "CREDIT",
                "prepaid_type": "NOT_PREPAID",
                "bin": "411111",
            }
        card["fingerprint"] = "sq-1-" + _rand(64, _URLSAFE)
        descriptor = req.get("statement_description_identifier") or self.location_name
        timeline: dict[str, str] = {}
        if status != "FAILED":
            timeline["authorized_at"] = created_at
        if status == "COMPLETED":
            timeline["captured_at"] = created_at
        card_details: dict[str, Any] = {
            "status": _CARD_STATUS_FOR[status],
            "card": card,
            "entry_method": "KEYED",
            "cvv_status": outcome.cvv_status,
            "avs_status": outcome.avs_status,
            "auth_result_code": _rand(6),
            "statement_description": ("SQ *" + descriptor.upper())[:22],
            "card_payment_timeline": timeline,
        }
        payment: dict[str, Any] = {
            "id": pid,
            "created_at": created_at,
            "updated_at": created_at,
            "amount_money": amount,
            "total_money": total,
        }
        if tip:
            payment["tip_money"] = dict(tip)
        if "app_fee_money" in req:
            payment["app_fee_money"] = dict(req["app_fee_money"])
        if status != "FAILED":
            payment["approved_money"] = dict(total)
        payment.update(
            status=status,
            delay_duration=delay_duration,
            delay_action=delay_action,
            delayed_until=_fmt(created + delay),
            source_type="CARD",
            card_details=card_details,
            location_id=self.location_id,
            order_id=req.get("order_id") or _square_id(),
        )
        for echo in (
            "reference_id",
            "customer_id",
            "team_member_id",
            "buyer_email_address",
            "billing_address",
            "shipping_address",
            "note",
            "statement_description_identifier",
        ):
            if echo in req:
                payment[echo] = copy.deepcopy(req[echo])
        if status != "FAILED":
            risk = RISK_BY_AMOUNT.get(amount["amount"], "NORMAL")
            payment["risk_evaluation"] = {"created_at": created_at, "risk_level": risk}
        payment.update(
            receipt_number=pid[:4],
            receipt_url=f"https://squareup.com/receipt/preview/{pid}",
            application_details={
                "square_product": "ECOMMERCE_API",
                "application_id": self.application_id,
            },
            version_token=_version_token(),
        )
        return payment

    def _payment_or_404(self, payment_id: str) -> dict | tuple[int, dict]:
        payment = self.payments.get(payment_id)
        if payment is None:
            return _invalid("NOT_FOUND", f"Could not find payment with id: {payment_id}")
        return payment

    def _get_payment(self, *, params: dict, body: dict | None, query: dict):
        found = self._payment_or_404(params["id"])
        if isinstance(found, tuple):
            return found
        return 200, {"payment": copy.deepcopy(found)}

    def _set_status(self, payment: dict, status: str) -> None:
        payment["status"] = status
        details = payment.get("card_details")
        if details is not None:
            details["status"] = _CARD_STATUS_FOR.get(status, details.get("status"))
            timeline = details.setdefault("card_payment_timeline", {})
            stamp = self._stamp()
            if status == "COMPLETED":
                timeline["captured_at"] = stamp
            elif status == "CANCELED":
                timeline["voided_at"] = stamp
        self._touch(payment)

    def _void(self, payment: dict) -> None:
        self._set_status(payment, "CANCELED")

    def _cannot(self, payment: dict, verb: str) -> tuple[int, dict]:
        return _invalid(
            "BAD_REQUEST", f"Payment `{payment['id']}` is {payment['status']} and cannot be {verb}."
        )

    def _payment_action(self, *, params: dict, body: dict | None, query: dict):
        if params["action"] == "complete":
            problem = self._request_error("CompletePaymentRequest", _strip_nulls(body or {}))
            if problem:
                return problem
        found = self._payment_or_404(params["id"])
        if isinstance(found, tuple):
            return found
        payment = found
        if params["action"] == "cancel":
            if payment["status"] == "APPROVED":
                self._void(payment)
            elif payment["status"] != "CANCELED":
                return self._cannot(payment, "canceled")
        else:
            if payment["status"] == "APPROVED":
                self._set_status(payment, "COMPLETED")
            elif payment["status"] != "COMPLETED":
                return self._cannot(payment, "completed")
        return 200, {"payment": copy.deepcopy(payment)}

    def _cancel_by_key(self, *, params: dict, body: dict | None, query: dict):
        req = _strip_nulls(body or {})
        problem = self._request_error("CancelPaymentByIdempotencyKeyRequest", req)
        if problem:
            return problem
        entry = self._payment_keys.get(req["idempotency_key"])
        payment = self.payments.get(entry.object_id) if entry and entry.object_id else None
        if payment is None or payment["status"] in ("FAILED", "CANCELED"):
            return 200, {}
        if payment["status"] == "APPROVED":
            self._void(payment)
            del self._payment_keys[req["idempotency_key"]]  # GUESS: the key is free again
            return 200, {}
        if self.cancel_completed_by_key == "ok":  # GUESS (a switch): "no action", like no key
            return 200, {}
        return self._cannot(payment, "canceled")

    def _list(
        self, items: list[dict], query: dict, filters: dict[str, Callable[[dict, str], bool]]
    ):
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        begin = one("begin_time") or _fmt(datetime.now(UTC) - timedelta(days=365))
        end = one("end_time")
        chosen = [
            i for i in items if i["created_at"] >= begin and (end is None or i["created_at"] < end)
        ]
        for name, keep in filters.items():
            value = one(name)
            if value is not None:
                chosen = [i for i in chosen if keep(i, value)]
        chosen.sort(key=lambda i: i["created_at"], reverse=(one("sort_order") or "DESC") == "DESC")
        try:
            limit = max(1, min(100, int(one("limit") or 100)))
            start = int(one("cursor") or 0)
        except ValueError:
            return None
        page = chosen[start : start + limit]
        more = start + limit < len(chosen)
        return page, (str(start + limit) if more else None)

    def _list_payments(self, *, params: dict, body: dict | None, query: dict):
        def card(p: dict) -> dict:
            return (p.get("card_details") or {}).get("card") or {}

        listed = self._list(
            list(self.payments.values()),
            query,
            {
                "location_id": lambda p, v: p["location_id"] == v,
                "total": lambda p, v: str(p["total_money"]["amount"]) == v,
                "last_4": lambda p, v: card(p).get("last_4") == v,
                "card_brand": lambda p, v: card(p).get("card_brand") == v,
            },
        )
        if listed is None:
            return _invalid("INVALID_CURSOR", "Invalid cursor or limit.")
        page, cursor = listed
        out: dict[str, Any] = {"payments": copy.deepcopy(page)}
        if cursor:
            out["cursor"] = cursor
        return 200, out

    # --- refunds -------------------------------------------------------------------------------

    def _refundable(self, payment: dict) -> int:
        taken = sum(
            self.refunds[r]["amount_money"]["amount"]
            for r in payment.get("refund_ids", [])
            if self.refunds[r]["status"] not in ("FAILED", "REJECTED")
        )
        return payment["total_money"]["amount"] - taken

    def _recount_refunds(self, payment: dict) -> None:
        refunded = payment["total_money"]["amount"] - self._refundable(payment)
        payment["refunded_money"] = {
            "amount": refunded,
            "currency": payment["total_money"]["currency"],
        }

    def _refund_problem(self, payment: dict, amount_money: Any) -> tuple[int, dict] | None:
        if payment["status"] == "APPROVED":
            return _refund_error(
                "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION",
                "The payment must be completed before it can be refunded.",
            )
        if payment["status"] != "COMPLETED":
            return _refund_error(
                "PAYMENT_NOT_REFUNDABLE", f"Payment `{payment['id']}` is {payment['status']}."
            )
        problem = self._money_error(
            amount_money, "amount_money", payment["total_money"]["currency"]
        )
        if problem:
            return problem
        left = self._refundable(payment)
        if amount_money["amount"] > left:
            return _refund_error(
                "REFUND_AMOUNT_INVALID",
                f"The requested refund amount exceeds the amount available to refund ({left}).",
                "amount_money.amount",
            )
        return None

    def _new_refund(
        self, payment: dict, amount_money: dict, reason: str | None, extra: dict
    ) -> dict:
        stamp = self._stamp()
        refund: dict[str, Any] = {
            "id": f"{payment['id']}_{_rand(43)}",
            "status": "PENDING",
            "location_id": payment["location_id"],
            "destination_type": "CARD",
            "amount_money": dict(amount_money),
            "payment_id": payment["id"],
            "order_id": _square_id(),
            "created_at": stamp,
            "updated_at": stamp,
        }
        if reason:
            refund["reason"] = reason
        refund.update(extra)
        self.refunds[refund["id"]] = refund
        payment.setdefault("refund_ids", []).append(refund["id"])
        self._recount_refunds(payment)
        self._touch(payment)
        return refund

    def _refund_payment(self, *, params: dict, body: dict | None, query: dict):
        original = body or {}
        req = _strip_nulls(original)
        problem = self._request_error("RefundPaymentRequest", req)
        if problem:
            return problem
        key = req["idempotency_key"]
        if len(key) > 45:
            return _invalid(
                "VALUE_TOO_LONG", "Field must not be greater than 45 length", "idempotency_key"
            )
        prior = self._refund_keys.get(key)
        if prior is not None:
            if prior.body == original:
                return prior.status, copy.deepcopy(prior.response)
            return _invalid(
                "IDEMPOTENCY_KEY_REUSED",
                f"The idempotency key `{key}` has already been used with a different request.",
                "idempotency_key",
            )
        if "payment_id" not in req:
            return _invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", "payment_id")
        payment = self.payments.get(req["payment_id"])
        if payment is None:
            return _invalid(
                "NOT_FOUND", f"Could not find payment with id: {req['payment_id']}", "payment_id"
            )
        problem = self._refund_problem(payment, req["amount_money"])
        if problem:
            return problem
        extra = {k: copy.deepcopy(req[k]) for k in ("app_fee_money", "team_member_id") if k in req}
        refund = self._new_refund(payment, req["amount_money"], req.get("reason"), extra)
        response = {"refund": copy.deepcopy(refund)}
        self._refund_keys[key] = _KeyEntry(original, 200, copy.deepcopy(response), refund["id"])
        return 200, response

    def _get_refund(self, *, params: dict, body: dict | None, query: dict):
        refund = self.refunds.get(params["id"])
        if refund is None:
            return _invalid("NOT_FOUND", f"Could not find refund with id: {params['id']}")
        return 200, {"refund": copy.deepcopy(refund)}

    def _list_refunds(self, *, params: dict, body: dict | None, query: dict):
        listed = self._list(
            list(self.refunds.values()),
            query,
            {
                "location_id": lambda r, v: r["location_id"] == v,
                "status": lambda r, v: r["status"] == v,
                "source_type": lambda r, v: r.get("destination_type") == v,
            },
        )
        if listed is None:
            return _invalid("INVALID_CURSOR", "Invalid cursor or limit.")
        page, cursor = listed
        out: dict[str, Any] = {"refunds": copy.deepcopy(page)}
        if cursor:
            out["cursor"] = cursor
        return 200, out

    # --- locations (not in the subset spec: never validated) -----------------------------------

    def _get_location(self, *, params: dict, body: dict | None, query: dict):
        if params["id"] not in (self.location_id, "main"):
            return _invalid("NOT_FOUND", f"Location `{params['id']}` not found.")
        return 200, {"location": copy.deepcopy(self._location)}

    def _list_locations(self, *, params: dict, body: dict | None, query: dict):
        return 200, {"locations": [copy.deepcopy(self._location)]}

    # --- "changes made in Square's own dashboard" (no HTTP; for webhook tests) -----------------

    def update_payment(self, payment_id: str, **changes: Any) -> dict:
        """Change a payment as Square would behind the app's back; returns the new state.

        ``status=`` also moves ``card_details.status`` (and its timeline) along. Bumps
        ``updated_at`` and ``version_token``.
        """
        with self._lock:
            payment = self.payments[payment_id]
            status = changes.pop("status", None)
            payment.update(copy.deepcopy(changes))
            if status is not None:
                self._set_status(payment, status)
            else:
                self._touch(payment)
            return copy.deepcopy(payment)

    def create_dashboard_refund(
        self, payment_id: str, amount: int, reason: str | None = None
    ) -> dict:
        """A refund issued from the Square Dashboard (same rules as RefundPayment)."""
        with self._lock:
            payment = self.payments[payment_id]
            money = {"amount": amount, "currency": payment["total_money"]["currency"]}
            problem = self._refund_problem(payment, money)
            if problem:
                raise ValueError(problem[1]["errors"][0]["code"])
            return copy.deepcopy(self._new_refund(payment, money, reason, {}))

    def update_refund(self, refund_id: str, **changes: Any) -> dict:
        with self._lock:
            refund = self.refunds[refund_id]
            refund.update(copy.deepcopy(changes))
            self._touch(refund)
            payment = self.payments.get(refund.get("payment_id") or "")
            if payment is not None and "status" in changes:
                self._recount_refunds(payment)
            return copy.deepcopy(refund)

    def complete_refund(self, refund_id: str) -> dict:
        """Move a PENDING refund to COMPLETED (bumps updated_at), as the card network would."""
        return self.update_refund(refund_id, status="COMPLETED")

    # --- webhooks ------------------------------------------------------------------------------

    def webhook(
        self,
        event_type: str,
        obj: dict,
        *,
        signature_key: str,
        notification_url: str,
        event_id: str | None = None,
    ) -> tuple[str, str]:
        """A signed notification: (raw JSON body, ``x-square-hmacsha256-signature`` value)."""
        kind = event_type.split(".", 1)[0]
        if kind not in ("payment", "refund"):
            raise ValueError(f"only payment.* and refund.* events, not {event_type!r}")
        event = {
            "merchant_id": self.merchant_id,
            "type": event_type,
            "event_id": event_id or str(uuid.uuid4()),
            "created_at": self._stamp(),
            "data": {"type": kind, "id": obj["id"], "object": {kind: copy.deepcopy(obj)}},
        }
        body = json.dumps(event, separators=(",", ":"))
        schema = {
            "payment.created": "PaymentCreatedEvent",
            "payment.updated": "PaymentUpdatedEvent",
            "refund.created": "RefundCreatedEvent",
            "refund.updated": "RefundUpdatedEvent",
        }.get(event_type)
        if schema and self.validators is not None:
            for message in self.validators.check(schema, event):
                self.schema_errors.append(f"{event_type} webhook: {message}")
        return body, sign_webhook(
            body, signature_key=signature_key, notification_url=notification_url
        )


# --- HTTP plumbing -----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, standin: SquareStandin):
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock keep-alive threads still waiting for a next request."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):  # the client went away; nothing to report
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Square
    server_version = "SquareStandin/1.0"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def do_GET(self) -> None:
        self.server.standin._serve(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode("utf-8") if body is not None else b""
        with contextlib.suppress(OSError):  # a client that timed out has hung up
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def drop(self) -> None:
        """Close the connection without a single response byte."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin.verbose:
            super().log_message(format, *args)


# --- standalone --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m payapp.devtools.square_standin",
        description="Serve a local Square stand-in (Payments, Refunds, Locations) until Ctrl+C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="standin-token", help="the access token to accept")
    parser.add_argument("--location", default="LSTANDIN1", help="the one location id")
    parser.add_argument("--currency", default="USD")
    parser.add_argument("--location-name", default="Stand-in Dental")
    parser.add_argument("--spec", default=None, help="OpenAPI subset to validate responses with")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument(
        "--cancel-completed-by-key",
        choices=CANCEL_COMPLETED_ANSWERS,
        default="error",
        help="answer to cancel-by-idempotency-key for a COMPLETED payment: 400 (error) or 200 {}",
    )
    args = parser.parse_args(argv)
    standin = SquareStandin(
        access_token=args.token,
        location_id=args.location,
        currency=args.currency,
        location_name=args.location_name,
        spec_path=args.spec,
        host=args.host,
        port=args.port,
        verbose=not args.quiet,
        cancel_completed_by_key=args.cancel_completed_by_key,
    ).start()
    print(standin.base_url, flush=True)
    print(
        f"square stand-in: token={args.token} location={args.location} currency={args.currency}; "
        "Ctrl+C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
        for message in standin.schema_errors:
            print(f"schema error: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
