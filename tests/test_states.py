"""One vocabulary: the states and audit actions payapp stores, their labels, and where they show."""

import re
from pathlib import Path

import pytest

from payapp import audit
from payapp.db import get_session
from payapp.states import (
    AuditAction,
    LinkStatus,
    MessageStatus,
    PaymentStatus,
    RefundStatus,
)

PACKAGE = Path(__file__).resolve().parent.parent / "payapp"
ALL_ENUMS = (LinkStatus, PaymentStatus, RefundStatus, MessageStatus, AuditAction)


@pytest.mark.parametrize("enum", ALL_ENUMS, ids=lambda e: e.__name__)
def test_every_state_and_action_has_a_label_and_equals_its_stored_string(enum):
    for member in enum:
        assert member.label.strip(), member
        assert member == member.value and f"{member}" == member.value
        assert enum.lookup(member.value) is member
        assert enum.label_of(member.value) == member.label


def test_cancelled_is_spelled_one_way_in_every_stored_value():
    values = {member.value for enum in ALL_ENUMS for member in enum}
    assert not any("canceled" in v for v in values)
    assert PaymentStatus.CANCELLED == LinkStatus.CANCELLED == "cancelled"


def test_an_unknown_stored_value_is_shown_as_it_is():
    assert LinkStatus.lookup("nonsense") is None
    assert LinkStatus.label_of("nonsense") == "nonsense"
    assert LinkStatus.lookup(None) is None


def test_every_audit_action_is_recorded_somewhere_in_payapp():
    """The audit filter lists AuditAction, so an action nothing records is a filter for nothing."""
    source = "\n".join(p.read_text() for p in PACKAGE.rglob("*.py"))
    used = set(re.findall(r"AuditAction\.([A-Z_]+)\b", source))
    # notify.py names message actions by channel: AuditAction.message("email", MessageStatus.SENT)
    by_message = {
        AuditAction.message(channel, status).name
        for channel in ("email", "sms")
        for status in (MessageStatus.SENT, MessageStatus.FAILED)
    }
    # Retired: no longer recorded, but rows from before keep their label and their filter.
    retired = {AuditAction.DECLINES_SPIKE.name}
    assert {a.name for a in AuditAction} - used - by_message - retired == set()


def test_recording_an_action_that_does_not_exist_is_refused(app):
    with app.app_context():
        with pytest.raises(ValueError):
            audit.record(get_session(), "user.changed")
        event = audit.record(get_session(), "link.created")
        assert event.action == "link.created" and type(event.action) is str


def test_the_audit_filter_offers_exactly_the_actions_that_exist(admin):
    html = admin.get("/audit").text
    select = html[html.index('<select id="audit-action"') : html.index("</select>")]
    offered = re.findall(r'<option value="([^"]*)"', select)
    assert offered == [""] + [a.value for a in AuditAction]
    assert "user.changed" not in offered
    assert f">{AuditAction.PASSWORD_CHANGED.label} (password.changed)</option>" in select


def test_the_link_status_filter_lists_every_status_with_its_label(staff):
    html = staff.get("/links").text
    select = html[html.index('<select id="link-status"') : html.index("</select>")]
    for status in LinkStatus:
        assert f'<option value="{status}" >{status.label}</option>' in select
