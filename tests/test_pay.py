"""The patient's page over HTTP: every link state, paying, declines, replays, races, CSRF."""

import re
import threading
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from payapp.db import get_session
from payapp.models import Payment, PaymentLink

from .conftest import open_pay_page, submit_card


def link_row(app, link_id) -> PaymentLink:
    with app.app_context():
        return get_session().get(PaymentLink, link_id)


def test_patient_page_shows_what_the_patient_needs_and_no_more(client, link_factory):
    link = link_factory(description="extraction, tooth 30")
    html = client.get(link.path).text
    for expected in (
        "Bright Smile Dental",
        "$125.00",
        "INV-1001",
        "Hi Jane,",
        "(212) 555-0100",
        "Card details go straight to our payment processor, Square; this clinic "
        "never sees your card number.",
        "Secure payment",
        "Pay $125.00",
        'id="card-container"',
        "Demo mode",
    ):
        assert expected in html, expected
    assert "Doe" not in html  # first name only
    assert "extraction" not in html  # the staff-only description never reaches the patient
    assert "jane@example.com" not in html


def test_the_card_field_sits_outside_the_region_htmx_swaps(client, link_factory):
    html = client.get(link_factory().path).text
    form_start, result_start = html.index('id="pay-form"'), html.index('id="pay-result"')
    assert html.index('id="card-container"') < result_start
    assert form_start < result_start
    assert 'hx-target="#pay-result"' in html and 'hx-trigger="card-tokenized"' in html


def test_the_pay_form_posts_only_a_token_a_zip_code_an_attempt_key_and_the_wallet(
    client, link_factory
):
    html = client.get(link_factory().path).text
    form = html[
        html.index('<form id="pay-form"') : html.index("</form>", html.index('id="pay-form"'))
    ]
    names = set(re.findall(r'\sname="([^"]+)"', form))
    # "wallet" only names the wallet button on the receipt (issue 11); never an amount.
    assert names == {"csrf_token", "source_id", "postal_code", "attempt_key", "wallet"}


def test_paying_swaps_in_a_receipt_and_marks_the_link_paid(app, client, link_factory, gateway):
    link = link_factory()
    response = submit_card(client, link.path)
    assert response.status_code == 200
    assert "Payment received" in response.text and "Visa ending 1111" in response.text
    assert "$125.00" in response.text and "Receipt number" in response.text
    assert 'id="pay-form-section" hx-swap-oob="true" hidden' in response.text  # form retired
    assert response.headers["Vary"].startswith("HX-Request") or "HX-Request" in response.vary
    assert "<html" not in response.text  # a fragment, not a page
    assert link_row(app, link.id).status == "paid"
    assert len(gateway.charges) == 1


def test_a_paid_link_shows_its_receipt_and_cannot_be_paid_again(client, link_factory, gateway):
    link = link_factory()
    submit_card(client, link.path)
    html = client.get(link.path).text
    assert "Payment received" in html and 'id="pay-form"' not in html
    # A second tab that still had the form open:
    again = submit_card(client, link.path, page=open_pay_page_from_before(client, link))
    assert "already been paid" in again.text
    assert len(gateway.charges) == 1


def open_pay_page_from_before(client, link):
    """A page as it looked before payment: same session's CSRF token, a made-up fresh attempt."""
    from .conftest import PayPage, csrf_from

    html = client.get(link.path).text
    return PayPage(html, csrf_from(html), "fresh-attempt-key-123456")


@pytest.mark.parametrize(
    ("nonce", "words"),
    [
        ("cnon:card-nonce-declined", "declined by your bank"),
        ("cnon:card-nonce-rejected-cvv", "security code (CVV) did not match"),
        ("cnon:card-nonce-rejected-postalcode", "ZIP code did not match"),
        ("cnon:card-nonce-rejected-expiration", "expiration date did not match"),
        ("cnon:gift-card-nonce-insufficient-funds", "insufficient funds"),
    ],
)
def test_a_decline_is_shown_in_plain_words_with_a_retry(app, client, link_factory, nonce, words):
    link = link_factory()
    page = open_pay_page(client, link.path)
    response = submit_card(client, link.path, nonce=nonce, page=page)
    assert response.status_code == 200
    assert "you were not charged" in response.text and words in response.text
    # A fresh attempt key comes back out of band, so the retry is a new attempt.
    new_key = re.search(r'id="attempt-key" value="([^"]+)" hx-swap-oob="true"', response.text)[1]
    assert new_key != page.attempt_key
    assert 'id="pay-form-section" hx-swap-oob' not in response.text  # form stays for the retry
    assert link_row(app, link.id).status == "open"


