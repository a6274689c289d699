"""Content-Security-Policy violation reports that browsers send: parsed, stored without payment
tokens, and listed for admins on the Security page."""

from __future__ import annotations

import json
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .models import CspReport
from .states import AuditAction

MAX_BYTES = 8 * 1024
_PAY_TOKEN_IN_URL = re.compile(r"/pay/[^/?#\s\"']+")


class CspReportError(ValueError):
    """The body is not a CSP report in either format browsers use."""


def redact_url(text: str) -> str:
    """Payment-link tokens never get stored outside their link: /pay/<token> -> /pay/[token]."""
    return _PAY_TOKEN_IN_URL.sub("/pay/[token]", text)


def parse_report(raw: str) -> dict:
    """The report's fields from a report-uri body ({"csp-report": {...}}) or a Reporting API
    body ([{"type": ..., "body": {...}}]); raises CspReportError for anything else."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise CspReportError("not JSON") from None
    report = body.get("csp-report") if isinstance(body, dict) else None
    if report is None and isinstance(body, list) and body and isinstance(body[0], dict):
        report = body[0].get("body")
    if not isinstance(report, dict):
        raise CspReportError("no report in the body")
    return report


def record_report(session: Session, raw: str) -> CspReport:
    """Store one report (``raw`` at most MAX_BYTES) with a `csp.violation` audit event and
    commit; raises CspReportError when it is not a report."""
    raw = raw[:MAX_BYTES]
    report = parse_report(raw)

    def field(*names):
        for name in names:
            if report.get(name):
                return str(report[name])[:490]
        return ""

    directive = field("violated-directive", "effective-directive", "effectiveDirective")
    row = CspReport(
        document_uri=redact_url(field("document-uri", "documentURL")),
        violated_directive=directive,
        blocked_uri=redact_url(field("blocked-uri", "blockedURL")),
        raw=redact_url(raw)[:4000],
    )
    session.add(row)
    audit.record(session, AuditAction.CSP_VIOLATION, actor="system", detail=directive)
    session.commit()
    return row


def recent_reports(session: Session, limit: int = 50) -> list[CspReport]:
    """The latest reports, newest first."""
    return list(session.scalars(select(CspReport).order_by(CspReport.id.desc()).limit(limit)))
