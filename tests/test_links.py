"""Links as plain domain functions: validation, tokens, states, search (no HTTP here)."""

from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import text

from payapp import links
from payapp.links import LinkDraft, LinkError, LinkInputError, LinkRules
from payapp.models import PaymentLink
from payapp.states import LinkStatus

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


def found(session, query="", status="", now=NOW, **kw) -> list[str]:
    return [
        x.patient_name
        for x in links.list_links(session, query=query, status=status, now=now, **kw).links
    ]


def test_search_finds_by_name_or_reference_newest_first(session):
    a = links.create_link(session, draft(patient_name="Ann Lee", reference="A-1"), RULES, now=NOW)
    b = links.create_link(
        session,
        draft(patient_name="Bob Ray", reference="B-2"),
        RULES,
        now=NOW + timedelta(minutes=1),
    )
    page = links.list_links(session, now=NOW)
    assert [x.id for x in page.links] == [b.id, a.id] and page.found == 2
    assert [x.id for x in links.list_links(session, query="ann", now=NOW).links] == [a.id]
    assert [x.id for x in links.list_links(session, query="b-2", now=NOW).links] == [b.id]
    # LIKE wildcards and lone punctuation are no words: they find nothing rather than everything
    for nothing in ("%", "_", "-", '"', "*"):
        assert links.list_links(session, query=nothing, now=NOW).found == 0


@pytest.fixture
def patients(session):
    people = (
        ("Maria Garcia", "ST-0012345"),
        ("Mario Smith", "ST-0012399"),
        ("Anna Smithson", "X-1"),
        ("Ann Near", "ST-7"),
        ("Seán O'Brien", "2024/77"),
        ("Zoë Müller-Lüdenscheidt", "INV-9"),
    )
    for i, (name, ref) in enumerate(people):
        links.create_link(
            session, draft(patient_name=name, reference=ref), RULES, now=NOW + timedelta(seconds=i)
        )
    return session


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("smith", ["Anna Smithson", "Mario Smith"]),  # any word, by its start
        ("SMITH mario", ["Mario Smith"]),  # every word, any order, any case
        ("Maria Garcia", ["Maria Garcia"]),
        ("gar", ["Maria Garcia"]),
        ("arcia", []),  # the middle of a word is not a word's start
        ("ST-0012345", ["Maria Garcia"]),  # statement number, exact
        ("st-00123", ["Mario Smith", "Maria Garcia"]),  # and by its start
        ("0012399", ["Mario Smith"]),
        ("2024/77", ["Seán O'Brien"]),
        ("o'brien", ["Seán O'Brien"]),
        ("brien sean", ["Seán O'Brien"]),  # accents need not be typed
        ("muller", ["Zoë Müller-Lüdenscheidt"]),
        ("lüdenscheidt", ["Zoë Müller-Lüdenscheidt"]),
    ],
)
def test_search_matches_words_of_the_name_or_statement_number(patients, query, names):
    if query in ("brien sean", "muller") and patients.get_bind().dialect.name != "sqlite":
        names = []  # only SQLite's tokenizer folds accents (docs/front-desk.md says so)
    assert found(patients, query) == names


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ('"', []),
        ('smith"', ["Anna Smithson", "Mario Smith"]),
        ('"smith', ["Anna Smithson", "Mario Smith"]),
        ("smith*", ["Anna Smithson", "Mario Smith"]),
        ("*", []),
        ("NEAR", ["Ann Near"]),  # a word here, not FTS5's NEAR operator
        ("NEAR(smith garcia)", []),
        ("smith NEAR garcia", []),
        ("smith OR garcia", []),  # OR is a word too: nobody has one starting with "or"
        ("mario NOT smith", []),
        ("-smith", ["Anna Smithson", "Mario Smith"]),
        ("- smith", ["Anna Smithson", "Mario Smith"]),
        ("^mario", ["Mario Smith"]),
        ("patient_name:mario", []),
        ("reference:st", []),
        ("smith + ( ) {} :", ["Anna Smithson", "Mario Smith"]),
        ("'; DROP TABLE payment_link; --", []),
        ("\x00mario\x1f", ["Mario Smith"]),  # control characters are spaces
        ("mario\x00", ["Mario Smith"]),
    ],
)
def test_search_syntax_typed_by_staff_is_only_text(patients, query, names):
    assert found(patients, query) == names
    assert len(found(patients)) == 6


