"""payapp in Square mode: the real `squareup` SDK talking over HTTP to the Square stand-in.

Patients pay through the app's HTTP endpoints; faults are injected at the stand-in; run-jobs
settles unknown outcomes; webhooks arrive signed like Square's. Every stand-in response in these
tests is checked against Square's published OpenAPI schema (the fixture asserts no drift).
"""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from payapp import payments
from payapp.db import get_session
from payapp.gateways import ChargeRequest, ChargeResult, GatewayDeclined, GatewayError
from payapp.gateways.square import SQUARE_VERSION
from payapp.models import AuditEvent, Payment, PaymentLink, Refund, WebhookEvent, utcnow

from ..conftest import PayPage, audit_actions, csrf_from, open_pay_page, submit_card
from ..support.servers import SQUARE_WEBHOOK_URL, running_standin, square_mode

pytestmark = pytest.mark.integration

TOKEN = "EAAAstandin-test-token"
LOCATION = "LSTANDIN1"
WEBHOOK_KEY = "webhook-signature-key-for-tests"
WEBHOOK_URL = SQUARE_WEBHOOK_URL
LATER = timedelta(minutes=3)  # past payments.RECONCILE_AFTER


@pytest.fixture
def standin(request):
    """The stand-in; parametrize it (indirect) with what cancel-by-key answers for a COMPLETED
    payment: "error" (400) or "ok" (200 {}); Square does not document which."""
    answer = getattr(request, "param", "error")
    with running_standin(TOKEN, LOCATION, cancel_completed_by_key=answer) as server:
        assert server.validating
        yield server


@pytest.fixture
def config_overrides(standin):
    return square_mode(standin, webhook_key=WEBHOOK_KEY)


def creates(standin):
    return [
        body
        for method, path, body in standin.requests
        if method == "POST" and path == "/v2/payments"
    ]


def local(app, link_id):
    with app.app_context():
        s = get_session()
        link = s.get(PaymentLink, link_id)
        return (
            link.status,
            link.claim_key,
            [(p.status, p.gateway_payment_id) for p in link.payments],
        )


def run_jobs(app, runner, *, later=LATER):
    """run-jobs as cron would run it a few minutes later."""
    import time_machine

    with time_machine.travel(utcnow() + later, tick=True), app.app_context():
        result = runner.invoke(args=["run-jobs"])
    assert result.exit_code == 0, result.output
    return result.output


# --- paying -------------------------------------------------------------------------------------


def test_a_patient_pays_through_square(app, client, link_factory, standin):
    link = link_factory(description="implant consult")
    response = submit_card(client, link.path)
    assert "Payment received" in response.text and "Visa ending 1111" in response.text
    [body] = creates(standin)
    assert body["amount_money"] == {"amount": 12500, "currency": "USD"}
    assert body["location_id"] == LOCATION and body["reference_id"] == link.public_id
    assert body["note"] == "Payment for statement INV-1001"
    assert body["buyer_email_address"] == "jane@example.com"
    assert body["billing_address"] == {"postal_code": "94103"}
    assert body["autocomplete"] is True and body["source_id"] == "cnon:card-nonce-ok"
    assert None not in body.values()  # no JSON nulls sent
    assert "implant" not in repr(body)
    assert standin.square_versions and set(standin.square_versions) == {SQUARE_VERSION}
    assert len(standin.charges) == 1
    status, claim, pays = local(app, link.id)
    assert (status, claim) == ("paid", None) and pays == [("completed", standin.charges[0]["id"])]
    with app.app_context():
        payment = get_session().scalar(select(Payment))
        assert payment.receipt_url and payment.gateway_updated_at


@pytest.mark.parametrize(
    ("nonce", "code", "words"),
    [
        ("cnon:card-nonce-declined", "GENERIC_DECLINE", "declined by your bank"),
        ("cnon:card-nonce-rejected-cvv", "CVV_FAILURE", "security code (CVV)"),
        ("cnon:card-nonce-rejected-postalcode", "ADDRESS_VERIFICATION_FAILURE", "ZIP code"),
        ("cnon:card-nonce-rejected-expiration", "INVALID_EXPIRATION", "expiration date"),
        ("cnon:gift-card-nonce-insufficient-funds", "INSUFFICIENT_FUNDS", "insufficient funds"),
        ("cnon:card-nonce-already-used", "CARD_TOKEN_USED", "enter your card details again"),
        ("cnon:standin-token-expired", "CARD_TOKEN_EXPIRED", "enter your card details again"),
        (
            "cnon:standin-verification-required",
            "CARD_DECLINED_VERIFICATION_REQUIRED",
            "needs to verify",
        ),
    ],
)
def test_each_square_decline_reaches_the_patient_in_plain_words(
    app, client, link_factory, standin, nonce, code, words
):
    link = link_factory()
    response = submit_card(client, link.path, nonce=nonce)
    assert "you were not charged" in response.text and words in response.text
    assert code not in response.text  # codes are for staff
    status, claim, pays = local(app, link.id)
    assert (status, claim) == ("open", None) and pays[0][0] == "failed"
    assert standin.charges == []


