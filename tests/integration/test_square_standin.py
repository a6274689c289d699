"""The real Square SDK against the local Square stand-in, over HTTP, with no test doubles.

Every response the stand-in sends in these tests is checked against Square's published OpenAPI
schema (the fixture fails a test whose responses drifted from it), so what the app's tests see
from the stand-in is at least Square-shaped.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest
from square import Square
from square.core.api_error import ApiError
from square.types.payment_created_event import PaymentCreatedEvent
from square.types.payment_updated_event import PaymentUpdatedEvent
from square.types.refund_created_event import RefundCreatedEvent
from square.types.refund_updated_event import RefundUpdatedEvent
from square.utils.webhooks_helper import verify_signature

from tests.support.square_standin import GUESSES, REPO_ROOT, SquareStandin

from ..support.servers import free_port

pytestmark = pytest.mark.integration

VERSION = "2026-09-16"
TOKEN = "sandbox-token-for-tests"
LOCATION = "LCLINIC42"
NO_RETRY = {"max_retries": 0}
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HOOK_KEY = "whsec-test-key"
HOOK_URL = "https://pay.clinic.example.com/square/webhook"


def usd(cents: int) -> dict:
    return {"amount": cents, "currency": "USD"}


_open_clients: list[httpx.Client] = []


@pytest.fixture
def standin() -> Iterator[SquareStandin]:
    with SquareStandin(access_token=TOKEN, location_id=LOCATION) as server:
        assert server.validating, "openapi-schema-validator must be installed for these tests"
        try:
            yield server
        finally:
            while _open_clients:
                _open_clients.pop().close()
        assert server.wait_until_idle(timeout=5)
        assert server.schema_errors == []
        assert server.server_errors == []


def make_client(standin: SquareStandin, *, token: str | None = TOKEN, timeout: float = 5) -> Square:
    """The real SDK client on its own httpx pool (closed when the test ends)."""
    http = httpx.Client(timeout=timeout)
    _open_clients.append(http)
    return Square(
        token=token, base_url=standin.base_url, version=VERSION, timeout=timeout, httpx_client=http
    )


@pytest.fixture
def client(standin: SquareStandin) -> Square:
    return make_client(standin)


def pay(client: Square, *, key: str | None = None, source: str = "cnon:card-nonce-ok", **kw):
    kw.setdefault("amount_money", usd(1500))
    kw.setdefault("location_id", LOCATION)
    kw.setdefault("request_options", NO_RETRY)
    return client.payments.create(source_id=source, idempotency_key=key or str(uuid.uuid4()), **kw)


def api_error(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def refund(client: Square, payment_id: str, cents: int, *, key: str | None = None, **kw):
    return client.refunds.refund_payment(
        idempotency_key=key or str(uuid.uuid4()),
        amount_money=usd(cents),
        payment_id=payment_id,
        request_options=NO_RETRY,
        **kw,
    )


def posts_to(standin: SquareStandin, path: str) -> int:
    return sum(1 for method, p, _ in standin.requests if method == "POST" and p == path)


# --- approvals ---------------------------------------------------------------------------------


def test_a_card_payment_completes_and_looks_like_squares(standin, client):
    r = pay(
        client,
        reference_id="link-42",
        note="Invoice 42",
        buyer_email_address="patient@example.com",
        billing_address={"postal_code": "94103", "country": "US"},
    )
    p = r.payment
    assert p.status == "COMPLETED"
    assert p.source_type == "CARD"
    assert p.amount_money.amount == p.total_money.amount == p.approved_money.amount == 1500
    assert p.card_details.status == "CAPTURED"
    assert (p.card_details.card.card_brand, p.card_details.card.last4) == ("VISA", "1111")
    assert (p.card_details.cvv_status, p.card_details.avs_status) == (
        "CVV_ACCEPTED",
        "AVS_ACCEPTED",
    )
    assert p.card_details.card_payment_timeline.captured_at == p.created_at
    assert RFC3339_MS.match(p.created_at) and p.updated_at == p.created_at
    assert (p.location_id, p.reference_id, p.note) == (LOCATION, "link-42", "Invoice 42")
    assert p.buyer_email_address == "patient@example.com"
    assert p.billing_address.postal_code == "94103"
    assert p.receipt_number == p.id[:4] and p.receipt_url.endswith(p.id)
    assert p.application_details.square_product == "ECOMMERCE_API"
    assert p.risk_evaluation.risk_level == "NORMAL"
    assert p.order_id and p.version_token
    assert [c["id"] for c in standin.charges] == [p.id]
    assert standin.payments[p.id]["status"] == "COMPLETED"
    method, path, body = standin.requests[-1]
    assert (method, path, body["idempotency_key"]) == (
        "POST",
        "/v2/payments",
        body["idempotency_key"],
    )
    assert standin.square_versions == [VERSION]
    assert standin.request_headers[-1]["authorization"] == f"Bearer {TOKEN}"


def test_a_payment_without_autocomplete_is_approved_and_can_then_be_completed(standin, client):
    approved = pay(client, autocomplete=False).payment
    assert approved.status == "APPROVED"
    assert approved.card_details.status == "AUTHORIZED"
    assert (approved.delay_action, approved.delay_duration) == ("CANCEL", "PT168H")
    assert approved.delayed_until > approved.created_at
    assert approved.card_details.card_payment_timeline.captured_at is None

    completed = client.payments.complete(approved.id).payment
    assert completed.status == "COMPLETED"
    assert completed.card_details.status == "CAPTURED"
    assert completed.updated_at > approved.updated_at
    assert completed.version_token != approved.version_token
    assert client.payments.get(approved.id).payment.status == "COMPLETED"
    assert len(standin.charges) == 1


def test_a_delayed_capture_keeps_the_requested_delay(client):
    p = pay(client, autocomplete=False, delay_duration="PT2H", delay_action="COMPLETE").payment
    assert (p.delay_duration, p.delay_action) == ("PT2H", "COMPLETE")


def test_a_gift_card_nonce_pays_with_a_square_gift_card(client):
    p = pay(client, source="cnon:gift-card-nonce-ok").payment
    assert p.status == "COMPLETED"
    assert p.card_details.card.card_brand == "SQUARE_GIFT_CARD"


def test_an_explicit_json_null_is_treated_as_an_absent_field(standin, client):
    p = pay(client, note=None).payment
    assert standin.requests[-1][2]["note"] is None
    assert p.note is None and p.status == "COMPLETED"


# --- declines and request errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("nonce", "code", "detail_field", "detail_value"),
    [
        ("cnon:card-nonce-declined", "GENERIC_DECLINE", None, None),
        ("cnon:card-nonce-rejected-cvv", "CVV_FAILURE", "cvv_status", "CVV_REJECTED"),
        (
            "cnon:card-nonce-rejected-postalcode",
            "ADDRESS_VERIFICATION_FAILURE",
            "avs_status",
            "AVS_REJECTED",
        ),
        ("cnon:card-nonce-rejected-expiration", "INVALID_EXPIRATION", None, None),
        ("cnon:gift-card-nonce-insufficient-funds", "INSUFFICIENT_FUNDS", None, None),
        (
            "cnon:standin-verification-required",
            "CARD_DECLINED_VERIFICATION_REQUIRED",
            None,
            None,
        ),
    ],
)
def test_a_declined_card_raises_with_the_code_and_a_failed_payment(
    standin, client, nonce, code, detail_field, detail_value
):
    e = api_error(pay, client, source=nonce)
    assert e.status_code == 400
    assert (e.errors[0].category, e.errors[0].code) == ("PAYMENT_METHOD_ERROR", code)
    failed = e.body["payment"]
    assert failed["status"] == "FAILED"
    assert failed["card_details"]["status"] == "FAILED"
    assert failed["card_details"]["errors"][0]["code"] == code
    if detail_field:
        assert failed["card_details"][detail_field] == detail_value
    assert standin.payments[failed["id"]]["status"] == "FAILED"
    assert standin.charges == []


@pytest.mark.parametrize(
    ("nonce", "code"),
    [
        ("cnon:card-nonce-already-used", "CARD_TOKEN_USED"),
        ("cnon:standin-token-expired", "CARD_TOKEN_EXPIRED"),
        ("cnon:standin-invalid-card-data", "INVALID_CARD_DATA"),
    ],
)
def test_a_spent_or_bad_nonce_is_an_invalid_request_without_a_payment(standin, client, nonce, code):
    e = api_error(pay, client, source=nonce)
    assert (e.status_code, e.errors[0].category, e.errors[0].code) == (
        400,
        "INVALID_REQUEST_ERROR",
        code,
    )
    assert "payment" not in e.body
    assert standin.payments == {}


def test_an_unknown_nonce_is_not_found(client):
    e = api_error(pay, client, source="cnon:CBASEproductionNonce")
    assert (e.status_code, e.errors[0].code, e.errors[0].field) == (404, "NOT_FOUND", "source_id")


def test_a_temporary_error_nonce_can_be_retried_with_the_same_key(standin, client):
    e = api_error(pay, client, key="tmp-1", source="cnon:standin-temporary-error")
    assert (e.errors[0].category, e.errors[0].code) == ("PAYMENT_METHOD_ERROR", "TEMPORARY_ERROR")
    assert pay(client, key="tmp-1").payment.status == "COMPLETED"


def test_a_wrong_token_is_unauthorized(standin):
    e = api_error(pay, make_client(standin, token="EAAA-wrong"))
    assert (e.status_code, e.errors[0].category, e.errors[0].code) == (
        401,
        "AUTHENTICATION_ERROR",
        "UNAUTHORIZED",
    )
    assert standin.payments == {}


def test_a_missing_token_is_unauthorized(standin):
    e = api_error(make_client(standin, token=None).payments.get, "anything")
    assert (e.status_code, e.errors[0].code) == (401, "UNAUTHORIZED")
    assert "authorization" not in standin.request_headers[-1]


def test_a_payment_for_another_location_is_refused(standin, client):
    e = api_error(pay, client, location_id="LSOMEONE-ELSE")
    assert (e.errors[0].code, e.errors[0].field) == ("NOT_FOUND", "location_id")
    assert "LSOMEONE-ELSE" in e.errors[0].detail
    assert standin.payments == {}


def test_a_payment_in_another_currency_is_refused(client):
    e = api_error(pay, client, amount_money={"amount": 1500, "currency": "CAD"})
    assert (e.status_code, e.errors[0].code, e.errors[0].field) == (
        400,
        "INVALID_VALUE",
        "amount_money.currency",
    )


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"reference_id": "r" * 41}, "VALUE_TOO_LONG", "reference_id"),
        ({"note": "n" * 501}, "VALUE_TOO_LONG", "note"),
        ({"key": "k" * 46}, "VALUE_TOO_LONG", "idempotency_key"),
        ({"amount_money": usd(0)}, "VALUE_TOO_LOW", "amount_money.amount"),
        (
            {"amount_money": {"currency": "USD"}},
            "MISSING_REQUIRED_PARAMETER",
            "amount_money.amount",
        ),
        ({"amount_money": {"amount": 5, "currency": "XYZ"}}, "INVALID_ENUM_VALUE", None),
        ({"delay_duration": "PT1H"}, "INVALID_VALUE", "delay_duration"),
    ],
)
def test_a_malformed_payment_request_is_refused_with_the_field(
    standin, client, kwargs, code, field
):
    e = api_error(pay, client, **kwargs)
    assert (e.status_code, e.errors[0].category, e.errors[0].code) == (
        400,
        "INVALID_REQUEST_ERROR",
        code,
    )
    assert e.errors[0].field == (field or "amount_money.currency")
    assert standin.payments == {}


def test_a_missing_amount_is_a_missing_parameter(client):
    e = api_error(
        client.payments.create,
        source_id="cnon:card-nonce-ok",
        idempotency_key="k-no-amount",
        request_options=NO_RETRY,
    )
    assert (e.errors[0].code, e.errors[0].field) == ("MISSING_REQUIRED_PARAMETER", "amount_money")


# --- idempotency -------------------------------------------------------------------------------


def test_retrying_with_the_same_key_and_body_replays_the_first_payment(standin, client):
    first = pay(client, key="pay-1", reference_id="link-1").payment
    again = pay(client, key="pay-1", reference_id="link-1").payment
    assert again.id == first.id
    assert again.updated_at == first.updated_at
    assert len(standin.charges) == 1
    assert len(standin.payments) == 1


def test_retrying_a_declined_key_replays_the_same_decline(standin, client):
    first = api_error(pay, client, key="pay-d", source="cnon:card-nonce-declined")
    again = api_error(pay, client, key="pay-d", source="cnon:card-nonce-declined")
    assert again.status_code == 400
    assert again.body == first.body
    assert len(standin.payments) == 1


def test_reusing_a_key_with_a_different_body_is_refused(standin, client):
    pay(client, key="pay-2", amount_money=usd(1500))
    e = api_error(pay, client, key="pay-2", amount_money=usd(1600))
    assert (e.status_code, e.errors[0].category, e.errors[0].code) == (
        400,
        "INVALID_REQUEST_ERROR",
        "IDEMPOTENCY_KEY_REUSED",
    )
    assert len(standin.charges) == 1


# --- get, cancel, complete ---------------------------------------------------------------------


def test_getting_a_payment_returns_its_current_state(client):
    p = pay(client).payment
    got = client.payments.get(p.id).payment
    assert (got.id, got.status, got.version_token) == (p.id, "COMPLETED", p.version_token)


def test_getting_an_unknown_payment_is_not_found(client):
    e = api_error(client.payments.get, "nope", request_options=NO_RETRY)
    assert (e.status_code, e.errors[0].category, e.errors[0].code) == (
        404,
        "INVALID_REQUEST_ERROR",
        "NOT_FOUND",
    )


def test_canceling_an_approved_payment_voids_it(standin, client):
    p = pay(client, autocomplete=False).payment
    canceled = client.payments.cancel(p.id).payment
    assert (canceled.status, canceled.card_details.status) == ("CANCELED", "VOIDED")
    assert canceled.card_details.card_payment_timeline.voided_at
    assert client.payments.cancel(p.id).payment.status == "CANCELED"
    e = api_error(client.payments.complete, p.id, request_options=NO_RETRY)
    assert e.errors[0].code == "BAD_REQUEST"


def test_canceling_a_completed_payment_is_refused(standin, client):
    p = pay(client).payment
    e = api_error(client.payments.cancel, p.id, request_options=NO_RETRY)
    assert (e.status_code, e.errors[0].code) == (400, "BAD_REQUEST")
    assert standin.payments[p.id]["status"] == "COMPLETED"


def test_completing_twice_returns_the_completed_payment(client):
    p = pay(client, autocomplete=False).payment
    client.payments.complete(p.id)
    assert client.payments.complete(p.id).payment.status == "COMPLETED"


def test_cancel_by_idempotency_key_with_nothing_to_cancel_succeeds(standin, client):
    r = client.payments.cancel_by_idempotency_key(idempotency_key="never-used")
    assert r.errors is None
    assert standin.requests[-1] == (
        "POST",
        "/v2/payments/cancel",
        {"idempotency_key": "never-used"},
    )


def test_cancel_by_idempotency_key_voids_an_approved_payment_and_frees_the_key(standin, client):
    p = pay(client, key="pay-3", autocomplete=False).payment
    client.payments.cancel_by_idempotency_key(idempotency_key="pay-3")
    assert standin.payments[p.id]["status"] == "CANCELED"
    assert standin.payments[p.id]["card_details"]["status"] == "VOIDED"
    # A GUESS (see GUESSES): after the cancel the same request may be sent again and charges anew.
    again = pay(client, key="pay-3", autocomplete=False).payment
    assert again.id != p.id and again.status == "APPROVED"


def test_cancel_by_idempotency_key_of_a_completed_payment_is_refused(standin, client):
    p = pay(client, key="pay-4").payment
    e = api_error(client.payments.cancel_by_idempotency_key, idempotency_key="pay-4")
    assert (e.status_code, e.errors[0].code) == (400, "BAD_REQUEST")
    assert standin.payments[p.id]["status"] == "COMPLETED"


def test_cancel_by_idempotency_key_of_a_completed_payment_can_answer_200_with_no_action():
    # Square does not document this answer; the switch lets payapp be tested under both.
    with SquareStandin(
        access_token=TOKEN, location_id=LOCATION, cancel_completed_by_key="ok"
    ) as server:
        client = make_client(server)
        p = pay(client, key="pay-4b").payment
        r = client.payments.cancel_by_idempotency_key(idempotency_key="pay-4b")
        assert r.errors is None
        assert server.payments[p.id]["status"] == "COMPLETED" and len(server.charges) == 1
        assert server.schema_errors == []
    with pytest.raises(ValueError):
        SquareStandin(cancel_completed_by_key="maybe")


def test_cancel_by_idempotency_key_of_a_declined_attempt_succeeds(standin, client):
    api_error(pay, client, key="pay-5", source="cnon:card-nonce-declined")
    client.payments.cancel_by_idempotency_key(idempotency_key="pay-5")


# --- refunds -----------------------------------------------------------------------------------


def test_a_full_refund_is_pending_until_the_network_completes_it(standin, client):
    p = pay(client, amount_money=usd(2500)).payment
    r = refund(client, p.id, 2500, reason="duplicate visit").refund
    assert (r.status, r.payment_id, r.location_id, r.reason) == (
        "PENDING",
        p.id,
        LOCATION,
        "duplicate visit",
    )
    assert r.amount_money.amount == 2500 and r.id.startswith(p.id + "_")
    assert RFC3339_MS.match(r.created_at)
    paid = client.payments.get(p.id).payment
    assert paid.refunded_money.amount == 2500 and paid.refund_ids == [r.id]
    assert paid.updated_at > p.updated_at

    done = standin.complete_refund(r.id)
    got = client.refunds.get(r.id).refund
    assert got.status == done["status"] == "COMPLETED"
    assert got.updated_at > r.updated_at


def test_a_partial_refund_leaves_the_rest_refundable(client):
    p = pay(client, amount_money=usd(2500)).payment
    refund(client, p.id, 1000)
    assert client.payments.get(p.id).payment.refunded_money.amount == 1000
    refund(client, p.id, 1500)
    paid = client.payments.get(p.id).payment
    assert paid.refunded_money.amount == 2500 and len(paid.refund_ids) == 2


def test_refunding_more_than_is_left_is_refused(standin, client):
    p = pay(client, amount_money=usd(2500)).payment
    e = api_error(refund, client, p.id, 2501)
    assert (e.status_code, e.errors[0].category, e.errors[0].code) == (
        400,
        "REFUND_ERROR",
        "REFUND_AMOUNT_INVALID",
    )
    refund(client, p.id, 2000)
    e = api_error(refund, client, p.id, 501)
    assert e.errors[0].code == "REFUND_AMOUNT_INVALID"
    assert len(standin.refunds) == 1


def test_a_retried_refund_with_the_same_key_refunds_once(standin, client):
    p = pay(client, amount_money=usd(2500)).payment
    first = refund(client, p.id, 1000, key="ref-1").refund
    again = refund(client, p.id, 1000, key="ref-1").refund
    assert again.id == first.id
    assert len(standin.refunds) == 1
    assert client.payments.get(p.id).payment.refunded_money.amount == 1000
    e = api_error(refund, client, p.id, 900, key="ref-1")
    assert e.errors[0].code == "IDEMPOTENCY_KEY_REUSED"


def test_refunding_an_unknown_payment_is_not_found(client):
    e = api_error(refund, client, "no-such-payment", 100)
    assert (e.status_code, e.errors[0].code, e.errors[0].field) == (404, "NOT_FOUND", "payment_id")


def test_refunding_an_approved_payment_needs_completion_first(client):
    p = pay(client, autocomplete=False).payment
    e = api_error(refund, client, p.id, 100)
    assert (e.errors[0].category, e.errors[0].code) == (
        "REFUND_ERROR",
        "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION",
    )


def test_a_refund_in_another_currency_is_refused(client):
    p = pay(client).payment
    e = api_error(
        client.refunds.refund_payment,
        idempotency_key="ref-cad",
        amount_money={"amount": 100, "currency": "CAD"},
        payment_id=p.id,
        request_options=NO_RETRY,
    )
    assert (e.errors[0].code, e.errors[0].field) == ("INVALID_VALUE", "amount_money.currency")


def test_getting_an_unknown_refund_is_not_found(client):
    e = api_error(client.refunds.get, "nope", request_options=NO_RETRY)
    assert (e.status_code, e.errors[0].code) == (404, "NOT_FOUND")


# --- faults ------------------------------------------------------------------------------------


def test_a_slow_answer_times_out_but_the_charge_happens_and_a_retry_replays_it(standin):
    standin.inject("delay", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        pay(make_client(standin, timeout=0.3), key="slow-1")
    assert standin.wait_until_idle(timeout=5)
    assert len(standin.charges) == 1
    again = pay(make_client(standin), key="slow-1").payment
    assert again.id == standin.charges[0]["id"]
    assert len(standin.charges) == 1


def test_a_timeout_without_a_charge_leaves_the_key_unused(standin):
    standin.inject("timeout_no_charge", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        pay(make_client(standin, timeout=0.3), key="lost-1")
    assert standin.wait_until_idle(timeout=5)
    assert standin.charges == [] and standin.payments == {}
    p = pay(make_client(standin), key="lost-1").payment
    assert p.status == "COMPLETED" and len(standin.charges) == 1


def test_a_timed_out_approval_can_be_voided_by_its_idempotency_key(standin):
    standin.inject("delay_after_charge", delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        pay(make_client(standin, timeout=0.3), key="slow-2", autocomplete=False)
    (charged,) = standin.charges  # charged before the (late) answer
    make_client(standin).payments.cancel_by_idempotency_key(idempotency_key="slow-2")
    assert standin.payments[charged["id"]]["status"] == "CANCELED"


def test_a_dropped_connection_after_the_charge_is_a_transport_error(standin, client):
    standin.inject("drop_after_charge")
    with pytest.raises(httpx.TransportError):
        pay(client, key="drop-1")
    assert len(standin.charges) == 1
    again = pay(client, key="drop-1").payment
    assert again.id == standin.charges[0]["id"]
    assert len(standin.charges) == 1


def test_server_errors_survive_the_sdks_retries_as_an_api_error(standin, client):
    standin.inject("500", times=3)
    e = api_error(pay, client, request_options=None)  # the SDK's default: 2 retries
    assert (e.status_code, e.errors[0].category, e.errors[0].code) == (
        500,
        "API_ERROR",
        "INTERNAL_SERVER_ERROR",
    )
    assert posts_to(standin, "/v2/payments") == 3
    assert standin.charges == []


def test_one_server_error_is_absorbed_by_the_sdks_retry_with_the_same_key(standin, client):
    standin.inject("500", times=1)
    p = pay(client, request_options=None).payment
    assert p.status == "COMPLETED"
    bodies = [body for method, path, body in standin.requests if path == "/v2/payments"]
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert len(standin.charges) == 1


def test_a_temporary_error_fault_does_not_use_up_the_key(standin, client):
    standin.inject("temporary_error")
    e = api_error(pay, client, key="tmp-2")
    assert e.errors[0].code == "TEMPORARY_ERROR"
    assert pay(client, key="tmp-2").payment.status == "COMPLETED"


def test_faults_apply_to_refunds_too(standin, client):
    p = pay(client).payment
    standin.inject("drop_after_charge", operation="RefundPayment")
    with pytest.raises(httpx.TransportError):
        refund(client, p.id, 500, key="ref-drop")
    (made,) = standin.refunds
    assert refund(client, p.id, 500, key="ref-drop").refund.id == made


def test_faults_run_out_and_can_be_cleared(standin, client):
    with pytest.raises(ValueError):
        standin.inject("explode")
    standin.inject("500", times=5)
    standin.clear_faults()
    assert pay(client).payment.status == "COMPLETED"
    standin.inject("500", times=1)
    api_error(pay, client)
    assert pay(client).payment.status == "COMPLETED"


# --- lists and locations -----------------------------------------------------------------------


def test_payments_and_refunds_can_be_listed_newest_first_across_pages(client):
    first = pay(client).payment
    second = pay(client).payment
    listed = [p.id for p in client.payments.list(location_id=LOCATION, limit=1)]
    assert listed == [second.id, first.id]
    r = refund(client, first.id, 100).refund
    assert [x.id for x in client.refunds.list(status="PENDING")] == [r.id]


def test_the_location_is_active_and_takes_cards(client):
    loc = client.locations.get(LOCATION).location
    assert (loc.id, loc.status, loc.currency, loc.country) == (LOCATION, "ACTIVE", "USD", "US")
    assert "CREDIT_CARD_PROCESSING" in loc.capabilities
    assert loc.name == loc.business_name == "Stand-in Dental"
    assert client.locations.get("main").location.id == LOCATION
    assert [x.id for x in client.locations.list().locations] == [LOCATION]
    e = api_error(client.locations.get, "LOTHER", request_options=NO_RETRY)
    assert (e.status_code, e.errors[0].code) == (404, "NOT_FOUND")


def test_unknown_routes_and_broken_json_are_refused(standin):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=standin.base_url, headers=auth, timeout=5) as http:
        missing = http.get("/v2/customers")
        assert missing.status_code == 404
        assert missing.json()["errors"][0]["code"] == "NOT_FOUND"
        broken = http.post("/v2/payments", content=b"{not json", headers={"content-type": "x"})
        assert broken.status_code == 400
        assert broken.json()["errors"][0]["code"] == "BAD_REQUEST"
        assert standin.requests[-1] == ("POST", "/v2/payments", None)


# --- webhooks ----------------------------------------------------------------------------------


def signed_ok(body: str, signature: str, url: str = HOOK_URL) -> bool:
    return verify_signature(
        request_body=body, signature_header=signature, signature_key=HOOK_KEY, notification_url=url
    )


def test_payment_webhooks_are_signed_like_squares_and_parse_with_the_sdk(standin, client):
    p = pay(client, autocomplete=False).payment
    body, sig = standin.webhook(
        "payment.created", standin.payments[p.id], signature_key=HOOK_KEY, notification_url=HOOK_URL
    )
    assert signed_ok(body, sig)
    assert not signed_ok(body, sig, HOOK_URL + "/")
    assert not signed_ok(body + " ", sig)
    created = PaymentCreatedEvent.model_validate(json.loads(body))
    assert (created.type, created.data.type, created.data.id) == (
        "payment.created",
        "payment",
        p.id,
    )

    changed = standin.update_payment(p.id, status="CANCELED")  # voided in the dashboard
    assert changed["card_details"]["status"] == "VOIDED"
    assert changed["updated_at"] > p.updated_at and changed["version_token"] != p.version_token
    body, sig = standin.webhook(
        "payment.updated",
        changed,
        signature_key=HOOK_KEY,
        notification_url=HOOK_URL,
        event_id="evt-1",
    )
    assert signed_ok(body, sig)
    event = PaymentUpdatedEvent.model_validate(json.loads(body))
    assert (event.event_id, event.merchant_id) == ("evt-1", standin.merchant_id)
    assert event.data.object.payment.status == "CANCELED"
    assert RFC3339_MS.match(event.created_at)
    assert standin.check_schema("PaymentUpdatedEvent", json.loads(body)) == []
    assert client.payments.get(p.id).payment.status == "CANCELED"


def test_refund_webhooks_follow_a_dashboard_refund(standin, client):
    p = pay(client, amount_money=usd(2000)).payment
    made = standin.create_dashboard_refund(p.id, 700)
    assert standin.payments[p.id]["refunded_money"]["amount"] == 700
    body, sig = standin.webhook(
        "refund.created", made, signature_key=HOOK_KEY, notification_url=HOOK_URL
    )
    assert signed_ok(body, sig)
    created = RefundCreatedEvent.model_validate(json.loads(body))
    assert created.data.object.refund.status == "PENDING"
    assert created.data.object.refund.payment_id == p.id

    done = standin.complete_refund(made["id"])
    body, sig = standin.webhook(
        "refund.updated", done, signature_key=HOOK_KEY, notification_url=HOOK_URL
    )
    updated = RefundUpdatedEvent.model_validate(json.loads(body))
    assert (updated.type, updated.data.type) == ("refund.updated", "refund")
    assert updated.data.object.refund.status == "COMPLETED"
    assert updated.data.object.refund.updated_at > made["updated_at"]
    assert standin.check_schema("RefundUpdatedEvent", json.loads(body)) == []
    with pytest.raises(ValueError, match="REFUND_AMOUNT_INVALID"):
        standin.create_dashboard_refund(p.id, 1301)


# --- the schema check itself -------------------------------------------------------------------


def test_the_schema_check_catches_a_body_that_drifted_from_squares(standin, client):
    p = pay(client).payment
    good = {"payment": standin.payments[p.id]}
    assert standin.check_schema("CreatePaymentResponse", good) == []
    drifted = json.loads(json.dumps(good))
    drifted["payment"]["amount_money"]["amount"] = "15.00"
    drifted["payment"]["card_details"]["card"]["card_brand"] = "VISA_CARD"
    problems = standin.check_schema("CreatePaymentResponse", drifted)
    assert len(problems) == 2
    assert any("amount_money/amount" in m and "integer" in m for m in problems)
    assert any("card_brand" in m for m in problems)
    assert standin.check_schema("Error", {"category": "OOPS", "code": "NOT_FOUND"}) != []

    # And a drifted answer on the wire is recorded, not raised.
    standin.update_payment(p.id, total_money={"amount": "15.00", "currency": "USD"})
    with httpx.Client(timeout=5) as http:
        r = http.get(
            f"{standin.base_url}/v2/payments/{p.id}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert r.status_code == 200
    assert len(standin.schema_errors) == 1
    assert standin.schema_errors[0].startswith("GetPayment response: GetPaymentResponse:")
    assert "total_money/amount" in standin.schema_errors[0]
    standin.schema_errors.clear()  # the fixture would fail the test otherwise


def test_every_guess_is_written_down():
    assert len(GUESSES) >= 10
    import tests.support.square_standin as module

    assert all(g in module.__doc__ for g in GUESSES)


# --- standalone --------------------------------------------------------------------------------


@pytest.mark.slow  # a Python subprocess
def test_it_runs_standalone_until_interrupted():
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "tests.support.square_standin",
            "--port",
            str(port),
            "--quiet",
            "--cancel-completed-by-key",
            "ok",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url == f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5) as http:
            client = Square(token="standin-token", base_url=base_url, httpx_client=http)
            assert client.locations.get("LSTANDIN1").location.id == "LSTANDIN1"
            client.payments.create(
                source_id="cnon:card-nonce-ok", idempotency_key="cli-1", amount_money=usd(100)
            )
            cancel = client.payments.cancel_by_idempotency_key(idempotency_key="cli-1")
            assert cancel.errors is None  # --cancel-completed-by-key ok: 200 {}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
