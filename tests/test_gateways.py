"""payapp/gateways/__init__.py: the gateway interface's own rules. Which answers are stale, which
errors only the clinic can fix (the staff banner) and which count toward a link's decline cap,
and what makes a repeated idempotency key "the same request"."""

from dataclasses import replace

import pytest

from payapp.gateways import (
    CLINIC_ERROR_CODES,
    ChargeRequest,
    GatewayDeclined,
    GatewayError,
    RefundRequest,
    is_stale,
    parse_rfc3339,
)

CHARGE = ChargeRequest(
    idempotency_key="attempt-key-0000000001",
    source_id="cnon:card-nonce-ok",
    amount_cents=12500,
    currency="USD",
    reference_id="PL-1",
    note="Payment for statement INV-1001",
    postal_code="94103",
    buyer_email="jane@example.com",
)
REFUND = RefundRequest("refund-key-0001", "pay-1", 5000, "USD", "overpaid")


# --- is_stale -----------------------------------------------------------------------------------


def test_an_older_or_equal_update_is_stale():
    held = "2026-12-01T10:00:00.500Z"
    assert is_stale("2026-12-01T09:59:59Z", held)
    assert is_stale(held, held)  # a repeated webhook changes nothing


def test_a_newer_update_is_not_stale():
    assert not is_stale("2026-12-01T10:00:01Z", "2026-12-01T10:00:00Z")


def test_times_compare_as_instants_across_offsets():
    assert is_stale("2026-12-01T05:00:00-05:00", "2026-12-01T10:00:00Z")  # the same instant
    assert not is_stale("2026-12-01T05:00:01-05:00", "2026-12-01T10:00:00Z")


@pytest.mark.parametrize(
    "reported, held", [(None, "2026-12-01T10:00:00Z"), ("2026-12-01T10:00:00Z", None), ("", "")]
)
def test_an_unknown_time_is_never_stale(reported, held):
    assert not is_stale(reported, held)


def test_rfc3339_z_means_utc():
    assert parse_rfc3339("2026-12-01T10:00:00Z").utcoffset().total_seconds() == 0


# --- who must fix an error ----------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(CLINIC_ERROR_CODES))
def test_account_and_set_up_errors_are_the_clinics_to_fix(code):
    assert GatewayError(code).clinic_must_fix


def test_an_authentication_error_is_the_clinics_whatever_its_code():
    assert GatewayError("SOMETHING_NEW", category="AUTHENTICATION_ERROR").clinic_must_fix


@pytest.mark.parametrize("field", ["location_id", "amount_money.currency"])
def test_an_error_blaming_the_location_or_currency_is_the_clinics(field):
    assert GatewayError(
        "INVALID_VALUE", category="INVALID_REQUEST_ERROR", field=field
    ).clinic_must_fix


@pytest.mark.parametrize(
    "error",
    [
        GatewayError("IDEMPOTENCY_KEY_REUSED", category="INVALID_REQUEST_ERROR"),
        GatewayError("RATE_LIMITED", category="RATE_LIMIT_ERROR"),
        GatewayError("INVALID_VALUE", category="INVALID_REQUEST_ERROR", field="source_id"),
    ],
)
def test_errors_a_request_can_cause_are_not_the_clinics(error):
    assert not error.clinic_must_fix


def test_a_decline_is_never_the_clinics_even_with_a_clinic_code():
    # A card tester must not be able to raise the "patients cannot pay" banner.
    assert not GatewayDeclined("GENERIC_DECLINE").clinic_must_fix
    assert not GatewayDeclined("UNAUTHORIZED").clinic_must_fix
    assert not GatewayDeclined("CVV_FAILURE", field="location_id").clinic_must_fix


@pytest.mark.parametrize(
    "code", ["GENERIC_DECLINE", "CVV_FAILURE", "CARD_TOKEN_USED", "INVALID_CARD_DATA"]
)
def test_every_decline_a_card_tester_can_cause_counts_toward_the_lock(code):
    assert GatewayDeclined(code).counts_toward_lock


def test_the_gateways_own_temporary_error_does_not_count_toward_the_lock():
    assert not GatewayDeclined("TEMPORARY_ERROR").counts_toward_lock


def test_a_gateway_error_names_its_category_and_code():
    error = GatewayError("UNAUTHORIZED", category="AUTHENTICATION_ERROR", detail="bad token")
    assert str(error) == "AUTHENTICATION_ERROR/UNAUTHORIZED" and error.detail == "bad token"


# --- fingerprints -------------------------------------------------------------------------------


def test_the_same_charge_under_a_new_key_has_the_same_fingerprint():
    assert (
        replace(CHARGE, idempotency_key="attempt-key-0000000002").fingerprint()
        == CHARGE.fingerprint()
    )


@pytest.mark.parametrize(
    "change",
    [
        {"source_id": "cnon:another-card"},
        {"amount_cents": 12501},
        {"currency": "CAD"},
        {"reference_id": "PL-2"},
        {"note": "Payment for statement INV-1002"},
        {"postal_code": "10001"},
        {"buyer_email": "john@example.com"},
    ],
)
def test_a_charge_differing_in_anything_sent_has_another_fingerprint(change):
    assert replace(CHARGE, **change).fingerprint() != CHARGE.fingerprint()


@pytest.mark.parametrize(
    "change",
    [{"payment_id": "pay-2"}, {"amount_cents": 5001}, {"currency": "CAD"}, {"reason": "duplicate"}],
)
def test_a_refund_differing_in_anything_sent_has_another_fingerprint(change):
    assert replace(REFUND, **change).fingerprint() != REFUND.fingerprint()
    assert replace(REFUND, idempotency_key="refund-key-0002").fingerprint() == REFUND.fingerprint()
