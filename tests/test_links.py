"""Links as plain domain functions: validation, tokens, states, search (no HTTP here)."""

from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeSerializer

from payapp import links
from payapp.links import LinkDraft, LinkError, LinkInputError, LinkRules

RULES = LinkRules()
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def draft(**fields):
    values = {
        "patient_name": "Jane Q Doe",
        "email": "jane@example.com",
        "amount": "125.00",
        "reference": "INV-1001",
    }
    values.update(fields)
    return LinkDraft(**values)


# --- validation -------------------------------------------------------------------------------


def test_a_valid_draft_is_normalised():
    clean = links.clean_draft(
        draft(
            patient_name="  Jane   Doe ",
            email="Jane@Example.COM",
            phone="(212) 555-0123",
            amount="$1,250.5",
            expires_in_days="30",
        ),
        RULES,
    )
    assert clean.patient_name == "Jane Doe"
    assert clean.email == "Jane@example.com"
    assert clean.phone == "+12125550123"
    assert clean.amount_cents == 125050
    assert clean.expires_in_days == 30


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"patient_name": ""}, "patient_name", "Enter the patient's name"),
        ({"patient_name": "x" * 121}, "patient_name", "at most 120"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"email": "", "phone": ""}, "email", "email address or a mobile number"),
        ({"phone": "12345"}, "phone", "valid mobile number"),
        ({"amount": "12.345"}, "amount", "two decimal places"),
        ({"amount": "0.50"}, "amount", "at least"),
        ({"amount": "25000.01"}, "amount", "at most"),
        ({"reference": "R" * 41}, "reference", "at most 40"),
        ({"description": "d" * 201}, "description", "at most 200"),
        ({"expires_in_days": "0"}, "expires_in_days", "1 to 90"),
        ({"expires_in_days": "91"}, "expires_in_days", "1 to 90"),
        ({"expires_in_days": "two weeks"}, "expires_in_days", "1 to 90"),
        ({"reference": "INV\x00-1"}, "reference", "control"),
    ],
)
def test_each_invalid_field_gets_its_own_message(fields, field, message):
    with pytest.raises(LinkInputError) as caught:
        links.clean_draft(draft(**fields), RULES)
    assert message in caught.value.errors[field]


def test_phone_alone_is_enough_and_email_alone_is_enough():
    assert links.clean_draft(draft(email="", phone="212-555-0123"), RULES).email is None
    assert links.clean_draft(draft(phone=""), RULES).phone is None


def test_phone_numbers_use_the_configured_default_region():
    uk = LinkRules(phone_region="GB")
    assert links.clean_draft(draft(phone="020 7946 0018"), uk).phone == "+442079460018"


@pytest.mark.parametrize(("text", "days"), [("14d", 14), ("14", 14), (" 1d ", 1), ("90d", 90)])
def test_expiry_accepts_days(text, days):
    assert links.parse_expires_in(text, 90) == days


# --- tokens -----------------------------------------------------------------------------------


def test_a_signed_token_resolves_to_its_link(session, app):
    link = links.create_link(session, draft(), RULES, now=NOW)
    token = links.sign_token(link, app.config["SECRET_KEY"])
    assert links.resolve_token(session, token, app.config["SECRET_KEY"]).id == link.id
    assert "Doe" not in token and "125" not in token  # only an opaque id and the expiry


def test_tampered_tokens_resolve_to_nothing(session, app):
    secret = app.config["SECRET_KEY"]
    link = links.create_link(session, draft(), RULES, now=NOW)
    token = links.sign_token(link, secret)
    other_salt = URLSafeSerializer(secret, salt="something-else").dumps(
        [link.public_id, int(link.expires_at.timestamp())]
    )
    other_key = URLSafeSerializer("another-secret", salt=links.TOKEN_SALT).dumps(
        [link.public_id, int(link.expires_at.timestamp())]
    )
    # Same signature, later expiry: trying to stretch the link's life.
    stretched = URLSafeSerializer(secret, salt=links.TOKEN_SALT).dumps(
        [link.public_id, int(link.expires_at.timestamp()) + 86400]
    )
    candidates = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token[:-5],
        token + "x",
        other_salt,
        other_key,
        stretched,
        "",
        "x" * 500,
        "..",
        token.split(".")[0],
    ]
    for bad in candidates:
        with pytest.raises(LinkError) as caught:
            links.resolve_token(session, bad, secret)
        assert caught.value.kind == "not_found"


