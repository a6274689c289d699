"""Rate limits that flask-limiter's decorators cannot express because of their order.

The decorators check every limit before the view runs, so a limit shared by all addresses would
be spent by requests that another limit refuses anyway (one address posting to a made-up token
could use up every patient's budget). The global payment limit is therefore taken here, by hand,
only for attempts that passed the per-address limits and reached an open link.
"""

from __future__ import annotations

import logging

from flask import current_app
from limits import parse_many

from .extensions import limiter

log = logging.getLogger(__name__)

GLOBAL_PAY_SCOPE = "pay-global"
GLOBAL_LOOKUP_SCOPE = "pay-lookup-global"


def take_global_payment_slot() -> bool:
    """Spend one unit of the budget all addresses share (``RATELIMIT_PAY_GLOBAL``); False when
    it is used up. The counter lives in the limiter's own storage (the shared SQLite file,
    redis:// or memory://, and its in-memory fallback when that is unreachable), so it is
    shared exactly like the others."""
    return take_global_slot("RATELIMIT_PAY_GLOBAL", GLOBAL_PAY_SCOPE)


def take_global_lookup_slot() -> bool:
    """The same for statement-number lookups at /pay (``RATELIMIT_PAY_LOOKUP_GLOBAL``), taken
    only by lookups that passed the per-address limits."""
    return take_global_slot("RATELIMIT_PAY_LOOKUP_GLOBAL", GLOBAL_LOOKUP_SCOPE)


def take_global_slot(setting: str, scope: str) -> bool:
    cfg = current_app.config
    if not cfg.get("RATELIMIT_ENABLED", True):
        return True
    identifiers = [cfg.get("RATELIMIT_KEY_PREFIX") or "", "all", scope]
    identifiers = [i for i in identifiers if i]
    items = parse_many(cfg[setting])
    try:
        strategy = limiter.limiter
        return all(strategy.hit(item, *identifiers) for item in items)
    except Exception as exc:  # storage failed between the per-address check and this one
        # The per-address limits (just passed) and the link's decline cap still hold.
        log.warning("global %s limit not checked: %s", scope, type(exc).__name__)
        return True
