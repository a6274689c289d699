"""Pay by statement number: GET/POST /pay and lookup.find_by_statement()."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from payapp import errors, links, lookup, notify
from payapp.clinic import Clinic
from payapp.db import get_session
from payapp.links import cancel_link
from payapp.models import AuditEvent, PaymentLink, utcnow

from .conftest import audit_actions, csrf_from, staff_post

NOT_FOUND = "We couldn't find an open bill with those details."


def find(client, statement, last_name, *, address="203.0.113.9", csrf=None):
    csrf = csrf or csrf_from(client.get("/pay").text)
    return client.post(
        "/pay",
        data={"csrf_token": csrf, "statement": statement, "last_name": last_name},
        environ_base={"REMOTE_ADDR": address},
    )


def lookup_events(app) -> list[AuditEvent]:
    with app.app_context():
        return list(
            get_session().scalars(
                select(AuditEvent)
                .where(AuditEvent.action.like("pay.lookup%"))
                .order_by(AuditEvent.id)
            )
        )


# --- matching (the domain function) -----------------------------------------------------------


def found_id(app, statement, last_name):
    with app.app_context():
        link = lookup.find_by_statement(get_session(), lookup.clean_query(statement, last_name))
        return link.id if link else None


def test_the_statement_and_last_name_find_the_open_link(app, link_factory):
    link = link_factory(reference="ST-1234", patient_name="María José Peña")
    link_factory(reference="ST-1235", patient_name="María José Peña")
    assert found_id(app, "ST-1234", "Peña") == link.id
    # Trimmed, any case, accents optional.
    assert found_id(app, "  st-1234 ", "PENA") == link.id
    assert found_id(app, "St-1234", "pena ") == link.id


def test_a_prefix_or_a_longer_number_does_not_match(app, link_factory):
    link_factory(reference="ST-1234", patient_name="Jane Doe")
    assert found_id(app, "ST-123", "Doe") is None
    assert found_id(app, "ST-12345", "Doe") is None
    assert found_id(app, "ST", "Doe") is None
    assert found_id(app, "%", "Doe") is None


def test_only_the_last_name_matches_not_the_first_or_part_of_it(app, link_factory):
    link_factory(reference="ST-1", patient_name="Jane Q Doe")
    assert found_id(app, "ST-1", "Jane") is None
    assert found_id(app, "ST-1", "Do") is None
    assert found_id(app, "ST-1", "Jane Q Doe") is not None  # what was typed: its last word


def test_closed_and_expired_links_do_not_match(app, link_factory):
    cancelled = link_factory(reference="ST-9", patient_name="Jane Doe")
    link_factory(reference="ST-10", patient_name="Jane Doe", expires_in_days="1")
    with app.app_context():
        session = get_session()
        cancel_link(session, session.get(PaymentLink, cancelled.id), staff_id=None)
    assert found_id(app, "ST-9", "Doe") is None
    with time_machine.travel(utcnow() + timedelta(days=2)):
        assert found_id(app, "ST-10", "Doe") is None


def test_of_several_open_links_the_newest_matching_one_is_taken(app, link_factory):
    link_factory(reference="ST-5", patient_name="Jane Doe")
    newer = link_factory(reference="ST-5", patient_name="John Doe")
    link_factory(reference="ST-5", patient_name="Ann Smith")
    assert found_id(app, "ST-5", "doe") == newer.id


def test_empty_or_oversized_input_is_refused_with_the_patients_message():
    with pytest.raises(lookup.LookupInputError) as caught:
        lookup.clean_query(" ", "x" * 121)
    assert caught.value.errors == {
        "statement": "Enter the statement number from your paper statement.",
        "last_name": "A last name is at most 120 characters.",
    }
    with pytest.raises(lookup.LookupInputError) as caught:
        lookup.clean_query("ST-1", "")
    assert caught.value.errors == {"last_name": "Enter the patient's last name or ZIP code."}
    with pytest.raises(lookup.LookupInputError) as caught:
        lookup.clean_query("S" * 41, "Doe")
    assert "at most 40 characters" in caught.value.errors["statement"]


def test_every_lookup_is_audited_without_the_name(app, link_factory):
    link = link_factory(reference="ST-77", patient_name="Jane Doe")
    found_id(app, "ST-77", "Doe")
    found_id(app, "ST-77", "Smithers")
    found_id(app, "NOPE-" + "9" * 35, "Smithers")
    found_id(app, "ST\x1b[2J-1\u202e", "Doe")
    events = lookup_events(app)
    assert [(e.action, e.link_id, e.detail, e.actor) for e in events] == [
        ("pay.lookup_found", link.id, "statement ST-77", "patient"),
        ("pay.lookup_failed", None, "statement ST-77", "patient"),
        ("pay.lookup_failed", None, "statement NOPE-" + "9" * 35, "patient"),
        ("pay.lookup_failed", None, "statement ST[2J-1", "patient"),
    ]
    assert not any("Doe" in e.detail or "Smithers" in e.detail for e in events)


# --- the page ------------------------------------------------------------------------------------


def test_the_page_asks_for_the_statement_number_and_last_name(client):
    response = client.get("/pay")
    assert response.status_code == 200
    html = response.text
    assert '<label for="statement">Statement number</label>' in html
    assert '<label for="last_name">Last name or ZIP code</label>' in html
    assert 'method="post" action="/pay"' in html and 'name="csrf_token"' in html
    assert "<script>" not in html  # works without JS: a plain form


def test_found_lands_on_that_links_own_page(client, link_factory):
    link_factory(reference="ST-1", patient_name="Jane Doe")
    link = link_factory(reference="ST-2", patient_name="Jane Doe", amount="80.00")
    response = find(client, "st-2", "doe")
    assert response.status_code == 303
    assert response.headers["Location"] == link.path
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and "$80.00" in page.text and "ST-2" in page.text


def normalized(response) -> str:
    """The answer without what differs per request by design: CSRF token and CSP nonce."""
    html = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+', r"\1X", response.text)
    html = re.sub(r'(name="csrf-token" content=")[^"]+', r"\1X", html)
    return re.sub(r'nonce="[^"]+"', 'nonce="X"', html)


def test_unknown_wrong_name_and_closed_answers_are_identical(app, client, link_factory):
    link_factory(reference="ST-OPEN", patient_name="Jane Doe")
    closed = link_factory(reference="ST-SHUT", patient_name="Jane Doe")
    paid_like = link_factory(reference="ST-OLD", patient_name="Jane Doe", expires_in_days="1")
    with app.app_context():
        session = get_session()
        cancel_link(session, session.get(PaymentLink, closed.id), staff_id=None)
    with time_machine.travel(utcnow() + timedelta(hours=30), tick=False):
        answers = [
            find(client, "ST-NONE", "Doe"),  # no such statement
            find(client, "ST-OPEN", "Smith"),  # wrong name
            find(client, "ST-SHUT", "Doe"),  # cancelled
            find(client, "ST-OLD", "Doe"),  # expired
        ]
    assert paid_like.id
    assert {r.status_code for r in answers} == {404}
    assert len({normalized(r) for r in answers}) == 1
    assert NOT_FOUND in answers[0].text and "(212) 555-0100" in answers[0].text
    assert 'role="alert"' in answers[0].text
    # Nothing typed comes back: the form is empty again.
    assert "ST-NONE" not in answers[0].text and "Smith" not in answers[1].text
    assert audit_actions(app).count("pay.lookup_failed") == 4


def test_script_or_oversized_input_gets_a_clear_error_and_changes_nothing(app, client):
    before = audit_actions(app)
    response = find(client, "<script>alert(1)</script>" * 3, "")
    assert response.status_code == 422
    assert "at most 40 characters" in response.text
    assert "Enter the patient&#39;s last name or ZIP code." in response.text
    assert "<script>alert" not in response.text
    assert 'aria-invalid="true"' in response.text and 'role="alert"' in response.text
    huge = find(client, "S" * 5000, "D" * 5000)
    assert huge.status_code == 422 and "too long" in huge.text
    assert audit_actions(app) == before


def test_a_lookup_without_the_csrf_token_is_refused(app, client, link_factory):
    link_factory(reference="ST-1", patient_name="Jane Doe")
    response = client.post("/pay", data={"statement": "ST-1", "last_name": "Doe"})
    assert response.status_code == 400
    assert lookup_events(app) == []


# --- limits --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def rate_limit_events_start_afresh(monkeypatch):
    # errors.py records one ratelimit.hit per address and minute in a module-level dict.
    monkeypatch.setattr(errors, "_last_recorded", {})


@pytest.mark.parametrize("config_overrides", [{"RATELIMIT_ENABLED": True}])
def test_one_address_gets_five_lookups_a_minute_then_a_clear_429(app, client, link_factory):
    link_factory(reference="ST-1", patient_name="Jane Doe")
    csrf = csrf_from(client.get("/pay").text)
    with time_machine.travel(utcnow(), tick=False):
        codes = [find(client, f"ST-{i}", "Doe", csrf=csrf).status_code for i in range(5)]
        refused = find(client, "ST-1", "Doe", csrf=csrf)
        other_address = find(client, "ST-1", "Doe", csrf=csrf, address="198.51.100.4")
    assert codes == [404, 303, 404, 404, 404]
    assert refused.status_code == 429 and "Too many attempts" in refused.text
    assert "call the clinic" in refused.text
    assert other_address.status_code == 303
    assert audit_actions(app).count("ratelimit.hit") == 1
    assert len(lookup_events(app)) == 6  # the refused one never looked


@pytest.mark.parametrize(
    "config_overrides", [{"RATELIMIT_ENABLED": True, "RATELIMIT_PAY_LOOKUP_GLOBAL": "3 per hour"}]
)
def test_all_addresses_together_share_the_global_lookup_limit(app, client, link_factory):
    link_factory(reference="ST-1", patient_name="Jane Doe")
    csrf = csrf_from(client.get("/pay").text)
    with time_machine.travel(utcnow(), tick=False):
        codes = [
            find(client, "ST-1", "Doe", csrf=csrf, address=f"198.51.100.{i}").status_code
            for i in range(5)
        ]
    assert codes == [303, 303, 303, 429, 429]
    assert len(lookup_events(app)) == 3


# --- telling patients the option exists -------------------------------------------------------


def test_the_pay_page_footer_names_the_address_and_statement(client, link_factory):
    link = link_factory(reference="ST-1234")
    html = client.get(link.path).text
    assert (
        "Prefer not to click links? Go to <strong>http://localhost/pay</strong> and enter "
        "statement <strong>ST-1234</strong>." in html
    )
    without = link_factory(reference="")
    assert "Prefer not to click links?" not in client.get(without.path).text


def test_the_link_email_names_the_address_and_statement(app, link_factory):
    link = link_factory(reference="ST-1234")
    with app.app_context():
        stored = get_session().get(PaymentLink, link.id)
        message = notify.compose_email(
            app.jinja_env,
            stored,
            "https://pay.brightsmile.example/pay/" + link.token,
            Clinic.from_config(app.config),
            "billing@example.com",
        )
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert (
        "Prefer not to click links? Go to https://pay.brightsmile.example/pay and enter "
        "statement ST-1234.\n" in text
    )
    assert "Go to <strong>https://pay.brightsmile.example/pay</strong> and enter statement" in html
    assert "\n\n\n" not in text


def test_the_timing_bench_prints_every_outcome_as_a_ratio(capsys):
    from bench import lookup_timing

    assert lookup_timing.main(["--links", "6", "--rounds", "3"]) == 0
    out = capsys.readouterr().out
    outcomes = (
        "unknown statement",
        "wrong name",
        "wrong ZIP",
        "cancelled link",
        "found",
        "found by ZIP",
    )
    for outcome in outcomes:
        assert re.search(rf"^{outcome} +\d+\.\d+ +\d+\.\d+ +\d+\.\d+$", out, re.M), outcome
    assert re.search(r"^unknown statement .* 1\.000$", out, re.M)


@pytest.mark.sqlite_only
def test_the_lookup_reads_the_statement_index_not_every_link(app, link_factory):
    link_factory(reference="ST-1")
    with app.app_context():
        connection = get_session().connection()
        compiled = lookup.CANDIDATES.compile(connection)
        params = compiled.construct_params({"statement": "st-1", "now": utcnow()})
        sql = "EXPLAIN QUERY PLAN " + str(compiled)
        plan = " ".join(
            str(row[-1])
            for row in connection.exec_driver_sql(
                sql, tuple(params[name] for name in compiled.positiontup)
            )
        )
    assert "ix_payment_link_reference_lower" in plan, plan


# --- the ZIP code instead of the last name ----------------------------------------------------


def test_the_zip_code_finds_the_link_as_the_last_name_does(app, link_factory):
    link = link_factory(reference="ST-300", patient_name="Ana Ruiz", postal_code="10027")
    assert found_id(app, "ST-300", "10027") == link.id
    assert found_id(app, "st-300", " 10027-1234 ") == link.id  # ZIP+4 typed: the first 5 count
    assert found_id(app, "ST-300", "10027 1234") == link.id
    assert found_id(app, "ST-300", "Ruiz") == link.id  # the name still works
    assert found_id(app, "ST-300", "10028") is None
    assert found_id(app, "ST-301", "10027") is None  # the ZIP alone finds nothing


def test_a_link_without_a_zip_code_is_found_by_last_name_only(app, link_factory):
    link = link_factory(reference="ST-301", patient_name="Ana Ruiz")
    assert found_id(app, "ST-301", "Ruiz") == link.id
    for typed in ("00000", "10027", "12345-0000"):
        assert found_id(app, "ST-301", typed) is None, typed


def test_of_two_links_on_one_statement_the_zip_picks_its_own(app, link_factory):
    bronx = link_factory(reference="ST-302", patient_name="Ana Ruiz", postal_code="10451")
    link_factory(reference="ST-302", patient_name="Ana Ruiz", postal_code="10027")
    assert found_id(app, "ST-302", "10451") == bronx.id


def test_digits_that_are_no_zip_code_get_the_patients_message(client):
    for typed in ("1234", "123456", "12-345", "1234567890"):
        with pytest.raises(lookup.LookupInputError) as caught:
            lookup.clean_query("ST-1", typed)
        assert caught.value.errors == {"last_name": "A ZIP code has 5 digits, like 12345."}
    response = find(client, "ST-1", "1234")
    assert response.status_code == 422
    assert "A ZIP code has 5 digits, like 12345." in response.text
    # A name with a digit in it is still a name.
    assert lookup.clean_query("ST-1", "Smith 3rd") == lookup.StatementQuery("ST-1", "Smith 3rd")
    assert lookup.clean_query("ST-1", "10027-1234") == lookup.StatementQuery("ST-1", "", "10027")


def test_wrong_zip_wrong_name_and_unknown_answers_are_identical(app, client, link_factory):
    link_factory(reference="ST-Z", patient_name="Jane Doe", postal_code="10027")
    link_factory(reference="ST-N", patient_name="Jane Doe")
    answers = [
        find(client, "ST-NONE", "10027"),  # no such statement
        find(client, "ST-Z", "10028"),  # wrong ZIP
        find(client, "ST-Z", "Smith"),  # wrong name
        find(client, "ST-N", "10027"),  # that link has no ZIP
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({normalized(r) for r in answers}) == 1
    assert "10028" not in answers[1].text
    events = lookup_events(app)
    assert [e.action for e in events] == ["pay.lookup_failed"] * 4
    assert not any("1002" in e.detail for e in events)  # the ZIP is never recorded


def test_a_name_and_a_zip_lookup_make_the_same_comparisons(app, link_factory, monkeypatch):
    """Both details are compared for every candidate whichever was typed, and a dummy when no
    link has the number: the work does not depend on the answer or the kind of detail."""
    for _ in range(3):
        link_factory(reference="ST-400", patient_name="Ana Ruiz", postal_code="10027")
    calls = []
    real = lookup.hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(lookup.hmac, "compare_digest", counting)
    counts = {}
    for name, statement, typed in [
        ("name found", "ST-400", "Ruiz"),
        ("name wrong", "ST-400", "Smith"),
        ("zip found", "ST-400", "10027"),
        ("zip wrong", "ST-400", "10451"),
    ]:
        calls.clear()
        found_id(app, statement, typed)
        counts[name] = len(calls)
    assert set(counts.values()) == {6}, counts  # 3 candidates x (name, ZIP)
    for typed in ("Ruiz", "10027"):
        calls.clear()
        found_id(app, "ST-NONE", typed)
        assert len(calls) == 2  # the dummy candidate, both details


def test_staff_give_the_zip_code_on_the_new_link_form(app, staff):
    form = staff.get("/links/new").text
    assert '<label for="postal_code">Patient ZIP code (for pay by statement number)</label>' in form
    fields = {
        "patient_name": "Ana Ruiz",
        "email": "ana@example.com",
        "amount": "80.00",
        "expires_in_days": "14",
        "reference": "ST-500",
        "postal_code": " 10027-1234 ",
    }
    response = staff_post(staff, "/links/new", fields, follow_redirects=True)
    assert response.status_code == 200
    assert "<dt>ZIP code</dt><dd>10027</dd>" in response.text
    with app.app_context():
        stored = get_session().scalar(select(PaymentLink.postal_code))
    assert stored == "10027"
    refused = staff_post(staff, "/links/new", {**fields, "postal_code": "1002"})
    assert refused.status_code == 422
    assert "Enter a US ZIP code like 12345 or 12345-6789, or leave it empty." in refused.text


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("", None), ("10027", "10027"), ("10027-1234", "10027"), ("100271234", "10027")],
)
def test_the_link_keeps_the_zip_as_five_digits(typed, stored):
    draft = links.LinkDraft(patient_name="Ana", amount="10", send_now=False, postal_code=typed)
    assert links.clean_draft(draft, links.LinkRules()).postal_code == stored


@pytest.mark.parametrize("typed", ["1002", "ABCDE", "10027-12", "10027-12345", "1 0027"])
def test_a_zip_that_is_not_one_is_refused(typed):
    draft = links.LinkDraft(patient_name="Ana", amount="10", send_now=False, postal_code=typed)
    with pytest.raises(links.LinkInputError) as caught:
        links.clean_draft(draft, links.LinkRules())
    assert set(caught.value.errors) == {"postal_code"}


def test_the_create_link_command_takes_a_zip_and_a_reissue_keeps_it(app, runner):
    command = ["create-link", "--amount", "40", "--name", "Luis Mora", "--reference", "ST-600"]
    with app.app_context():
        assert runner.invoke(args=[*command, "--zip", "94103-0001"]).exit_code == 0
        refused = runner.invoke(args=[*command, "--zip", "941"])
    assert refused.exit_code != 0 and "Enter a US ZIP code" in refused.output
    with app.app_context():
        session = get_session()
        link = session.scalar(select(PaymentLink).where(PaymentLink.reference == "ST-600"))
        assert link.postal_code == "94103"
        cancel_link(session, link, staff_id=None)
        new = links.reissue_link(session, link, links.LinkRules(), staff_id=None)
        assert new.postal_code == "94103"


def test_the_spanish_lookup_page_asks_for_the_name_or_zip(app):
    client = app.test_client()
    client.get("/pay?lang=es")
    html = client.get("/pay").text
    assert "Apellido o código postal (ZIP)" in html
    answer = find(client, "ST-1", "12")
    assert "El código postal (ZIP) tiene 5 dígitos, como 12345." in answer.text
