"""A local HTTP server that speaks Square's Payments, Refunds and Locations wire format.

Point the real SDK at it::

    with SquareStandin() as standin:
        client = Square(token=standin.access_token, base_url=standin.base_url, version="2026-09-16")
        client.payments.create(source_id="cnon:card-nonce-ok", idempotency_key="k1",
                               amount_money={"amount": 1500, "currency": "USD"})

or run it for local development: ``python -m tests.support.square_standin --port 8765``.

Standard library only for serving (one thread per request). Every JSON response of the nine
operations in ``tests/square/payments-openapi-subset.json`` is checked against the operation's
declared response schema with ``openapi-schema-validator`` (when installed); failures are listed
in ``schema_errors`` instead of being raised inside the server.

Modules: ``server`` (HTTP, routing, authorization, the ``SquareStandin`` class), ``payments``,
``refunds``, ``webhooks`` (signing), ``faults``, ``schema`` (the OpenAPI checks), ``state`` (keys,
clock, paging), ``wire`` (ids, timestamps, error bodies); ``__main__`` runs it from the shell.

Where the behaviour comes from
------------------------------
DOCUMENTED (Square's API reference and its OpenAPI schema, tests/square/): paths and bodies; the
sandbox nonces and their error codes (Square's sandbox test values; codes confirmed by third-
party test suites); declines answer with both ``errors`` and a FAILED ``payment``; the error
category of every code (the spec's ``ErrorCode`` ``x-enum-elements``); idempotency (same key +
same body replays, different body -> IDEMPOTENCY_KEY_REUSED); cancel voids only APPROVED
payments; cancel by idempotency key succeeds silently when nothing matches (its answer for a
COMPLETED payment is not documented: a constructor switch, see GUESSES); refunds of an APPROVED
payment -> REFUND_ERROR_PAYMENT_NEEDS_COMPLETION; refund over the remaining amount ->
REFUND_AMOUNT_INVALID; ``delay_duration`` only with ``autocomplete`` false, default P7D for
card-not-present; the ``main`` location alias; the webhook envelope and its HMAC-SHA256
signature (Square's webhook docs).

THIRD-PARTY evidence (forum/issue threads, not contract): an unknown nonce answers HTTP 404
NOT_FOUND "Card nonce not found" (square/in-app-payments-flutter-plugin#66,
square/react-square-payment-form#32); decline details read ``Authorization error: '<CODE>'``;
CARD_TOKEN_USED's detail "Card nonce already used; please request new nonce."; the v2 API answers
card declines with HTTP 400; MISSING_REQUIRED_PARAMETER's detail "Field must be set".

GUESSES (no source found; see ``GUESSES`` below, which the tests and the closing note quote):
"""

from __future__ import annotations

from .faults import FAULTABLE_OPERATIONS, FAULTS
from .payments import CANCEL_COMPLETED_ANSWERS, NONCES, RISK_BY_AMOUNT
from .schema import DEFAULT_SPEC_PATH, REPO_ROOT, SpecValidators, load_spec_validators
from .server import SquareStandin
from .webhooks import sign_webhook

__all__ = [
    "CANCEL_COMPLETED_ANSWERS",
    "DEFAULT_SPEC_PATH",
    "FAULTABLE_OPERATIONS",
    "FAULTS",
    "GUESSES",
    "NONCES",
    "REPO_ROOT",
    "RISK_BY_AMOUNT",
    "SpecValidators",
    "SquareStandin",
    "load_spec_validators",
    "sign_webhook",
]

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
    "JSON null in a request is treated as an absent field (Square's SDK notes only say the SDK "
    "sends it).",
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
    "payapp's invented demo wallet nonces cnon:demo-apple-pay-ok and cnon:demo-google-pay-ok "
    "approve like cnon:card-nonce-ok; cnon:demo-wallet-declined declines like "
    "cnon:card-nonce-declined (a wallet token is a card nonce to CreatePayment).",
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