def test_status_filter_treats_overdue_open_links_as_expired(session):
    link = links.create_link(session, draft(expires_in_days="1"), RULES, now=NOW)
    later = NOW + timedelta(days=3)
    assert links.list_links(session, status="expired", now=later).found == 1
    assert links.list_links(session, status="open", now=later).found == 0
    assert links.list_links(session, status="open", now=NOW).links[0].id == link.id


def walk(session, per_page, **kw):
    """Every page from the first, following "Older"; returns the pages' ids."""
    pages, after = [], None
    while True:
        page = links.list_links(session, after=after, per_page=per_page, now=NOW, **kw)
        pages.append([x.id for x in page.links])
        if page.older is None:
            return pages, page
        after = page.older


def test_pagination_splits_the_list(session):
    for i in range(7):
        links.create_link(session, draft(reference=f"R-{i}"), RULES, now=NOW + timedelta(seconds=i))
    first = links.list_links(session, per_page=3, now=NOW)
    assert first.found == 7 and first.newer is None
    assert [x.reference for x in first.links] == ["R-6", "R-5", "R-4"]
    second = links.list_links(session, after=first.older, per_page=3, now=NOW)
    assert [x.reference for x in second.links] == ["R-3", "R-2", "R-1"]
    assert second.newer == second.links[0].id
    last = links.list_links(session, after=second.older, per_page=3, now=NOW)
    assert [x.reference for x in last.links] == ["R-0"] and last.older is None
    back = links.list_links(session, before=last.newer, per_page=3, now=NOW)
    assert [x.reference for x in back.links] == ["R-3", "R-2", "R-1"]
    top = links.list_links(session, before=back.newer, per_page=3, now=NOW)
    assert [x.reference for x in top.links] == ["R-6", "R-5", "R-4"] and top.newer is None
    # A cursor naming no link starts at the top
    assert links.list_links(session, after=10**9, per_page=3, now=NOW).links == first.links


