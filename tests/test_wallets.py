"""Apple Pay and Google Pay (issue 11): a wallet token is charged through the same POST
/pay/<token> as a card token; the Apple Pay domain-association file; the check-deployment line."""

import pytest

from payapp import deployment
from payapp.db import get_session
from payapp.gateways.demo import DEMO_WALLET_NONCES

from .conftest import open_pay_page, submit_card
from .test_pay import link_row

APPLE = "cnon:demo-apple-pay-ok"
GOOGLE = "cnon:demo-google-pay-ok"
DECLINED = "cnon:demo-wallet-declined"
WELL_KNOWN = "/.well-known/apple-developer-merchantid-domain-association"


@pytest.mark.parametrize("nonce", [APPLE, GOOGLE])
def test_a_demo_wallet_token_pays_through_the_card_charge_path(
    app, client, link_factory, gateway, nonce
):
    link = link_factory()
    response = submit_card(client, link.path, nonce=nonce)
    assert response.status_code == 200 and "Payment received" in response.text
    assert "$125.00" in response.text
    assert link_row(app, link.id).status == "paid"
    assert [c.source_id for c in gateway.charges] == [nonce]
    assert gateway.charges[0].amount_cents == 12500  # the server's amount, not the wallet's


def test_a_repeated_wallet_submit_charges_once(app, client, link_factory, gateway):
    link = link_factory()
    page = open_pay_page(client, link.path)
    first = submit_card(client, link.path, nonce=APPLE, page=page)
    second = submit_card(client, link.path, nonce=APPLE, page=page)
    assert "Payment received" in first.text and "Payment received" in second.text
    assert len(gateway.charges) == 1


def test_wallet_declines_count_toward_the_decline_cap(app, client, link_factory, gateway):
    link = link_factory()
    for _ in range(4):
        submit_card(client, link.path, nonce="cnon:card-nonce-declined")
    declined = submit_card(client, link.path, nonce=DECLINED)
    assert "locked" in declined.text
    assert link_row(app, link.id).decline_count == 5
    assert client.get(link.path).status_code == 410
    assert len(gateway.charges) == 5


def test_a_declined_wallet_token_is_shown_as_a_decline(app, client, link_factory, gateway):
    link = link_factory()
    response = submit_card(client, link.path, nonce=DECLINED)
    assert "declined by your bank" in response.text
    assert link_row(app, link.id).decline_count == 1


def test_the_demo_wallet_nonces_are_clearly_payapps_own():
    assert all(n.startswith("cnon:demo-") for n in DEMO_WALLET_NONCES)


# --- Apple Pay domain association ---------------------------------------------------------------


def test_the_association_file_is_404_when_not_set(client):
    response = client.get(WELL_KNOWN)
    assert response.status_code == 404


def test_the_association_file_is_404_when_the_path_is_missing(app, client, tmp_path):
    app.config["APPLE_PAY_DOMAIN_ASSOCIATION"] = str(tmp_path / "nope.txt")
    assert client.get(WELL_KNOWN).status_code == 404


def test_the_association_file_is_served_verbatim_as_text_without_cookies(app, client, tmp_path):
    body = b"7B227073704964223A2239\r\nline two \xe2\x80\x94 bytes\n"
    path = tmp_path / "apple-developer-merchantid-domain-association"
    path.write_bytes(body)
    app.config["APPLE_PAY_DOMAIN_ASSOCIATION"] = str(path)
    response = client.get(WELL_KNOWN)
    assert response.status_code == 200
    assert response.data == body
    assert response.mimetype == "text/plain"
    assert "Set-Cookie" not in response.headers


# --- check-deployment -------------------------------------------------------------------------


def apple_check(app):
    with app.app_context():
        checks = {c.name: c for c in deployment.run_checks(app.config, get_session())}
    return checks.get("Apple Pay")


def test_demo_mode_has_no_apple_pay_line(app):
    assert app.config["DEMO_MODE"]
    assert apple_check(app) is None


def test_square_mode_without_the_file_says_how_to_set_it_up(app):
    app.config["DEMO_MODE"] = False
    check = apple_check(app)
    assert not check.ok
    assert "PAYAPP_APPLE_PAY_DOMAIN_ASSOCIATION" in check.detail
    assert "register this domain" in check.detail and "Square" in check.detail


def test_square_mode_with_the_file_reminds_to_register_the_domain(app, tmp_path):
    path = tmp_path / "association"
    path.write_text("x")
    app.config.update(DEMO_MODE=False, APPLE_PAY_DOMAIN_ASSOCIATION=str(path))
    check = apple_check(app)
    assert check.ok
    assert "register this domain" in check.detail and "Square" in check.detail


def test_the_demo_pay_page_needs_no_wallet_hosts_nor_the_payment_feature(client, link_factory):
    # Demo wallets are local buttons: no Google host, and the payment feature stays off.
    page = client.get(link_factory().path)
    assert 'id="wallet-buttons"' in page.text and "hidden" in page.text
    assert "pay.google.com" not in page.headers["Content-Security-Policy"]
    assert "payment=()" in page.headers["Permissions-Policy"]
