"""Staff-entered text refuses invisible characters: line and paragraph separators, bidirectional
overrides and isolates, zero-width characters. Each is refused with a message saying what to do,
and nothing is created (issue 7 §4)."""

import pytest
from sqlalchemy import select

from payapp.db import get_session
from payapp.links import LinkDraft, LinkInputError, LinkRules, clean_draft
from payapp.models import Message, PaymentLink, StaffUser
from payapp.plaintext import has_invisible_characters

from .conftest import staff_post, submit_card
from .test_refunds import post_refund, state
from .test_staff import new_link, outbox_files

INVISIBLE = {
    "line separator": "\u2028",
    "next line": "\u0085",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "zero-width space": "\u200b",
}
MESSAGE = "Remove the invisible or control characters from"


def test_every_kind_of_invisible_character_is_recognised_and_ordinary_text_is_not():
    for char in INVISIBLE.values():
        assert has_invisible_characters(f"INV{char}1001")
    for text in ("José Ñúñez-O'Brien", "李小龍", "Zoë 🦷", "INV-1001 / 2", ""):
        assert not has_invisible_characters(text)
    assert has_invisible_characters("a\nb") and not has_invisible_characters("a\nb", allow="\n")


@pytest.mark.parametrize("field", ["patient_name", "email", "phone", "reference", "description"])
@pytest.mark.parametrize("name", list(INVISIBLE))
def test_the_domain_refuses_invisible_characters_in_every_field(field, name):
    typed = {
        "patient_name": "Jane Doe",
        "email": "jane@example.com",
        "phone": "(212) 555-0123",
        "amount": "125.00",
        "reference": "INV-1001",
        "description": "cleaning",
    }
    char = INVISIBLE[name]
    typed[field] = typed[field][:3] + char + typed[field][3:]
    with pytest.raises(LinkInputError) as refused:
        clean_draft(LinkDraft(**typed), LinkRules())
    assert refused.value.errors[field].startswith(MESSAGE)


def test_the_new_link_form_refuses_invisible_characters_and_creates_nothing(app, staff):
    refused = []
    for field in ("patient_name", "reference", "email", "phone", "description"):
        for char in INVISIBLE.values():
            values = {"patient_name": "Jane Doe", "reference": "INV-1001"}
            values |= {"email": "jane@example.com", "phone": "2125550123", "description": "x-ray"}
            values[field] = values[field][:3] + char + values[field][3:]
            response = new_link(staff, **values)
            if response.status_code == 422 and MESSAGE in response.text:
                refused.append((field, char))
    assert len(refused) == 5 * len(INVISIBLE), refused
    with app.app_context():
        assert get_session().scalars(select(PaymentLink)).first() is None
        assert get_session().scalars(select(Message)).first() is None
    assert outbox_files(app) == []


def test_line_breaks_typed_in_the_description_box_are_still_fine(app, staff):
    assert new_link(staff, description="cleaning\r\nfollow-up in May").status_code == 303


@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\u2028"])
def test_a_new_staff_account_email_refuses_invisible_characters(app, admin, char):
    response = staff_post(
        admin,
        "/users/new",
        {
            "email": f"new{char}user@example.com",
            "role": "staff",
            "password": "quiet-harbor-lantern-42",
        },
    )
    assert MESSAGE in response.text
    with app.app_context():
        emails = get_session().scalars(select(StaffUser.email)).all()
    assert not any("new" in e for e in emails)


def test_a_refund_reason_refuses_invisible_characters(app, admin, client, link_factory):
    link = link_factory()
    assert "Payment received" in submit_card(client, link.path).text
    post_refund(admin, link.id, "10.00", reason="patient \u202eregaser")
    assert MESSAGE in admin.get(f"/links/{link.id}").text
    assert state(app, link.id) == ("paid", 0, 0)