def test_a_token_for_an_unknown_link_resolves_to_nothing(session, app):
    secret = app.config["SECRET_KEY"]
    forged = URLSafeSerializer(secret, salt=links.TOKEN_SALT).dumps(["no-such-link", 2_000_000_000])
    with pytest.raises(LinkError):
        links.resolve_token(session, forged, secret)


# --- states -----------------------------------------------------------------------------------


def test_an_open_link_is_expired_once_its_time_passes(session):
    link = links.create_link(session, draft(expires_in_days="1"), RULES, now=NOW)
    assert links.effective_status(link, NOW + timedelta(hours=23)) == "open"
    assert links.effective_status(link, NOW + timedelta(days=1)) == "expired"
    with pytest.raises(LinkError) as caught:
        links.ensure_payable(link, NOW + timedelta(days=2))
    assert caught.value.kind == "expired"


def test_run_jobs_marks_expired_links(session):
    old = links.create_link(session, draft(expires_in_days="1"), RULES, now=NOW)
    fresh = links.create_link(session, draft(expires_in_days="5"), RULES, now=NOW)
    assert links.expire_links(session, NOW + timedelta(days=2)) == 1
    session.refresh(old)
    session.refresh(fresh)
    assert (old.status, fresh.status) == ("expired", "open")


def test_cancelling_closes_an_open_link_only(session, app):
    link = links.create_link(session, draft(), RULES, now=NOW)
    links.cancel_link(session, link, staff_id=1, now=NOW)
    assert link.status == "cancelled"
    with pytest.raises(LinkError, match="cancelled"):
        links.ensure_payable(link, NOW)
    with pytest.raises(LinkError, match="Only open links"):
        links.cancel_link(session, link, staff_id=1, now=NOW)


def test_a_link_with_a_payment_in_flight_cannot_be_cancelled(session):
    link = links.create_link(session, draft(), RULES, now=NOW)
    link.claim_key = "in-flight"
    session.commit()
    with pytest.raises(LinkError, match="in progress"):
        links.cancel_link(session, link, staff_id=1, now=NOW)
    session.refresh(link)
    assert link.status == "open"


def test_reissue_copies_details_into_a_fresh_link(session):
    old = links.create_link(session, draft(description="staff note"), RULES, now=NOW)
    with pytest.raises(LinkError, match="still open"):
        links.reissue_link(session, old, RULES, staff_id=1, now=NOW)
    links.cancel_link(session, old, staff_id=1, now=NOW)
    new = links.reissue_link(session, old, RULES, staff_id=1, now=NOW)
    assert new.id != old.id and new.public_id != old.public_id
    assert (new.amount_cents, new.email, new.reference, new.status) == (
        12500,
        old.email,
        "INV-1001",
        "open",
    )
    assert new.reissued_from_id == old.id


def test_search_finds_by_name_or_reference_newest_first(session):
    a = links.create_link(session, draft(patient_name="Ann Lee", reference="A-1"), RULES, now=NOW)
    b = links.create_link(
        session,
        draft(patient_name="Bob Ray", reference="B-2"),
        RULES,
        now=NOW + timedelta(minutes=1),
    )
    items, total = links.search_links(session, query="", now=NOW)
    assert [x.id for x in items] == [b.id, a.id] and total == 2
    assert [x.id for x in links.search_links(session, query="ann", now=NOW)[0]] == [a.id]
    assert [x.id for x in links.search_links(session, query="b-2", now=NOW)[0]] == [b.id]
    # LIKE wildcards are literal text
    assert links.search_links(session, query="%", now=NOW)[1] == 0
    assert links.search_links(session, query="_", now=NOW)[1] == 0


def test_status_filter_treats_overdue_open_links_as_expired(session):
    link = links.create_link(session, draft(expires_in_days="1"), RULES, now=NOW)
    later = NOW + timedelta(days=3)
    assert links.search_links(session, status="expired", now=later)[1] == 1
    assert links.search_links(session, status="open", now=later)[1] == 0
    assert links.search_links(session, status="open", now=NOW)[0][0].id == link.id


def test_pagination_splits_the_list(session):
    for i in range(7):
        links.create_link(session, draft(reference=f"R-{i}"), RULES, now=NOW + timedelta(seconds=i))
    page1, total = links.search_links(session, page=1, per_page=3, now=NOW)
    page3, _ = links.search_links(session, page=3, per_page=3, now=NOW)
    assert total == 7
    assert [x.reference for x in page1] == ["R-6", "R-5", "R-4"]
    assert [x.reference for x in page3] == ["R-0"]