def test_a_double_click_makes_one_square_charge(app, client, link_factory, standin):
    link = link_factory()
    page = open_pay_page(client, link.path)
    submit_card(client, link.path, page=page)
    again = submit_card(client, link.path, page=page)
    assert "Payment received" in again.text
    assert len(creates(standin)) == 1 and len(standin.charges) == 1


def test_square_refuses_a_reused_idempotency_key_with_another_body(app):
    gateway = app.extensions["payapp.gateway"]
    first = ChargeRequest("key-reuse-1", "cnon:card-nonce-ok", 500, "USD", "ref-1", "note")
    gateway.create_payment(first)
    assert gateway.create_payment(first).payment_id  # same body: the same payment again
    with pytest.raises(GatewayError) as caught:
        gateway.create_payment(
            ChargeRequest("key-reuse-1", "cnon:card-nonce-ok", 600, "USD", "ref-1", "note")
        )
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"


def test_twenty_simultaneous_submits_make_exactly_one_charge_at_square(app, link_factory, standin):
    link = link_factory()
    standin.inject("delay", times=1, delay=0.3)  # hold the first charge so the others overlap
    clients = [app.test_client() for _ in range(20)]
    pages = [open_pay_page(c, link.path) for c in clients]
    barrier = threading.Barrier(20)
    texts = [""] * 20

    def go(i):
        barrier.wait()
        texts[i] = submit_card(clients[i], link.path, page=pages[i]).text

    threads = [threading.Thread(target=go, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("Payment received" in t for t in texts) == 1
    assert len(standin.charges) == 1 and len(creates(standin)) == 1
    assert local(app, link.id)[0] == "paid"


# --- card testing: the decline cap and patient-caused errors (issue 7 sections 2 and 3) --------


def test_thirty_two_concurrent_card_testers_reach_square_at_most_five_times(
    app, link_factory, standin
):
    """32 clients post declined cards to one link at once and keep trying with new attempts
    until they are told the link is locked; Square answers with a little latency."""
    link = link_factory()
    standin.inject("delay", times=40, delay=0.02)
    clients = [app.test_client() for _ in range(32)]
    csrfs = [open_pay_page(c, link.path).csrf for c in clients]
    barrier = threading.Barrier(32)
    locked = [False] * 32

    def card_tester(i):
        barrier.wait()
        for attempt in range(200):  # until told the link is locked
            text = submit_card(
                clients[i],
                link.path,
                nonce="cnon:card-nonce-declined",
                page=PayPage("", csrfs[i], f"card-tester-{i:02d}-{attempt:02d}-xxxx"),
            ).text
            if "locked" in text:
                locked[i] = True
                return

    threads = [threading.Thread(target=card_tester, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    standin.clear_faults()
    assert len(creates(standin)) <= app.config["MAX_DECLINES"] == 5
    assert len(creates(standin)) == 5 and standin.charges == []
    assert all(locked)
    with app.app_context():
        final = get_session().get(PaymentLink, link.id)
        assert (final.status, final.decline_count, final.claim_key) == ("locked", 5, None)
    assert audit_actions(app).count("link.locked") == 1


def test_a_made_up_card_token_is_a_decline_for_the_patient_not_an_outage_for_the_clinic(
    app, client, staff, link_factory, standin
):
    """Square answers 404 NOT_FOUND on source_id for a token it never issued. Anyone holding a
    link can send one; it must count toward the cap and never raise the staff banner."""
    link = link_factory()
    csrf = open_pay_page(client, link.path).csrf
    for i in range(5):
        page = PayPage("", csrf, f"made-up-token-attempt-{i:02d}")
        response = submit_card(client, link.path, nonce=f"cnon:made-up-{i}", page=page)
        assert response.status_code == 200
        assert "not available right now" not in response.text
        if i < 4:
            assert "enter your card details again" in response.text
    # The fifth says only what is true now: the link is locked (no "enter your card again").
    assert "locked" in response.text and "enter your card details again" not in response.text
    blocked = submit_card(client, link.path, page=PayPage("", csrf, "made-up-token-attempt-ok"))
    assert "locked" in blocked.text
    assert len(creates(standin)) == 5 and standin.charges == []  # the sixth never left payapp
    assert local(app, link.id)[0] == "locked"
    actions = audit_actions(app)
    assert actions.count("payment.declined") == 5 and "gateway.error" not in actions
    page = staff.get("/links").text
    assert "Patients may not be able to pay online." not in page


def test_only_errors_the_clinic_causes_are_configuration_errors(app, standin):
    gateway = app.extensions["payapp.gateway"]

    def refusal(**changes):
        fields = {
            "idempotency_key": f"classify-{len(standin.requests)}",
            "source_id": "cnon:card-nonce-ok",
            "amount_cents": 500,
            "currency": "USD",
            "reference_id": "ref-1",
            "note": "note",
            **changes,
        }
        with pytest.raises(GatewayError) as caught:
            gateway.create_payment(ChargeRequest(**fields))
        return caught.value

    made_up = refusal(source_id="cnon:never-issued")
    assert isinstance(made_up, GatewayDeclined) and made_up.counts_toward_lock
    assert (made_up.code, made_up.field, made_up.clinic_must_fix) == ("NOT_FOUND", "source_id", 0)
    invalid = refusal(source_id="cnon:standin-invalid-card-data")
    assert isinstance(invalid, GatewayDeclined) and invalid.counts_toward_lock
    temporary = refusal(source_id="cnon:standin-temporary-error")
    assert isinstance(temporary, GatewayDeclined) and not temporary.counts_toward_lock
    currency = refusal(currency="CAD")
    assert not isinstance(currency, GatewayDeclined) and currency.clinic_must_fix
    assert currency.field == "amount_money.currency"
    gateway.create_payment(ChargeRequest("classify-ok", "cnon:card-nonce-ok", 500, "USD", "r", "n"))
    reused = refusal(idempotency_key="classify-ok", amount_cents=600)  # a bug, not the set-up
    assert reused.code == "IDEMPOTENCY_KEY_REUSED" and not reused.clinic_must_fix


# --- unknown outcomes and reconciliation --------------------------------------------------------


# Square does not document cancel-by-key's answer for a COMPLETED payment: every reconcile test
# runs under both answers the stand-in can give.
BOTH_CANCEL_ANSWERS = pytest.mark.parametrize("standin", ["error", "ok"], indirect=True)


def assert_charge_matches_link(app, standin, link):
    """The invariant: Square holds exactly one COMPLETED charge for the link and the link is
    paid with that charge recorded, or Square holds none and the link is open and unclaimed."""
    completed = [
        p
        for p in standin.payments.values()
        if p["status"] == "COMPLETED" and p.get("reference_id") == link.public_id
    ]
    status, claim, pays = local(app, link.id)
    if completed:
        assert len(completed) == 1, "charged twice"
        assert (status, claim) == ("paid", None), "a charge went through but the link is not paid"
        assert [gid for st, gid in pays if st == "completed"] == [completed[0]["id"]]
    else:
        assert (status, claim) == ("open", None), "no charge, but the link is not open"
        assert all(st != "completed" for st, _ in pays)
    return "paid" if completed else "open"


@BOTH_CANCEL_ANSWERS
def test_a_charge_accepted_then_dropped_is_recorded_once_by_run_jobs(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("drop_after_charge")
    response = submit_card(client, link.path)
    assert "We're confirming your payment" in response.text
    assert "not be charged twice" in response.text and "(212) 555-0100" in response.text
    status, claim, pays = local(app, link.id)
    assert status == "open" and claim is not None and pays == [("unknown", None)]
    # Another tab cannot start a second charge while it is unresolved.
    blocked = submit_card(app.test_client(), link.path)
    assert "already in progress" in blocked.text
    output = run_jobs(app, runner)
    assert "1 paid" in output
    assert assert_charge_matches_link(app, standin, link) == "paid"
    assert len(standin.charges) == 1
    assert "Payment received" in client.get(link.path).text


@BOTH_CANCEL_ANSWERS
def test_run_jobs_never_asks_cancel_by_key_whether_a_charge_exists(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("drop_after_charge")
    submit_card(client, link.path)
    run_jobs(app, runner)
    assert ("POST", "/v2/payments/cancel") not in [(m, p) for m, p, _ in standin.requests]
    assert assert_charge_matches_link(app, standin, link) == "paid"


@BOTH_CANCEL_ANSWERS
def test_a_timeout_with_no_charge_ends_with_one_charge_or_none_never_a_mismatch(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("timeout_no_charge", delay=1.5)
    assert "We're confirming your payment" in submit_card(client, link.path).text
    assert standin.charges == []
    # The re-sent request (same key) is the first Square processes: the one and only charge.
    assert "1 paid" in run_jobs(app, runner)
    assert assert_charge_matches_link(app, standin, link) == "paid"
    assert len(standin.charges) == 1
    assert "1 paid" not in run_jobs(app, runner)  # nothing left to settle, nothing charged again
    assert len(standin.charges) == 1


@BOTH_CANCEL_ANSWERS
def test_a_timeout_then_a_declined_card_reopens_the_link_and_charges_nothing(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("timeout_no_charge", delay=1.5)
    submit_card(client, link.path, nonce="cnon:card-nonce-declined")
    assert "1 declined" in run_jobs(app, runner)
    assert assert_charge_matches_link(app, standin, link) == "open"
    assert [st for st, _ in local(app, link.id)[2]] == ["failed"]
    # The patient can now pay normally, once.
    assert "Payment received" in submit_card(client, link.path).text
    assert assert_charge_matches_link(app, standin, link) == "paid"


@BOTH_CANCEL_ANSWERS
def test_a_charge_that_finished_after_the_timeout_is_found_not_repeated(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("delay", delay=1.5)  # Square charges, but only after our 1 s timeout
    assert "We're confirming your payment" in submit_card(client, link.path).text
    assert standin.wait_until_idle(timeout=5)
    assert "1 paid" in run_jobs(app, runner)
    assert len(standin.charges) == 1
    assert assert_charge_matches_link(app, standin, link) == "paid"


def test_recent_unknown_payments_are_left_for_the_next_run(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("drop_after_charge")
    submit_card(client, link.path)
    assert "0 paid, 0 reopened (no charge), 0 declined, 0 still" in run_jobs(
        app, runner, later=timedelta(seconds=10)
    )
    assert local(app, link.id)[2] == [("unknown", None)]


@BOTH_CANCEL_ANSWERS
def test_square_failing_with_500s_is_an_unknown_outcome_settled_with_one_charge(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("500", times=3)  # the SDK retries twice: all three attempts fail
    assert "We're confirming your payment" in submit_card(client, link.path).text
    assert len(creates(standin)) == 3 and standin.charges == []
    assert "1 paid" in run_jobs(app, runner)
    assert len(standin.charges) == 1
    assert assert_charge_matches_link(app, standin, link) == "paid"


@BOTH_CANCEL_ANSWERS
def test_no_answer_while_reconciling_keeps_the_payment_unknown_and_tells_staff(
    app, admin, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("drop_after_charge")
    submit_card(client, link.path)
    standin.inject("500", times=3)  # Square is down when run-jobs asks
    assert "1 still waiting" in run_jobs(app, runner)
    status, claim, pays = local(app, link.id)
    assert status == "open" and claim is not None and pays == [("unknown", None)]
    assert "already in progress" in submit_card(app.test_client(), link.path).text
    page = admin.get(f"/links/{link.id}").text
    assert "A payment could not be confirmed yet" in page and "Confirming" in page
    # Square answers again: the next run settles it, once.
    assert "1 paid" in run_jobs(app, runner)
    assert assert_charge_matches_link(app, standin, link) == "paid"
    assert len(standin.charges) == 1


# --- configuration errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "hint"),
    [
        ("SQUARE_ACCESS_TOKEN", "EAAA-revoked-token", "PAYAPP_SQUARE_ACCESS_TOKEN"),
        ("SQUARE_LOCATION_ID", "LWRONG", "PAYAPP_SQUARE_LOCATION_ID"),
    ],
)
def test_configuration_errors_tell_patients_nothing_and_staff_what_to_fix(
    app, client, staff, link_factory, standin, setting, value, hint
):
    from payapp.gateways.factory import make_gateway

    app.config[setting] = value
    app.extensions["payapp.gateway"] = make_gateway(app.config)
    link = link_factory()
    response = submit_card(client, link.path)
    assert response.status_code == 200
    assert "Online payment is not available right now. Nothing was charged." in response.text
    assert "Traceback" not in response.text and "UNAUTHORIZED" not in response.text
    assert standin.charges == [] and local(app, link.id)[:2] == ("open", None)
    banner = staff.get("/links").text
    assert "Patients may not be able to pay online." in banner and hint in banner


def test_check_square_reports_the_location(app, runner, standin):
    with app.app_context():
        result = runner.invoke(args=["check-square"])
    assert result.exit_code == 0, result.output
    assert f"Location {LOCATION}: Stand-in Dental (ACTIVE), currency USD." in result.output
    assert "Ready to take card payments." in result.output


def test_check_square_explains_a_bad_token(app, runner, standin):
    from payapp.gateways.factory import make_gateway

    app.config["SQUARE_ACCESS_TOKEN"] = "EAAA-wrong"
    app.extensions["payapp.gateway"] = make_gateway(app.config)
    with app.app_context():
        result = runner.invoke(args=["check-square"])
    assert result.exit_code != 0
    assert "AUTHENTICATION_ERROR/UNAUTHORIZED" in result.output
    assert "PAYAPP_SQUARE_ACCESS_TOKEN" in result.output


def test_the_pay_page_admits_exactly_squares_sandbox_hosts(client, link_factory):
    link = link_factory()
    # The first view, then the open page rendered into the cache, then served from it.
    for _ in range(3):
        page = client.get(link.path)
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self' 'nonce-" in csp and "https://sandbox.web.squarecdn.com" in csp
        # Any HTTPS frame (Square's, and a card issuer's 3-D Secure challenge), nothing else.
        assert re.search(r"(^|; )frame-src https:(;|$)", csp), csp
        assert "https://pci-connect.squareupsandbox.com" in csp
        assert "web.squarecdn.com/v1" not in csp and "https://web.squarecdn.com " not in csp + " "
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert re.search(
            r'<script src="https://sandbox.web.squarecdn.com/v1/square.js" nonce="', page.text
        )
        assert "demo-card.js" not in page.text and "Demo mode" not in page.text
        permissions = page.headers["Permissions-Policy"]
        assert 'payment=(self "https://sandbox.web.squarecdn.com")' in permissions
    login = client.get("/login")
    assert "squarecdn" not in login.headers["Content-Security-Policy"]
    assert "frame-src 'none'" in login.headers["Content-Security-Policy"]
    assert "payment=()" in login.headers["Permissions-Policy"]
    submit_card(client, link.path)  # paid: the page no longer loads Square, nor admits frames
    paid = client.get(link.path).headers["Content-Security-Policy"]
    assert "frame-src 'none'" in paid and "squarecdn" not in paid


def test_the_square_pay_page_carries_the_given_name_but_not_surname_or_email(client, link_factory):
    link = link_factory(patient_name="Marisol Quenneville", email="m.quenneville@example.org")
    html = client.get(link.path).text
    assert 'data-given-name="Marisol"' in html  # what Square's buyer verification gets
    assert "sandbox.web.squarecdn.com/v1/square.js" in html  # really the Square-mode page
    for secret in ("Quenneville", "quenneville", "m.quenneville", "example.org"):
        assert secret not in html


# --- refunds ------------------------------------------------------------------------------------


def pay_link(client, link_factory):
    link = link_factory()
    assert "Payment received" in submit_card(client, link.path).text
    return link


def refund(admin, link_id, amount, form=None):
    html = admin.get(f"/links/{link_id}").text
    data = form or {
        "csrf_token": csrf_from(html),
        "payment_id": re.search(r'name="payment_id" value="(\d+)"', html)[1],
        "refund_key": re.search(r'name="refund_key" value="([^"]+)"', html)[1],
    }
    admin.post(f"/links/{link_id}/refund", data={**data, "amount": amount, "reason": "overpaid"})
    return data


def refund_requests(standin):
    return [b for m, p, b in standin.requests if m == "POST" and p == "/v2/refunds"]


def test_refunds_through_square_partial_then_full_then_over(
    app, admin, client, link_factory, standin
):
    link = pay_link(client, link_factory)
    refund(admin, link.id, "25.00")
    assert local(app, link.id)[0] == "partially_refunded"
    stale_form = refund(admin, link.id, "100.00")
    assert local(app, link.id)[0] == "refunded"
    # A second tab still showing the form tries once more:
    refund(admin, link.id, "0.01", form={**stale_form, "refund_key": "another-tab-key-123"})
    assert "Refund not made: You can refund at most $0.00" in admin.get(f"/links/{link.id}").text
    assert len(refund_requests(standin)) == 2  # the over-refund never left payapp
    [payment] = standin.charges
    assert standin.payments[payment["id"]]["refunded_money"]["amount"] == 12500
    page = admin.get(f"/links/{link.id}").text
    assert "pending at Square" in page


def test_a_double_clicked_refund_reaches_square_once(app, admin, client, link_factory, standin):
    link = pay_link(client, link_factory)
    form = refund(admin, link.id, "10.00")
    refund(admin, link.id, "10.00", form=form)
    assert len(refund_requests(standin)) == 1 and len(standin.refunds) == 1


def test_square_refusing_an_over_refund_changes_nothing_locally(app, link_factory, client, standin):
    """Someone refunded most of it in Square's dashboard and no webhook has arrived yet."""
    from payapp import refunds

    pay_link(client, link_factory)
    standin.create_dashboard_refund(standin.charges[0]["id"], 12000)
    with app.app_context():
        s = get_session()
        payment = s.scalar(select(Payment))
        with pytest.raises(refunds.RefundError, match="more than can still be refunded"):
            refunds.refund_payment(
                s,
                app.extensions["payapp.gateway"],
                payment,
                amount_cents=1000,
                reason="x",
                staff_id=1,
                request_key="k" * 20,
            )
        s.refresh(payment)
        assert payment.refunded_cents == 0
        assert s.scalar(select(Refund.status)) == "failed"


# --- webhooks -----------------------------------------------------------------------------------


def deliver(
    client,
    standin,
    event_type,
    obj,
    *,
    key=WEBHOOK_KEY,
    url=WEBHOOK_URL,
    event_id=None,
    tamper=False,
):
    body, signature = standin.webhook(
        event_type, obj, signature_key=key, notification_url=url, event_id=event_id
    )
    if tamper:
        body = body.replace('"status":"', '"status":"X', 1)
    return client.post(
        "/webhooks/square",
        data=body,
        content_type="application/json",
        headers={"x-square-hmacsha256-signature": signature},
    )


def stored_events(app):
    with app.app_context():
        return get_session().scalar(select(func.count()).select_from(WebhookEvent))


def test_a_signed_webhook_for_a_dashboard_refund_shows_up(
    app, admin, client, link_factory, standin
):
    link = pay_link(client, link_factory)
    made = standin.create_dashboard_refund(standin.charges[0]["id"], 2500, reason="goodwill")
    response = deliver(client, standin, "refund.created", made)
    assert response.status_code == 200 and response.json["status"] == "updated"
    assert local(app, link.id)[0] == "partially_refunded"
    page = admin.get(f"/links/{link.id}").text
    assert "made in Square" in page and "goodwill" in page
    standin.complete_refund(made["id"])
    deliver(client, standin, "refund.updated", standin.refunds[made["id"]])
    with app.app_context():
        assert get_session().scalar(select(Refund.status)) == "completed"


@pytest.mark.parametrize(
    "forgery",
    [
        {"key": "not-the-key"},
        {"url": "https://pay.clinic.example/webhooks/square/"},
        {"url": "http://pay.clinic.example/webhooks/square"},
        {"tamper": True},
    ],
)
def test_forged_webhooks_are_refused_and_store_nothing(app, client, link_factory, standin, forgery):
    link = pay_link(client, link_factory)
    made = standin.create_dashboard_refund(standin.charges[0]["id"], 2500)
    response = deliver(client, standin, "refund.created", made, **forgery)
    assert response.status_code == 403
    assert stored_events(app) == 0 and local(app, link.id)[0] == "paid"


def test_unsigned_webhooks_are_refused(app, client):
    response = client.post(
        "/webhooks/square",
        data='{"event_id":"x","type":"payment.updated"}',
        content_type="application/json",
    )
    assert response.status_code == 403 and stored_events(app) == 0


def test_a_replayed_webhook_is_handled_once(app, client, link_factory, standin):
    pay_link(client, link_factory)
    made = standin.create_dashboard_refund(standin.charges[0]["id"], 2500)
    first = deliver(client, standin, "refund.created", made, event_id="evt-1")
    second = deliver(client, standin, "refund.created", made, event_id="evt-1")
    assert first.json["status"] == "updated" and second.json["status"] == "duplicate"
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Refund)) == 1
        assert get_session().scalar(select(Payment.refunded_cents)) == 2500


def test_out_of_order_webhooks_leave_the_newest_state(app, client, link_factory, standin):
    pay_link(client, link_factory)
    made = standin.create_dashboard_refund(standin.charges[0]["id"], 2500)
    created_event = dict(made)
    standin.complete_refund(made["id"])
    # refund.updated (COMPLETED) arrives before refund.created (PENDING):
    deliver(client, standin, "refund.updated", standin.refunds[made["id"]], event_id="evt-2")
    deliver(client, standin, "refund.created", created_event, event_id="evt-1")
    with app.app_context():
        s = get_session()
        assert s.scalar(select(Refund.status)) == "completed"
        assert s.scalar(select(func.count()).select_from(Refund)) == 1


def test_older_news_than_what_we_hold_changes_nothing(app, client, link_factory, standin):
    pay_link(client, link_factory)
    with app.app_context():
        s = get_session()
        payment = s.scalar(select(Payment))
        old = ChargeResult(
            payment.gateway_payment_id, "CANCELED", updated_at="2000-01-01T00:00:00.000Z"
        )
        assert payments.apply_gateway_payment(s, old) == "stale"
        assert s.scalar(select(Payment.status)) == "completed"


def test_a_webhook_settles_a_payment_whose_answer_was_lost(app, client, link_factory, standin):
    link = link_factory()
    standin.inject("drop_after_charge")
    submit_card(client, link.path)
    assert local(app, link.id)[2] == [("unknown", None)]
    response = deliver(client, standin, "payment.created", standin.charges[0])
    assert response.json["status"] == "completed"
    status, claim, pays = local(app, link.id)
    assert (status, claim, pays) == ("paid", None, [("completed", standin.charges[0]["id"])])
    with app.app_context():
        actors = (
            get_session()
            .scalars(select(AuditEvent.actor).where(AuditEvent.action == "payment.completed"))
            .all()
        )
    assert actors == ["square"]


def test_webhooks_need_no_csrf_token_but_are_size_limited(app, client):
    huge = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post(
        "/webhooks/square",
        data=huge,
        content_type="application/json",
        headers={"x-square-hmacsha256-signature": "abc"},
    )
    assert response.status_code == 413


# --- a charge recorded as "no charge" that Square later reports COMPLETED ----------------------


def charged_but_recorded_canceled(app, client, link, standin):
    """What earlier releases left behind when cancel-by-key answered 200 {} on a COMPLETED
    payment: Square holds the charge, payapp has the attempt canceled and the link open."""
    standin.inject("drop_after_charge")
    submit_card(client, link.path)
    with app.app_context():
        s = get_session()
        s.execute(
            Payment.__table__.update().where(Payment.link_id == link.id).values(status="cancelled")
        )
        s.execute(
            PaymentLink.__table__.update()
            .where(PaymentLink.id == link.id)
            .values(claim_key=None, claimed_at=None)
        )
        s.commit()
    [charge] = standin.charges
    return standin.payments[charge["id"]]


def paid_twice_events(app):
    with app.app_context():
        return (
            get_session()
            .scalars(select(AuditEvent.detail).where(AuditEvent.action == "payment.paid_twice"))
            .all()
        )


def test_a_webhook_for_a_charge_recorded_canceled_marks_the_link_paid(
    app, admin, client, link_factory, standin
):
    link = link_factory()
    charge = charged_but_recorded_canceled(app, client, link, standin)
    assert local(app, link.id)[:2] == ("open", None)
    response = deliver(client, standin, "payment.updated", charge)
    assert response.status_code == 200 and response.json["status"] == "completed"
    assert assert_charge_matches_link(app, standin, link) == "paid"
    assert paid_twice_events(app) == []
    assert "Paid twice" not in admin.get(f"/links/{link.id}").text


def test_a_webhook_for_a_second_charge_on_a_paid_link_alerts_staff_to_refund_one(
    app, admin, client, link_factory, standin
):
    link = link_factory()
    first = charged_but_recorded_canceled(app, client, link, standin)
    assert "Payment received" in submit_card(client, link.path).text  # the patient pays again
    assert len(standin.charges) == 2
    response = deliver(client, standin, "payment.updated", first)
    assert response.status_code == 200 and response.json["status"] == "completed"
    status, claim, pays = local(app, link.id)
    assert (status, claim) == ("paid", None)
    assert sorted(gid for st, gid in pays if st == "completed") == sorted(
        c["id"] for c in standin.charges
    )
    [detail] = paid_twice_events(app)
    assert first["id"] in detail
    page = admin.get(f"/links/{link.id}").text
    assert 'id="paid-twice"' in page and "Paid twice — refund one" in page
    assert "2 completed payments of $125.00" in page
    # The staff banner shows it on every staff page too.
    assert "Paid twice — refund one." in admin.get("/links").text


def receipt_emails(tmp_path, kind="receipt"):
    import email
    from email import policy

    return [
        " ".join(
            email.message_from_bytes(p.read_bytes(), policy=policy.default)
            .get_body(("plain",))
            .get_content()
            .split()
        )
        for p in sorted((tmp_path / "outbox").glob(f"*-{kind}-email.eml"))
    ]


def test_a_patient_charged_twice_gets_a_receipt_for_each_charge_and_a_notice_for_the_refund(
    app, client, link_factory, standin, tmp_path
):
    link = link_factory()
    first = charged_but_recorded_canceled(app, client, link, standin)
    submit_card(client, link.path).close()  # the patient pays again; the receipt goes on close
    assert len(receipt_emails(tmp_path)) == 1
    deliver(client, standin, "payment.updated", first)  # Square: the first charge went through
    deliver(client, standin, "payment.updated", first, event_id="evt-again")  # said again

    bodies = receipt_emails(tmp_path)
    numbers = [re.search(r"Receipt number: (\S+)", b)[1] for b in bodies]
    assert len(bodies) == 2 and len(set(numbers)) == 2, numbers
    assert all("Amount paid: $125.00" in b for b in bodies)
    assert first["receipt_number"] in numbers
    assert audit_actions(app).count("receipt.sent") == 2

    # Staff refund the first charge in Square's dashboard: the patient is told, for that charge.
    made = standin.create_dashboard_refund(first["id"], 12500, reason="charged twice")
    deliver(client, standin, "refund.created", made)
    standin.complete_refund(made["id"])
    deliver(client, standin, "refund.updated", standin.refunds[made["id"]])
    [notice] = receipt_emails(tmp_path, "refund")
    assert f"(receipt {first['receipt_number']})" in notice and "$0.00 remains paid" in notice
    assert len(receipt_emails(tmp_path)) == 2, "no receipt sent again"


def test_run_jobs_finds_a_charge_recorded_canceled_and_alerts_when_the_link_was_paid_again(
    app, admin, client, runner, link_factory, standin
):
    link = link_factory()
    first = charged_but_recorded_canceled(app, client, link, standin)
    assert "Payment received" in submit_card(client, link.path).text
    assert "1 paid" in run_jobs(app, runner)
    assert len(standin.charges) == 2  # found by listing payments, never charged again
    status, _, pays = local(app, link.id)
    assert status == "paid" and ("completed", first["id"]) in pays
    assert [first["id"] in d for d in paid_twice_events(app)] == [True]
    assert "Paid twice — refund one" in admin.get(f"/links/{link.id}").text
    assert "0 paid" in run_jobs(app, runner)  # settled once


def test_run_jobs_finds_a_charge_recorded_canceled_and_marks_the_open_link_paid(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    charged_but_recorded_canceled(app, client, link, standin)
    assert "1 paid" in run_jobs(app, runner)
    assert assert_charge_matches_link(app, standin, link) == "paid"
    assert paid_twice_events(app) == []


def test_run_jobs_leaves_a_canceled_attempt_with_no_charge_alone(
    app, client, runner, link_factory, standin
):
    link = link_factory()
    standin.inject("timeout_no_charge", delay=1.5)
    submit_card(client, link.path)
    with app.app_context():
        s = get_session()
        s.execute(Payment.__table__.update().values(status="cancelled"))
        s.execute(PaymentLink.__table__.update().values(claim_key=None, claimed_at=None))
        s.commit()
    assert "0 paid" in run_jobs(app, runner)
    assert standin.charges == [] and not creates(standin)[1:]  # nothing re-sent, nothing charged
    assert assert_charge_matches_link(app, standin, link) == "open"


# --- wallets (issue 11): a wallet token is a card nonce to CreatePayment ---------------------


def test_a_wallet_token_pays_through_square_with_the_card_wire_format(
    app, client, link_factory, standin
):
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


def test_a_spanish_google_pay_payment_through_square_names_the_wallet_in_spanish(
    app, client, link_factory, standin
):
    """Square's payment shows a wallet charge as a card: the receipt names the wallet the
    patient pressed (issue 11), in the link's language, and Square sees no extra field."""
    link = link_factory(language="es")
    paid = submit_card(
        client, link.path, nonce="cnon:demo-google-pay-ok", extra={"wallet": "google_pay"}
    )
    assert "Su pago fue recibido" in paid.text
    assert "Google Pay (Visa terminada en " in paid.text
    [body] = creates(standin)
    assert "wallet" not in json.dumps(body).lower()


def test_a_declined_wallet_token_counts_as_a_decline(app, client, link_factory, standin):
    link = link_factory()
    response = submit_card(client, link.path, nonce="cnon:demo-wallet-declined")
    assert "declined by your bank" in response.text
    status, _claim, _pays = local(app, link.id)
    assert status == "open"
    with app.app_context():
        assert get_session().get(PaymentLink, link.id).decline_count == 1


def test_the_pay_page_admits_google_pay_and_the_payment_feature_only_there(client, link_factory):
    link = link_factory()
    page = client.get(link.path)
    directives = dict(
        part.strip().split(" ", 1) for part in page.headers["Content-Security-Policy"].split(";")
    )
    script = [s for s in directives["script-src"].split() if not s.startswith("'nonce-")]
    assert script == ["'self'", "https://sandbox.web.squarecdn.com", "https://pay.google.com"]
    assert directives["connect-src"].split() == [
        "'self'",
        "https://sandbox.web.squarecdn.com",
        "https://pci-connect.squareupsandbox.com",
        "https://connect.squareupsandbox.com",
        "https://o160250.ingest.sentry.io",
        "https://pay.google.com",
    ]
    permissions = [p.strip() for p in page.headers["Permissions-Policy"].split(",")]
    assert 'payment=(self "https://sandbox.web.squarecdn.com")' in permissions
    assert 'id="wallet-buttons"' in page.text
    for path in ("/login", "/pay", WELL_KNOWN_APPLE):
        other = client.get(path)
        assert "pay.google.com" not in other.headers["Content-Security-Policy"]
        assert "payment=()" in other.headers["Permissions-Policy"]
    submit_card(client, link.path)
    paid = client.get(link.path)
    assert "pay.google.com" not in paid.headers["Content-Security-Policy"]
    assert 'id="wallet-buttons"' not in paid.text


WELL_KNOWN_APPLE = "/.well-known/apple-developer-merchantid-domain-association"
