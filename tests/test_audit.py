"""The audit trail and the alerts built on it (domain level; the pages are in tests/security)."""

from datetime import timedelta

import pytest

from payapp import alerts, audit
from payapp.audit_export import csv_cell
from payapp.csp_reports import redact_url
from payapp.models import AuditEvent, utcnow


def test_audit_events_cannot_be_changed_or_deleted(session):
    event = audit.record(session, "link.created", detail="original")
    session.commit()
    event.detail = "rewritten"
    with pytest.raises(PermissionError, match="append-only"):
        session.commit()
    session.rollback()
    session.delete(session.get(AuditEvent, event.id))
    with pytest.raises(PermissionError):
        session.commit()
    session.rollback()
    assert session.get(AuditEvent, event.id).detail == "original"


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("plain", "plain"),
        (None, ""),
        (42, "42"),
    ],
)
def test_csv_cells_cannot_become_formulas(value, cell):
    assert csv_cell(value) == cell


def test_tokens_in_urls_are_redacted_before_storing():
    assert redact_url("https://x/pay/WyJhYmMiXQ.sig?x=1") == "https://x/pay/[token]?x=1"


def test_gateway_errors_alert_all_staff_but_integrity_alerts_only_admins(session):
    audit.record(session, "gateway.error", detail="AUTHENTICATION_ERROR/UNAUTHORIZED")
    audit.record(session, "integrity.alert", detail="script added")
    session.commit()
    assert {a.action for a in alerts.active_alerts(session, "staff")} == {"gateway.error"}
    assert {a.action for a in alerts.active_alerts(session, "admin")} == {
        "gateway.error",
        "integrity.alert",
    }
    tomorrow = utcnow() + timedelta(days=2)
    assert alerts.active_alerts(session, "admin", now=tomorrow) == []
