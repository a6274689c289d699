"""What every part of the stand-in shares: stored idempotency keys, the clock, money and
request-shape checks, and list paging."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .schema import SpecValidators
from .wire import format_time, invalid, new_version_token


@dataclass
class KeyEntry:
    body: Any  # the request as parsed, for "same key + same body"
    status: int
    response: dict
    object_id: str | None = None


class StandinState:
    """The state the operation mixins work on; ``SquareStandin.__init__`` fills it in.

    Every operation runs under ``_lock`` (the server takes it around each handler)."""

    currency: str
    location_id: str
    location_name: str
    merchant_id: str
    application_id: str
    cancel_completed_by_key: str
    validators: SpecValidators | None
    payments: dict[str, dict]
    refunds: dict[str, dict]
    charges: list[dict]
    schema_errors: list[str]
    _payment_keys: dict[str, KeyEntry]
    _refund_keys: dict[str, KeyEntry]
    _lock: threading.RLock
    _last_stamp: datetime

    # --- clock ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        """Strictly increasing, millisecond precision, so every change bumps updated_at."""
        with self._lock:
            now = datetime.now(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if now <= self._last_stamp:
                now = self._last_stamp + timedelta(milliseconds=1)
            self._last_stamp = now
            return now

    def _stamp(self) -> str:
        return format_time(self._now())

    def _touch(self, obj: dict) -> None:
        obj["updated_at"] = self._stamp()
        if "version_token" in obj:
            obj["version_token"] = new_version_token()
        if "version" in obj:
            obj["version"] += 1

    def _request_error(self, schema: str, body: dict) -> tuple[int, dict] | None:
        if self.validators is None:
            return None
        return self.validators.request_error(schema, body)

    def _money_error(self, money: Any, field_name: str, currency: str) -> tuple[int, dict] | None:
        if not isinstance(money, dict):
            return invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", field_name)
        for part in ("amount", "currency"):
            if part not in money:
                return invalid(
                    "MISSING_REQUIRED_PARAMETER", "Field must be set", f"{field_name}.{part}"
                )
        if not isinstance(money["amount"], int) or isinstance(money["amount"], bool):
            return invalid("EXPECTED_INTEGER", "Expected integer.", f"{field_name}.amount")
        if money["amount"] < 1:
            return invalid(
                "VALUE_TOO_LOW", "Amount must be greater than 0.", f"{field_name}.amount"
            )
        if money["currency"] != currency:
            detail = f"Currency `{money['currency']}` does not match `{currency}`."
            return invalid("INVALID_VALUE", detail, f"{field_name}.currency")
        return None

    def _list(
        self, items: list[dict], query: dict, filters: dict[str, Callable[[dict, str], bool]]
    ):
        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        begin = one("begin_time") or format_time(datetime.now(UTC) - timedelta(days=365))
        end = one("end_time")
        chosen = [
            i for i in items if i["created_at"] >= begin and (end is None or i["created_at"] < end)
        ]
        for name, keep in filters.items():
            value = one(name)
            if value is not None:
                chosen = [i for i in chosen if keep(i, value)]
        chosen.sort(key=lambda i: i["created_at"], reverse=(one("sort_order") or "DESC") == "DESC")
        try:
            limit = max(1, min(100, int(one("limit") or 100)))
            start = int(one("cursor") or 0)
        except ValueError:
            return None
        page = chosen[start : start + limit]
        more = start + limit < len(chosen)
        return page, (str(start + limit) if more else None)
