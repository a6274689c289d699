"""Payment-page integrity (PCI DSS v4.0 6.4.3 and 11.6.1).

6.4.3: every script the patient page runs is in an inventory (static/js/inventory.json, mirrored
in docs/security/scripts.md) with its SHA-384; a vendored or own script whose bytes differ is not
served, and pages carry the inventory's hash as Subresource Integrity.
11.6.1: `check-integrity` compares the security headers and the pay page's script set with a
recorded baseline and raises an admin alert when they change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import abort, current_app, request
from sqlalchemy.orm import Session

from . import audit
from .models import SiteSetting, utcnow
from .states import AuditAction, LinkStatus

log = logging.getLogger(__name__)

BASELINE_KEY = "integrity.baseline"
# Headers whose change is a change in the site's security posture.
WATCHED_HEADERS = (
    "Content-Security-Policy",
    "Strict-Transport-Security",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Cache-Control",
)
_NONCE = re.compile(r"'nonce-[^']+'")
_SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def sri_hash(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@dataclass
class Inventory:
    """static/js/inventory.json: what may run, and the exact bytes of what we serve."""

    path: Path
    scripts: dict[str, dict] = field(default_factory=dict)  # "js/pay.js" -> entry
    external: list[dict] = field(default_factory=list)
    _verified: dict[str, tuple[float, int, bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, static_folder: str) -> Inventory:
        path = Path(static_folder) / "js" / "inventory.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(path, {s["file"]: s for s in data["scripts"]}, data.get("external", []))

    def sri(self, file: str) -> str:
        return self.scripts[file]["sha384"]

    def is_intact(self, static_folder: str, file: str) -> bool:
        """Whether the file on disk is the inventoried one (cached until the file changes)."""
        entry = self.scripts.get(file)
        target = Path(static_folder) / file
        if entry is None or not target.is_file():
            return False
        stat = target.stat()
        with self._lock:
            cached = self._verified.get(file)
            if cached and cached[:2] == (stat.st_mtime, stat.st_size):
                return cached[2]
        intact = sri_hash(target.read_bytes()) == entry["sha384"]
        with self._lock:
            self._verified[file] = (stat.st_mtime, stat.st_size, intact)
        return intact


def refuse_changed_scripts():
    """before_request: a script under static/ that is not the inventoried one is not served."""
    if request.endpoint != "static":
        return None
    filename = (request.view_args or {}).get("filename", "")
    if not filename.lower().endswith((".js", ".mjs", ".cjs")):
        return None
    inventory: Inventory = current_app.extensions["payapp.inventory"]
    if inventory.is_intact(current_app.static_folder, filename):
        return None
    log.error("refused to serve %s: not in the script inventory or its hash changed", filename)
    abort(404)


def init_app(app) -> None:
    inventory = Inventory.load(app.static_folder)
    app.extensions["payapp.inventory"] = inventory
    app.before_request(refuse_changed_scripts)
    app.jinja_env.globals["sri"] = inventory.sri


# --- 11.6.1: detect changes in what the site serves ---------------------------------------------


def current_surface(app) -> dict:
    """The security headers of a staff page and a patient page, and the pay page's scripts."""
    from .models import PaymentLink

    client = app.test_client()
    base = app.config["PUBLIC_BASE_URL"]
    headers = {}
    for name, path in (("login", "/login"), ("error", "/pay/not-a-token")):
        response = client.get(path, base_url=base)
        headers[name] = {
            h: _NONCE.sub("'nonce-*'", response.headers.get(h, "")) for h in WATCHED_HEADERS
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
        from flask import render_template

        from .views.pay import PayForm, page_context

        html = render_template(
            "pay/page.html",
            form=PayForm(formdata=None, attempt_key="x" * 32),
            **page_context(sample, payment=None),
        )
    scripts = sorted(
        _NONCE.sub("", re.sub(r'nonce="[^"]*"', "", tag)) for tag in _SCRIPT_TAG.findall(html)
    )
    return {"headers": headers, "pay_page_scripts": scripts}


def diff_surface(baseline: dict, current: dict) -> list[str]:
    changes = []
    for page, values in current["headers"].items():
        before = baseline.get("headers", {}).get(page, {})
        for header, value in values.items():
            if before.get(header) != value:
                changes.append(
                    f"{header} on the {page} page changed: {before.get(header)!r} -> {value!r}"
                )
    old, new = set(baseline.get("pay_page_scripts", [])), set(current["pay_page_scripts"])
    changes += [f"script added to the pay page: {s}" for s in sorted(new - old)]
    changes += [f"script removed from the pay page: {s}" for s in sorted(old - new)]
    return changes


def has_baseline(session: Session) -> bool:
    return session.get(SiteSetting, BASELINE_KEY) is not None


def check_integrity(session: Session, app, *, accept: bool = False) -> tuple[str, list[str]]:
    """Compare with the recorded baseline; returns (outcome, changes). Records an admin alert
    for unapproved changes; ``accept`` records the current state as the new baseline."""
    current = current_surface(app)
    setting = session.get(SiteSetting, BASELINE_KEY)
    if setting is None or accept:
        if setting is None:
            setting = SiteSetting(key=BASELINE_KEY)
            session.add(setting)
        setting.value = json.dumps(current, sort_keys=True)
        setting.updated_at = utcnow()
        audit.record(session, AuditAction.INTEGRITY_BASELINE, detail="baseline recorded")
        session.commit()
        return "recorded", []
    changes = diff_surface(json.loads(setting.value), current)
    if changes:
        audit.record(session, AuditAction.INTEGRITY_ALERT, detail="; ".join(changes)[:500])
        session.commit()
        return "changed", changes
    return "unchanged", []
