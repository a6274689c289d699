"""Square mode: a wallet token (Apple Pay / Google Pay) charged through the real `squareup` SDK
against the Square stand-in, through the same POST /pay/<token> as a card token."""

from __future__ import annotations

import pytest

from payapp.db import get_session
from payapp.models import PaymentLink

from ..conftest import open_pay_page, submit_card
from .test_square_mode import config_overrides, creates, local, standin  # noqa: F401

pytestmark = pytest.mark.integration


def test_a_wallet_token_pays_through_square_with_the_card_wire_format(
    app, client, link_factory, standin
):  # noqa: F811
    link = link_factory()
    page = open_pay_page(client, link.path)
    first = submit_card(client, link.path, nonce="cnon:demo-apple-pay-ok", page=page)
    again = submit_card(client, link.path, nonce="cnon:demo-apple-pay-ok", page=page)
    assert "Payment received" in first.text and "Payment received" in again.text
    [body] = creates(standin)
    assert body["source_id"] == "cnon:demo-apple-pay-ok"
    assert body["amount_money"] == {"amount": 12500, "currency": "USD"}
    assert len(standin.charges) == 1
    status, _claim, pays = local(app, link.id)
    assert status == "paid" and pays == [("completed", standin.charges[0]["id"])]


def test_a_declined_wallet_token_counts_as_a_decline(app, client, link_factory, standin):  # noqa: F811
    link = link_factory()
    response = submit_card(client, link.path, nonce="cnon:demo-wallet-declined")
    assert "declined by your bank" in response.text
    status, _claim, _pays = local(app, link.id)
    assert status == "open"
    with app.app_context():
        assert get_session().get(PaymentLink, link.id).decline_count == 1