def test_a_retry_after_a_decline_pays(app, client, link_factory, gateway):
    link = link_factory()
    page = open_pay_page(client, link.path)
    declined = submit_card(client, link.path, nonce="cnon:card-nonce-declined", page=page)
    page.attempt_key = re.search(r'id="attempt-key" value="([^"]+)"', declined.text)[1]
    paid = submit_card(client, link.path, page=page)
    assert "Payment received" in paid.text
    assert len(gateway.charges) == 2
    assert link_row(app, link.id).decline_count == 1


def test_a_double_click_charges_once(app, client, link_factory, gateway):
    link = link_factory()
    page = open_pay_page(client, link.path)
    first = submit_card(client, link.path, page=page)
    second = submit_card(client, link.path, page=page)
    assert "Payment received" in first.text and "Payment received" in second.text
    assert len(gateway.charges) == 1


def test_five_declines_lock_the_link_and_the_page_says_whom_to_call(
    app, client, link_factory, gateway
):
    link = link_factory()
    for _ in range(5):
        response = submit_card(client, link.path, nonce="cnon:card-nonce-declined")
    assert "locked" in response.text and "(212) 555-0100" in response.text
    page = client.get(link.path)
    assert page.status_code == 410 and "This payment link is locked" in page.text
    assert 'id="pay-form"' not in page.text
    assert len(gateway.charges) == 5


def test_the_browser_cannot_choose_the_amount(app, client, link_factory, gateway):
    link = link_factory()
    submit_card(
        client, link.path, extra={"amount": "1.00", "amount_cents": "100", "amount_money": "100"}
    )
    assert gateway.charges[0].amount_cents == 12500
    with app.app_context():
        assert get_session().scalar(select(Payment.amount_cents)) == 12500


@pytest.mark.parametrize("state", ["expired", "cancelled"])
def test_closed_links_show_a_clear_page_with_the_clinic_phone(app, client, link_factory, state):
    link = link_factory()
    with app.app_context():
        row = get_session().get(PaymentLink, link.id)
        row.status = state
        get_session().commit()
    response = client.get(link.path)
    assert response.status_code == 410
    assert (
        f"This payment link {'has expired' if state == 'expired' else 'was cancelled'}"
        in response.text
    )
    assert "(212) 555-0100" in response.text and 'id="pay-form"' not in response.text


def test_a_link_past_its_expiry_cannot_be_paid_even_if_the_page_was_open(
    app, client, link_factory, gateway
):
    link = link_factory(expires_in_days="1")
    page = open_pay_page(client, link.path)
    with time_machine.travel(timedelta(days=1, minutes=1)):
        response = submit_card(client, link.path, page=page)
    assert "expired" in response.text and "Payment received" not in response.text
    assert gateway.charges == []


@pytest.mark.parametrize(
    "mangle",
    [lambda t: t[:-2] + "xx", lambda t: t[:10], lambda t: "A" + t, lambda t: "not-a-token"],
)
def test_tampered_tokens_get_a_generic_404_that_reveals_nothing(client, link_factory, mangle):
    link = link_factory()
    response = client.get(f"/pay/{mangle(link.token)}")
    unknown_path = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.text
    for secret in ("Jane", "125.00", "INV-1001", "expired", "cancelled"):
        assert secret not in response.text
    # The same page as for any unknown address (modulo the per-request CSRF/nonce values).
    strip = re.compile(r'(content|nonce)="[^"]+"')
    assert strip.sub("", response.text) == strip.sub("", unknown_path.text)


def test_posting_to_a_tampered_token_is_a_404_and_charges_nothing(client, link_factory, gateway):
    link = link_factory()
    page = open_pay_page(client, link.path)
    response = submit_card(client, f"/pay/{link.token[:-3]}abc", page=page)
    assert response.status_code == 404 and gateway.charges == []


def test_a_post_without_csrf_token_is_refused_and_changes_nothing(
    app, client, link_factory, gateway
):
    link = link_factory()
    page = open_pay_page(client, link.path)
    response = client.post(
        link.path, data={"source_id": "cnon:card-nonce-ok", "attempt_key": page.attempt_key}
    )
    assert response.status_code == 400
    assert "expired or came from somewhere else" in response.text
    assert gateway.charges == [] and link_row(app, link.id).status == "open"


