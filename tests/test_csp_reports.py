"""CSP violation reports at the domain level (the endpoint is covered in tests/security)."""

import json

import pytest

from payapp import csp_reports
from payapp.db import get_session
from payapp.models import AuditEvent


@pytest.fixture
def session(app):
    with app.app_context():
        yield get_session()


def test_both_report_formats_are_read():
    old = json.dumps({"csp-report": {"violated-directive": "script-src"}})
    new = json.dumps([{"type": "csp-violation", "body": {"effectiveDirective": "style-src"}}])
    assert csp_reports.parse_report(old) == {"violated-directive": "script-src"}
    assert csp_reports.parse_report(new) == {"effectiveDirective": "style-src"}


@pytest.mark.parametrize("raw", ["not json", "{}", "[]", '[{"body": 1}]', '{"csp-report": 2}'])
def test_anything_else_is_refused(raw):
    with pytest.raises(csp_reports.CspReportError):
        csp_reports.parse_report(raw)


def test_a_stored_report_carries_no_payment_token(session):
    raw = json.dumps(
        {
            "csp-report": {
                "document-uri": "https://clinic.example/pay/SECRET.sig",
                "violated-directive": "script-src",
                "blocked-uri": "https://evil.example/x.js",
            }
        }
    )
    report = csp_reports.record_report(session, raw)
    assert report.document_uri == "https://clinic.example/pay/[token]"
    assert "SECRET" not in report.raw
    assert session.query(AuditEvent).filter_by(action="csp.violation").one().detail == "script-src"
    assert csp_reports.recent_reports(session) == [report]
