"""The demo gateway answers like Square's sandbox: the card typed is the card on the receipt."""

import pytest

from payapp.gateways import ChargeRequest, GatewayDeclined
from payapp.gateways.demo import DemoGateway


def charge(source_id: str, key: str = "demo-key-0001"):
    request = ChargeRequest(key, source_id, 12500, "USD", "ref-1", "note", "94103")
    return DemoGateway().create_payment(request)


@pytest.mark.parametrize(
    ("source_id", "brand", "last4"),
    [
        ("cnon:card-nonce-ok--MASTERCARD--5100", "MASTERCARD", "5100"),
        ("cnon:card-nonce-ok--AMERICAN_EXPRESS--0009", "AMERICAN_EXPRESS", "0009"),
        ("cnon:card-nonce-ok--DISCOVER--0004", "DISCOVER", "0004"),
        ("cnon:gift-card-nonce-ok--SQUARE_GIFT_CARD--0000", "SQUARE_GIFT_CARD", "0000"),
    ],
)
def test_a_typed_test_card_is_charged_with_its_own_brand_and_last_four(source_id, brand, last4):
    result = charge(source_id)
    assert (result.status, result.card_brand, result.card_last4) == ("COMPLETED", brand, last4)


def test_squares_documented_sandbox_nonce_still_pays_as_its_visa():
    result = charge("cnon:card-nonce-ok")
    assert (result.card_brand, result.card_last4) == ("VISA", "1111")


def test_a_typed_card_with_a_decline_nonce_is_still_declined():
    with pytest.raises(GatewayDeclined) as declined:
        charge("cnon:card-nonce-rejected-cvv--MASTERCARD--5100")
    assert declined.value.code == "CVV_FAILURE"


@pytest.mark.parametrize(
    "source_id",
    [
        "cnon:card-nonce-ok--NOT_A_BRAND--5100",  # unknown brand
        "cnon:card-nonce-ok--VISA--4111111111111111",  # more than the last four
        "cnon:card-nonce-ok--VISA--51a0",
        "cnon:made-up--VISA--1111",  # not a sandbox nonce
    ],
)
def test_anything_else_is_refused_like_a_stale_token(source_id):
    with pytest.raises(GatewayDeclined) as declined:
        charge(source_id)
    assert declined.value.code == "CARD_TOKEN_EXPIRED"
