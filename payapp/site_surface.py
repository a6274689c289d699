"""What the site serves, gathered for check-integrity (PCI DSS v4.0 11.6.1): the security headers
of a staff page and a patient page, and the pay page's scripts.

It drives the app (a test client and the pay page's own template and context), so it sits with
the views; integrity.py compares what it returns with the baseline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask, render_template

from . import integrity
from .models import PaymentLink
from .states import LinkStatus
from .views.pay import PayForm, page_context

PAGES = (("login", "/login"), ("error", "/pay/not-a-token"))


def collect(app: Flask) -> dict:
    """{"headers": {page: {header: value}}, "pay_page_scripts": [tag, ...]}, nonces blanked."""
    client = app.test_client()
    base = app.config["PUBLIC_BASE_URL"]
    headers = {
        name: integrity.without_nonces(client.get(path, base_url=base).headers)
        for name, path in PAGES
    }
    # The pay page as a patient gets it, rendered for an unsaved sample link.
    sample = PaymentLink(
        public_id="integrity-check",
        patient_name="Sample Patient",
        amount_cents=100,
        currency="USD",
        reference="SAMPLE",
        status=LinkStatus.OPEN,
        expires_at=datetime.now(UTC) + timedelta(days=1),
        decline_count=0,
    )
    sample.payments = []
    with app.test_request_context("/pay/sample", base_url=base):
        html = render_template(
            "pay/page.html",
            form=PayForm(formdata=None, attempt_key="x" * 32),
            **page_context(sample, payment=None),
        )
    return {"headers": headers, "pay_page_scripts": integrity.script_tags(html)}