def test_a_post_with_a_wrong_csrf_token_is_refused(client, link_factory, gateway):
    link = link_factory()
    page = open_pay_page(client, link.path)
    page.csrf = "ImZha2UtdG9rZW4i.AAAAAA.bad-signature"
    response = submit_card(client, link.path, page=page)
    assert response.status_code == 400 and gateway.charges == []
    assert response.headers.get("HX-Retarget") == "#flash"


def test_a_tab_left_open_for_hours_can_still_pay(client, link_factory, gateway):
    link = link_factory()
    page = open_pay_page(client, link.path)
    with time_machine.travel(timedelta(hours=6)):
        response = submit_card(client, link.path, page=page)
    assert "Payment received" in response.text


def test_a_missing_card_token_gets_a_clear_message(client, link_factory, gateway):
    link = link_factory()
    response = submit_card(client, link.path, nonce="")
    assert "Enter your card details" in response.text and gateway.charges == []


def test_oversized_fields_are_refused_without_a_charge(client, link_factory, gateway):
    link = link_factory()
    response = submit_card(client, link.path, nonce="cnon:" + "x" * 300)
    assert "Enter your card details" in response.text
    huge = submit_card(client, link.path, extra={"padding": "x" * 100_000})
    assert huge.status_code == 413
    assert gateway.charges == []


def test_script_in_the_zip_code_is_refused_and_never_echoed(client, link_factory, gateway):
    link = link_factory()
    response = submit_card(client, link.path, postal_code="<script>alert(1)</script>")
    assert "Enter your ZIP code" in response.text
    assert "<script>alert(1)" not in response.text
    assert gateway.charges == []


def test_first_view_is_recorded_once(app, client, link_factory):
    link = link_factory()
    client.get(link.path)
    first = link_row(app, link.id).first_viewed_at
    client.get(link.path)
    assert first is not None and link_row(app, link.id).first_viewed_at == first


def test_twenty_patients_submitting_at_once_make_one_charge(app, link_factory, gateway):
    """Separate browsers (clients), each with its own session and attempt key."""
    link = link_factory()
    clients = [app.test_client() for _ in range(20)]
    pages = [open_pay_page(c, link.path) for c in clients]
    barrier = threading.Barrier(len(clients))
    texts = [None] * len(clients)

    def go(i):
        barrier.wait()
        texts[i] = submit_card(clients[i], link.path, page=pages[i]).text

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum("Payment received" in t for t in texts) == 1
    others = [t for t in texts if "Payment received" not in t]
    assert all("already in progress" in t or "already been paid" in t for t in others)
    assert len(gateway.charges) == 1
    with app.app_context():
        assert get_session().scalar(select(func.count()).select_from(Payment)) == 1


def statements_of(app, request) -> list[str]:
    """The SQL statements one request runs."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    engine = app.extensions["payapp.engine"]
    event.listen(engine, "before_cursor_execute", record)
    try:
        request()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def test_an_open_links_page_reads_only_the_link(app, client, link_factory):
    # Every patient request pays for each query (bench/load.py): neither the link's payments
    # (an unpaid link has no completed one) nor its messages (staff pages only) are loaded.
    link = link_factory()
    client.get(link.path)  # the first view records itself
    statements = statements_of(app, lambda: client.get(link.path))
    assert len(statements) == 1 and "FROM payment_link" in statements[0]


def test_a_paid_links_page_still_loads_its_payment_for_the_receipt(app, client, link_factory):
    link = link_factory()
    submit_card(client, link.path)
    statements = statements_of(app, lambda: client.get(link.path))
    assert any("FROM payment " in s for s in statements)
    assert not any("FROM message" in s for s in statements)
    assert "Payment received" in client.get(link.path).text


def test_a_closed_link_asks_for_a_call_in_one_sentence_then_offers_the_call(
    app, client, link_factory
):
    # Cancelled: no "Send me a new link" (an expired or locked one offers it, then the call).
    link = link_factory()
    with app.app_context():
        get_session().get(PaymentLink, link.id).status = "cancelled"
        get_session().commit()
    html = client.get(link.path).text
    assert (
        '<p class="call">Call <strong>Bright Smile Dental</strong> and ask for a new link or to pay'
        " by phone.</p>"
    ) in html
    assert re.search(r'<a class="button" href="tel:[^"]+">Call \(212\) 555-0100</a>', html)
