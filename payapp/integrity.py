"""Payment-page integrity (PCI DSS v4.0 6.4.3 and 11.6.1).

6.4.3: every script the patient page runs is in an inventory (static/js/inventory.json, mirrored
in docs/security/scripts.md) with its SHA-384; a vendored or own script whose bytes differ is not
served (security.py refuses it), and pages carry the inventory's hash as Subresource Integrity.
11.6.1: `check-integrity` compares the security headers and the pay page's script set (gathered
by site_surface.py) with a recorded baseline and raises an admin alert when they change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .models import AuditEvent, SiteSetting, utcnow
from .states import AuditAction

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
ALERT_ACTIONS = (AuditAction.INTEGRITY_ALERT, AuditAction.INTEGRITY_BASELINE)


def join_parts(parts: list[bytes]) -> bytes:
    """One script from several: a line with a lone semicolon between them, so no part's last
    statement can run on into the next part's first."""
    return b"\n;\n".join(parts)


def sri_hash(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


@dataclass
class Inventory:
    """static/js/inventory.json: what may run, and the exact bytes of what we serve."""

    path: Path
    scripts: dict[str, dict] = field(default_factory=dict)  # "js/pay.js" -> entry
    external: list[dict] = field(default_factory=list)
    # "js/pay-demo.js" -> entry with "parts": inventoried scripts served as one file, in order
    bundles: dict[str, dict] = field(default_factory=dict)
    _verified: dict[str, tuple[float, int, bool]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, static_folder: str) -> Inventory:
        path = Path(static_folder) / "js" / "inventory.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            path,
            {s["file"]: s for s in data["scripts"]},
            data.get("external", []),
            {b["file"]: b for b in data.get("bundles", [])},
        )

    def sri(self, file: str) -> str:
        entry = self.scripts.get(file) or self.bundles[file]
        return entry["sha384"]

    def bundle_bytes(self, static_folder: str, file: str) -> bytes | None:
        """A bundle's bytes: its parts, each intact, joined; None unless the result is the
        inventoried bundle too (so the bytes served are always bytes someone approved)."""
        entry = self.bundles.get(file)
        if entry is None or not all(self.is_intact(static_folder, p) for p in entry["parts"]):
            return None
        data = join_parts([(Path(static_folder) / p).read_bytes() for p in entry["parts"]])
        return data if sri_hash(data) == entry["sha384"] else None

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


# --- 11.6.1: detect changes in what the site serves ---------------------------------------------


def without_nonces(headers: dict[str, str]) -> dict[str, str]:
    """The watched headers with their per-request nonces blanked, so two responses compare."""
    return {h: _NONCE.sub("'nonce-*'", headers.get(h, "")) for h in WATCHED_HEADERS}


def script_tags(html: str) -> list[str]:
    """The page's <script> tags without their nonces, sorted: what a change would show in."""
    return sorted(
        _NONCE.sub("", re.sub(r'nonce="[^"]*"', "", tag)) for tag in _SCRIPT_TAG.findall(html)
    )


def diff_surface(baseline: dict, current: dict) -> list[str]:
    """What changed between two surfaces ({"headers": ..., "pay_page_scripts": ...}), in words."""
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
    """Whether an approved baseline has been recorded."""
    return baseline(session) is not None


def baseline(session: Session) -> SiteSetting | None:
    """The approved baseline's setting row (its value and when it was recorded), if any."""
    return session.get(SiteSetting, BASELINE_KEY)


def recent_events(session: Session, limit: int = 20) -> list[AuditEvent]:
    """The latest integrity alerts and baseline recordings, newest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.action.in_(ALERT_ACTIONS))
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def check_integrity(
    session: Session, current: dict, *, accept: bool = False
) -> tuple[str, list[str]]:
    """Compare ``current`` (site_surface.collect()) with the recorded baseline; returns
    (outcome, changes). Records an admin alert for unapproved changes; ``accept`` records the
    current state as the new baseline."""
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