def test_keyset_pages_cover_every_link_once_in_order_while_links_are_added(session):
    # Several links share a creation time: the id breaks the tie, so none is skipped or repeated.
    for i in range(23):
        links.create_link(
            session, draft(reference=f"R-{i}"), RULES, now=NOW - timedelta(minutes=i // 3)
        )
    expected = [
        row.id
        for row in sorted(
            links.list_links(session, per_page=100, now=NOW).links,
            key=lambda x: (x.created_at, x.id),
            reverse=True,
        )
    ]
    seen, after, added = [], None, 0
    while True:
        page = links.list_links(session, after=after, per_page=4, now=NOW)
        seen += [x.id for x in page.links]
        # Staff keep making links (always the newest) while someone pages through.
        links.create_link(
            session, draft(reference=f"N-{added}"), RULES, now=NOW + timedelta(hours=1)
        )
        added += 1
        if page.older is None:
            break
        after = page.older
    assert seen == expected
    # Walking back up from the last page meets every link again, the new ones at the top.
    back, before = [], page.links[0].id
    while before is not None:
        page = links.list_links(session, before=before, per_page=4, now=NOW)
        back = [x.id for x in page.links] + back
        before = page.newer
    assert back[added:] == expected[: len(back) - added]
    assert len(back) == added + len(expected) - 3  # the last page itself was not read again


def test_keyset_pages_of_expired_links_merge_stored_and_overdue_ones(session):
    made = []
    for i in range(9):
        link = links.create_link(
            session,
            draft(reference=f"R-{i}", expires_in_days="1"),
            RULES,
            now=NOW + timedelta(seconds=i),
        )
        made.append(link)
    for link in made[::3]:
        links.cancel_link(session, link, staff_id=None, now=NOW)
    later = NOW + timedelta(days=3)
    assert links.expire_links(session, now=NOW + timedelta(days=2)) == 6
    for i in range(9, 12):  # overdue, not yet stored as expired
        made.append(
            links.create_link(
                session,
                draft(reference=f"R-{i}", expires_in_days="1"),
                RULES,
                now=NOW + timedelta(days=1, seconds=i),
            )
        )
    ids, after = [], None
    while True:
        page = links.list_links(session, status="expired", after=after, per_page=2, now=later)
        ids += [x.id for x in page.links]
        if page.older is None:
            break
        after = page.older
    expected = [x.id for x in reversed(made) if x not in made[:9:3]]
    assert ids == expected and page.found == 9


def fts_is_consistent(session) -> bool:
    """FTS5's own check that the index holds exactly the words of payment_link's rows (the
    PostgreSQL index is an ordinary index on the table: nothing to drift)."""
    if session.get_bind().dialect.name != "sqlite":
        return True
    session.execute(
        text("INSERT INTO payment_link_search (payment_link_search) VALUES ('integrity-check')")
    )
    return True


def test_the_search_index_follows_inserts_updates_and_deletes(session):
    link = links.create_link(
        session, draft(patient_name="Olga Petrova", reference="Q-77"), RULES, now=NOW
    )
    assert found(session, "petrova") == ["Olga Petrova"]
    link.patient_name, link.reference = "Olga Ivanova", "Q-78"
    session.commit()
    assert found(session, "petrova") == [] and found(session, "q-77") == []
    assert found(session, "ivanova q-78") == ["Olga Ivanova"]
    link.status = LinkStatus.CANCELLED  # other columns leave the index alone
    session.commit()
    assert found(session, "ivanova") == ["Olga Ivanova"] and fts_is_consistent(session)
    extra = PaymentLink(
        public_id="p" * 20,
        patient_name="Temp Person",
        amount_cents=100,
        reference="T-1",
        expires_at=NOW + timedelta(days=1),
        created_at=NOW,
    )
    session.add(extra)
    session.commit()
    assert found(session, "temp") == ["Temp Person"]
    session.delete(extra)
    session.commit()
    assert found(session, "temp") == [] and fts_is_consistent(session)
    session.execute(text("UPDATE payment_link SET patient_name = 'Raw Update'"))
    session.commit()
    session.expire_all()
    assert found(session, "raw update") == ["Raw Update"] and found(session, "olga") == []
    assert fts_is_consistent(session)


def query_plan(session, stmt) -> str:
    compiled = stmt.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    rows = session.execute(text(f"EXPLAIN QUERY PLAN {compiled}")).all()
    return " | ".join(row[-1] for row in rows)


@pytest.mark.sqlite_only  # SQLite's EXPLAIN QUERY PLAN; PostgreSQL's planner: bench/scale.py
@pytest.mark.parametrize("status", ["", "paid", "expired", "open"])
def test_each_page_of_the_list_reads_one_index_in_order_without_sorting(session, status):
    links.create_link(session, draft(), RULES, now=NOW)
    session.execute(text("ANALYZE"))
    cursor = (NOW, 1)
    for conditions in links._status_branches(status, NOW):
        for stmt in (
            links.keys_statement(conditions),
            links.keys_statement(conditions, after=cursor),
            links.keys_statement(conditions, before=cursor),
        ):
            plan = query_plan(session, stmt.limit(26))
            # An index read in the list's order (a scan stops after the page), never a sort.
            assert "TEMP B-TREE" not in plan and "INDEX ix_payment_link_" in plan, plan


def test_a_search_with_many_matches_pages_the_same_read_in_list_order(patients, monkeypatch):
    """Past SEARCH_COUNT_LIMIT matches the list's index is read newest first and each row
    tested, instead of the full-text index: the same links come back, in the same pages."""
    for i in range(7):
        links.create_link(
            patients, draft(patient_name=f"Kim Smith{i}"), RULES, now=NOW - timedelta(minutes=i)
        )
    few = walk(patients, 2, query="smith")[0]
    monkeypatch.setattr(links, "SEARCH_COUNT_LIMIT", 3)
    many, last = walk(patients, 2, query="smith")
    assert many == few and len(sum(many, [])) == 9 and last.found_more
    assert walk(patients, 2, query="smith", status="open")[0] == few
