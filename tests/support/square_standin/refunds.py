"""Refunds: RefundPayment, Get/List, and refunds issued or moved along "in Square's dashboard"."""

from __future__ import annotations

import copy
from typing import Any

from .state import KeyEntry, StandinState
from .wire import invalid, new_square_id, random_chars, refund_error, strip_nulls


class RefundOperations(StandinState):
    """The Refunds API on the shared state (mixed into ``SquareStandin``)."""

    def _refundable(self, payment: dict) -> int:
        taken = sum(
            self.refunds[r]["amount_money"]["amount"]
            for r in payment.get("refund_ids", [])
            if self.refunds[r]["status"] not in ("FAILED", "REJECTED")
        )
        return payment["total_money"]["amount"] - taken

    def _recount_refunds(self, payment: dict) -> None:
        refunded = payment["total_money"]["amount"] - self._refundable(payment)
        payment["refunded_money"] = {
            "amount": refunded,
            "currency": payment["total_money"]["currency"],
        }

    def _refund_problem(self, payment: dict, amount_money: Any) -> tuple[int, dict] | None:
        if payment["status"] == "APPROVED":
            return refund_error(
                "REFUND_ERROR_PAYMENT_NEEDS_COMPLETION",
                "The payment must be completed before it can be refunded.",
            )
        if payment["status"] != "COMPLETED":
            return refund_error(
                "PAYMENT_NOT_REFUNDABLE", f"Payment `{payment['id']}` is {payment['status']}."
            )
        problem = self._money_error(
            amount_money, "amount_money", payment["total_money"]["currency"]
        )
        if problem:
            return problem
        left = self._refundable(payment)
        if amount_money["amount"] > left:
            return refund_error(
                "REFUND_AMOUNT_INVALID",
                f"The requested refund amount exceeds the amount available to refund ({left}).",
                "amount_money.amount",
            )
        return None

    def _new_refund(
        self, payment: dict, amount_money: dict, reason: str | None, extra: dict
    ) -> dict:
        stamp = self._stamp()
        refund: dict[str, Any] = {
            "id": f"{payment['id']}_{random_chars(43)}",
            "status": "PENDING",
            "location_id": payment["location_id"],
            "destination_type": "CARD",
            "amount_money": dict(amount_money),
            "payment_id": payment["id"],
            "order_id": new_square_id(),
            "created_at": stamp,
            "updated_at": stamp,
        }
        if reason:
            refund["reason"] = reason
        refund.update(extra)
        self.refunds[refund["id"]] = refund
        payment.setdefault("refund_ids", []).append(refund["id"])
        self._recount_refunds(payment)
        self._touch(payment)
        return refund

    def _refund_payment(self, *, params: dict, body: dict | None, query: dict):
        original = body or {}
        req = strip_nulls(original)
        problem = self._request_error("RefundPaymentRequest", req)
        if problem:
            return problem
        key = req["idempotency_key"]
        if len(key) > 45:
            return invalid(
                "VALUE_TOO_LONG", "Field must not be greater than 45 length", "idempotency_key"
            )
        prior = self._refund_keys.get(key)
        if prior is not None:
            if prior.body == original:
                return prior.status, copy.deepcopy(prior.response)
            return invalid(
                "IDEMPOTENCY_KEY_REUSED",
                f"The idempotency key `{key}` has already been used with a different request.",
                "idempotency_key",
            )
        if "payment_id" not in req:
            return invalid("MISSING_REQUIRED_PARAMETER", "Field must be set", "payment_id")
        payment = self.payments.get(req["payment_id"])
        if payment is None:
            return invalid(
                "NOT_FOUND", f"Could not find payment with id: {req['payment_id']}", "payment_id"
            )
        problem = self._refund_problem(payment, req["amount_money"])
        if problem:
            return problem
        extra = {k: copy.deepcopy(req[k]) for k in ("app_fee_money", "team_member_id") if k in req}
        refund = self._new_refund(payment, req["amount_money"], req.get("reason"), extra)
        response = {"refund": copy.deepcopy(refund)}
        self._refund_keys[key] = KeyEntry(original, 200, copy.deepcopy(response), refund["id"])
        return 200, response

    def _get_refund(self, *, params: dict, body: dict | None, query: dict):
        refund = self.refunds.get(params["id"])
        if refund is None:
            return invalid("NOT_FOUND", f"Could not find refund with id: {params['id']}")
        return 200, {"refund": copy.deepcopy(refund)}

    def _list_refunds(self, *, params: dict, body: dict | None, query: dict):
        listed = self._list(
            list(self.refunds.values()),
            query,
            {
                "location_id": lambda r, v: r["location_id"] == v,
                "status": lambda r, v: r["status"] == v,
                "source_type": lambda r, v: r.get("destination_type") == v,
            },
        )
        if listed is None:
            return invalid("INVALID_CURSOR", "Invalid cursor or limit.")
        page, cursor = listed
        out: dict[str, Any] = {"refunds": copy.deepcopy(page)}
        if cursor:
            out["cursor"] = cursor
        return 200, out

    # --- changes made in Square's own dashboard (no HTTP; for webhook tests) -------------------

    def create_dashboard_refund(
        self, payment_id: str, amount: int, reason: str | None = None
    ) -> dict:
        """A refund issued from the Square Dashboard (same rules as RefundPayment)."""
        with self._lock:
            payment = self.payments[payment_id]
            money = {"amount": amount, "currency": payment["total_money"]["currency"]}
            problem = self._refund_problem(payment, money)
            if problem:
                raise ValueError(problem[1]["errors"][0]["code"])
            return copy.deepcopy(self._new_refund(payment, money, reason, {}))

    def update_refund(self, refund_id: str, **changes: Any) -> dict:
        with self._lock:
            refund = self.refunds[refund_id]
            refund.update(copy.deepcopy(changes))
            self._touch(refund)
            payment = self.payments.get(refund.get("payment_id") or "")
            if payment is not None and "status" in changes:
                self._recount_refunds(payment)
            return copy.deepcopy(refund)

    def complete_refund(self, refund_id: str) -> dict:
        """Move a PENDING refund to COMPLETED (bumps updated_at), as the card network would."""
        return self.update_refund(refund_id, status="COMPLETED")
