"""Charging through the domain function with the demo gateway: money rules without HTTP."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from payapp import alerts, audit, links, payments
from payapp.db import get_session
from payapp.gateways import (
    ChargeRequest,
    ChargeResult,
    GatewayDeclined,
    GatewayError,
    GatewayUnknown,
)
from payapp.gateways.demo import DemoGateway
from payapp.links import LinkDraft, LinkRules
from payapp.models import Payment, PaymentLink
from payapp.payments import PaymentError

RULES = LinkRules()
KEY = "attempt-key-0000000001"


@pytest.fixture
def link(session):
    return links.create_link(
        session,
        LinkDraft(
            patient_name="Jane Doe",
            email="jane@example.com",
            amount="125.00",
            reference="INV-7",
            description="crown prep, tooth 14",
        ),
        RULES,
    )


def charge(session, gateway, link, nonce="cnon:card-nonce-ok", key=KEY, **kw):
    return payments.charge_link(
        session, gateway, link, attempt_key=key, source_id=nonce, postal_code="94103", **kw
    )


def test_an_approved_charge_pays_the_link_with_its_own_amount(session, link):
    gateway = DemoGateway()
    payment = charge(session, gateway, link)
    assert payment.status == "completed"
    assert (payment.amount_cents, payment.card_brand, payment.card_last4) == (12500, "VISA", "1111")
    assert link.status == "paid" and link.paid_at is not None and link.claim_key is None
    sent = gateway.charges[0]
    assert sent.amount_cents == 12500 and sent.reference_id == link.public_id
    assert sent.note == "Payment for statement INV-7"
    assert "crown" not in repr(sent)  # the description never reaches Square


def test_the_idempotency_key_is_stored_before_the_gateway_is_called(session, link):
    seen = {}

    class Recording(DemoGateway):
        def create_payment(self, request):
            with session.bind.connect() as conn:  # a separate connection sees only committed rows
                seen["rows"] = conn.execute(
                    select(Payment.status).where(Payment.idempotency_key == request.idempotency_key)
                ).all()
            return super().create_payment(request)

    charge(session, Recording(), link)
    assert seen["rows"] == [("pending",)]


@pytest.mark.parametrize(
    ("nonce", "code", "words"),
    [
        ("cnon:card-nonce-declined", "GENERIC_DECLINE", "declined by your bank"),
        ("cnon:card-nonce-rejected-cvv", "CVV_FAILURE", "security code"),
        ("cnon:card-nonce-rejected-postalcode", "ADDRESS_VERIFICATION_FAILURE", "ZIP code"),
        ("cnon:card-nonce-rejected-expiration", "INVALID_EXPIRATION", "expiration date"),
        ("cnon:gift-card-nonce-insufficient-funds", "INSUFFICIENT_FUNDS", "insufficient funds"),
        ("cnon:not-a-sandbox-nonce", "CARD_TOKEN_EXPIRED", "enter your card details again"),
    ],
)
def test_each_decline_is_explained_in_plain_words_and_frees_the_link(
    session, link, nonce, code, words
):
    with pytest.raises(PaymentError) as caught:
        charge(session, DemoGateway(), link, nonce=nonce)
    assert caught.value.kind == "declined" and caught.value.code == code
    assert words in caught.value.message.lower() or words in caught.value.message
    # A bad token counts like a bank's "no": a card tester causes both (issue 7 section 2).
    assert (link.status, link.decline_count, link.claim_key) == ("open", 1, None)
    assert caught.value.payment.status == "failed"


def test_a_used_card_token_asks_for_the_card_again_and_counts_toward_the_cap(session, link):
    with pytest.raises(PaymentError) as caught:
        charge(session, DemoGateway(), link, nonce="cnon:card-nonce-already-used")
    assert caught.value.kind == "declined" and caught.value.code == "CARD_TOKEN_USED"
    assert "enter your card details again" in caught.value.message
    assert link.status == "open" and link.decline_count == 1 and link.claim_key is None


def test_a_gateway_configuration_error_tells_the_patient_nothing_was_charged(session, link):
    class Misconfigured(DemoGateway):
        def create_payment(self, request):
            raise GatewayError("UNAUTHORIZED", "AUTHENTICATION_ERROR")

    with pytest.raises(PaymentError) as caught:
        charge(session, Misconfigured(), link)
    assert caught.value.kind == "unavailable" and "Nothing was charged" in caught.value.message
    assert "UNAUTHORIZED" not in caught.value.message  # the detail is for staff, not patients
    assert link.status == "open" and link.decline_count == 0 and link.claim_key is None


def test_five_declines_lock_the_link(session, link):
    gateway = DemoGateway()
    for i in range(5):
        with pytest.raises(PaymentError):
            charge(session, gateway, link, nonce="cnon:card-nonce-declined", key=f"{KEY}-{i}")
    assert link.status == "locked" and link.decline_count == 5
    with pytest.raises(links.LinkError) as caught:
        charge(session, gateway, link, key=f"{KEY}-ok")
    assert caught.value.kind == "locked"
    assert len(gateway.charges) == 5  # the sixth never reached the gateway


def test_a_paid_link_cannot_be_paid_again(session, link):
    gateway = DemoGateway()
    charge(session, gateway, link)
    with pytest.raises(links.LinkError) as caught:
        charge(session, gateway, link, key=KEY + "-second")
    assert caught.value.kind == "paid"
    assert len(gateway.charges) == 1


def test_repeating_an_attempt_replays_its_result_without_a_second_charge(session, link):
    gateway = DemoGateway()
    first = charge(session, gateway, link)
    again = charge(session, gateway, link)
    assert again.id == first.id and len(gateway.charges) == 1


def test_a_stale_attempt_key_with_a_new_card_is_refused(session, link):
    gateway = DemoGateway()
    with pytest.raises(PaymentError):
        charge(session, gateway, link, nonce="cnon:card-nonce-declined")
    with pytest.raises(PaymentError) as caught:
        charge(session, gateway, link, nonce="cnon:card-nonce-ok")
    assert caught.value.kind == "bad_request" and "Reload" in caught.value.message
    assert len(gateway.charges) == 1


@pytest.mark.parametrize(
    ("key", "nonce", "postal"),
    [
        ("short", "cnon:card-nonce-ok", "94103"),
        (KEY, "", "94103"),
        (KEY, "x" * 256, "94103"),
        (KEY, "cnon:card-nonce-ok", "<script>"),
    ],
)
def test_malformed_submissions_change_nothing(session, link, key, nonce, postal):
    gateway = DemoGateway()
    with pytest.raises(PaymentError) as caught:
        payments.charge_link(
            session, gateway, link, attempt_key=key, source_id=nonce, postal_code=postal
        )
    assert caught.value.kind == "bad_request"
    assert gateway.charges == []
    assert session.scalar(select(func.count()).select_from(Payment)) == 0


def test_an_expired_link_cannot_be_charged(session, link):
    later = datetime.now(UTC) + timedelta(days=15)
    with pytest.raises(links.LinkError) as caught:
        charge(session, DemoGateway(), link, now=later)
    assert caught.value.kind == "expired"


def test_concurrent_submits_make_exactly_one_charge(app, link):
    """Twenty threads, each with its own session and attempt key, race for the same link."""
    slow = threading.Event()

    class SlowGateway(DemoGateway):
        def create_payment(self, request):
            slow.wait(0.2)  # hold the claim so that the others arrive while it is in flight
            return super().create_payment(request)

    gateway = SlowGateway()
    barrier = threading.Barrier(20)
    outcomes = []

    def submit(i):
        with app.app_context():
            session = get_session()
            own = session.get(PaymentLink, link.id)
            barrier.wait()
            try:
                charge(session, gateway, own, key=f"{KEY}-thread-{i:02d}")
                outcomes.append("paid")
            except PaymentError as exc:
                outcomes.append(exc.kind)
            except links.LinkError as exc:
                # A thread scheduled late (a busy machine) finds the link already paid.
                outcomes.append(f"link {exc.kind}")

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("paid") == 1
    assert set(outcomes) <= {"paid", "in_progress", "link paid"}
    assert outcomes.count("in_progress") >= 1
    assert len(gateway.charges) == 1
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Payment)) == 1


def test_an_unknown_outcome_keeps_the_link_claimed(session, link):
    class Silent(DemoGateway):
        def create_payment(self, request):
            raise GatewayUnknown("read timeout")

    with pytest.raises(PaymentError) as caught:
        charge(session, Silent(), link)
    assert caught.value.kind == "unknown" and "not be charged twice" in caught.value.message
    session.refresh(link)
    assert link.status == "open" and link.claim_key is not None
    # Another attempt must wait for reconciliation instead of charging again.
    with pytest.raises(PaymentError) as again:
        charge(session, DemoGateway(), link, key=KEY + "-retry")
    assert again.value.kind == "in_progress"


def test_the_demo_gateway_honours_idempotency_like_square():
    gateway = DemoGateway()
    request = ChargeRequest("k-1", "cnon:card-nonce-ok", 500, "USD", "ref", "note", "94103")
    first = gateway.create_payment(request)
    assert gateway.create_payment(request) == first
    changed = ChargeRequest("k-1", "cnon:card-nonce-ok", 600, "USD", "ref", "note", "94103")
    with pytest.raises(GatewayError) as caught:
        gateway.create_payment(changed)
    assert caught.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert len(gateway.charges) == 1


# --- reconciliation (demo gateway; the Square stand-in versions are in tests/integration) --------

LATER = timedelta(minutes=5)


class DroppedAfterCharge(DemoGateway):
    """Charges, then the answer is lost once (as a dropped connection would)."""

    dropped = False

    def create_payment(self, request):
        result = super().create_payment(request)
        if not self.dropped:
            self.dropped = True
            raise GatewayUnknown("connection dropped")
        return result


def unknown_attempt(session, link, gateway):
    with pytest.raises(PaymentError):
        charge(session, gateway, link)
    return session.scalar(select(Payment))


def reconcile(session, gateway):
    return payments.reconcile_unknown_payments(session, gateway, now=datetime.now(UTC) + LATER)


def test_reconciling_a_lost_answer_records_the_one_charge(session, link):
    gateway = DroppedAfterCharge()
    unknown_attempt(session, link, gateway)
    assert reconcile(session, gateway)["paid"] == 1
    session.refresh(link)
    assert link.status == "paid" and link.claim_key is None and len(gateway.charges) == 1


def test_an_uncaptured_charge_is_voided_and_the_link_opens_only_after_a_read(session, link):
    class Authorized(DemoGateway):
        status_after_cancel = "CANCELED"
        canceled = []

        def create_payment(self, request):
            approved = ChargeResult("pay-1", "APPROVED", amount_cents=request.amount_cents)
            raise GatewayUnknown("payment pay-1 is APPROVED", result=approved)

        def cancel_by_idempotency_key(self, idempotency_key):
            self.canceled.append(idempotency_key)

        def get_payment(self, payment_id):
            return ChargeResult(
                payment_id, self.status_after_cancel, updated_at="2030-01-01T00:00:00Z"
            )

    gateway = Authorized()
    payment = unknown_attempt(session, link, gateway)
    assert reconcile(session, gateway)["reopened"] == 1
    session.refresh(link)
    assert gateway.canceled == [payment.idempotency_key]
    assert (payment.status, payment.gateway_payment_id) == ("cancelled", "pay-1")
    assert link.status == "open" and link.claim_key is None


def test_a_void_that_the_read_shows_completed_marks_the_link_paid(session, link):
    class CapturedAnyway(DemoGateway):
        def create_payment(self, request):
            raise GatewayUnknown("APPROVED", result=ChargeResult("pay-2", "APPROVED"))

        def cancel_by_idempotency_key(self, idempotency_key):
            return None  # a 200 proves nothing

        def get_payment(self, payment_id):
            return ChargeResult(payment_id, "COMPLETED", card_brand="VISA", card_last4="1111")

    gateway = CapturedAnyway()
    unknown_attempt(session, link, gateway)
    assert reconcile(session, gateway)["paid"] == 1
    session.refresh(link)
    assert link.status == "paid"


@pytest.mark.parametrize("code", ["CARD_TOKEN_USED", "CARD_TOKEN_EXPIRED"])
def test_a_spent_token_on_the_resent_request_proves_nothing_and_keeps_the_link_held(
    session, link, code
):
    class Forgetful(DemoGateway):
        calls = 0

        def create_payment(self, request):
            self.calls += 1
            if self.calls == 1:
                raise GatewayUnknown("read timeout")
            raise GatewayDeclined(code, "INVALID_REQUEST_ERROR")

    gateway = Forgetful()
    payment = unknown_attempt(session, link, gateway)
    assert reconcile(session, gateway)["still_unknown"] == 1
    assert reconcile(session, gateway)["still_unknown"] == 1
    session.refresh(link)
    assert payment.status == "unknown" and link.claim_key == payment.idempotency_key
    assert alerts.active_alerts(session, "staff")[0].action == "payment.unresolved"
    assert (
        len([a for a in audit.link_timeline(session, link.id) if a.action == "payment.unresolved"])
        == 1
    )


def test_the_demo_gateway_lists_payments_created_in_a_window(session, link):
    gateway = DemoGateway()
    charge(session, gateway, link)
    now = datetime.now(UTC)
    [listed] = gateway.list_payments(now - timedelta(minutes=1), now + timedelta(minutes=1))
    assert listed.reference_id == link.public_id and listed.status == "COMPLETED"
    assert gateway.list_payments(now + timedelta(minutes=1), now + timedelta(minutes=2)) == []


# --- the decline cap under concurrency (issue 7 section 2) --------------------------------------


def record_decline_counts(app):
    """Every write of payment_link.decline_count, old and new value, as the database saw it."""
    with app.app_context(), get_session().bind.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE TABLE decline_count_log (id SERIAL PRIMARY KEY, old INT, new INT)"
            )
            conn.exec_driver_sql(
                "CREATE FUNCTION log_decline_count() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN INSERT INTO decline_count_log (old, new) "
                "VALUES (OLD.decline_count, NEW.decline_count); RETURN NULL; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER log_decline_count AFTER UPDATE OF decline_count ON payment_link "
                "FOR EACH ROW EXECUTE FUNCTION log_decline_count()"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TABLE decline_count_log (id INTEGER PRIMARY KEY, old INT, new INT)"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER log_decline_count AFTER UPDATE OF decline_count ON payment_link "
                "BEGIN INSERT INTO decline_count_log (old, new) "
                "VALUES (OLD.decline_count, NEW.decline_count); END"
            )

    def written():
        with app.app_context(), get_session().bind.connect() as conn:
            return conn.exec_driver_sql("SELECT old, new FROM decline_count_log ORDER BY id").all()

    return written


def test_thirty_two_concurrent_card_testers_reach_the_gateway_at_most_five_times(app, link):
    """32 threads, each with its own session, post declined cards to one link at once and keep
    trying (a fresh attempt, a fresh read of the link) until the link says it is locked."""
    gateway = DemoGateway()
    written = record_decline_counts(app)
    barrier = threading.Barrier(32)
    outcomes = []

    def card_tester(i):
        with app.app_context():
            session = get_session()
            for attempt in range(500):  # until told the link is locked
                session.expire_all()  # each try is a new request that reads the link afresh
                own = session.get(PaymentLink, link.id)
                if attempt == 0:
                    barrier.wait()
                try:
                    charge(
                        session, gateway, own, "cnon:card-nonce-declined", f"{KEY}-{i}-{attempt}"
                    )
                except PaymentError as exc:
                    outcomes.append(exc.kind)
                except links.LinkError as exc:
                    outcomes.append(exc.kind)
                    return

    threads = [threading.Thread(target=card_tester, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(gateway.charges) <= app.config["MAX_DECLINES"] == 5
    assert outcomes.count("declined") == len(gateway.charges) == 5
    assert outcomes.count("locked") == 32  # every tester ends up told the link is locked
    with app.app_context():
        final = get_session().get(PaymentLink, link.id)
        assert (final.status, final.decline_count, final.claim_key) == ("locked", 5, None)
    counts = written()
    assert all(new == old + 1 for old, new in counts), counts  # never down, never skipped
    assert [new for _, new in counts] == [1, 2, 3, 4, 5]


def test_a_decline_settled_by_a_request_that_read_the_link_earlier_never_lowers_the_count(
    app, link
):
    """Request A reads the link, requests B and C are declined meanwhile, then A is declined:
    the count goes 0, 1, 2, 3 (an absolute write-back from A's copy would make it 1)."""
    gateway = DemoGateway()
    written = record_decline_counts(app)
    with app.app_context():
        early = get_session()
        stale = early.get(PaymentLink, link.id)
        assert stale.decline_count == 0
        for i in range(2):
            with app.app_context():
                own = get_session().get(PaymentLink, link.id)
                with pytest.raises(PaymentError):
                    charge(get_session(), gateway, own, "cnon:card-nonce-declined", f"{KEY}-b{i}")
        with pytest.raises(PaymentError):
            charge(early, gateway, stale, "cnon:card-nonce-declined", f"{KEY}-late")
        assert stale.decline_count == 3
    assert written() == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("nonce", ["cnon:card-nonce-declined", "cnon:card-nonce-already-used"])
def test_the_attempt_after_the_cap_never_reaches_the_gateway(session, link, nonce):
    gateway = DemoGateway()
    for i in range(5):
        with pytest.raises(PaymentError) as caught:
            charge(session, gateway, link, nonce=nonce, key=f"{KEY}-cap-{i}")
        assert caught.value.kind == "declined"
    assert (link.status, link.decline_count) == ("locked", 5)
    with pytest.raises(links.LinkError) as caught:
        charge(session, gateway, link, key=f"{KEY}-cap-ok")
    assert caught.value.kind == "locked" and len(gateway.charges) == 5


def test_a_temporary_gateway_error_does_not_count_toward_the_cap(session, link):
    class Hiccup(DemoGateway):
        def create_payment(self, request):
            raise GatewayDeclined("TEMPORARY_ERROR")

    with pytest.raises(PaymentError) as caught:
        charge(session, Hiccup(), link)
    assert caught.value.kind == "declined" and "temporary problem" in caught.value.message
    assert (link.status, link.decline_count, link.claim_key) == ("open", 0, None)
