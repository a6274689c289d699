"""Payments: CreatePayment (the sandbox nonces and their outcomes), Get/List, Cancel, Complete,
cancel by idempotency key, and payment changes made "in Square's dashboard"."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from .state import KeyEntry, StandinState
from .wire import (
    URLSAFE,
    error_body,
    fail,
    format_time,
    invalid,
    new_square_id,
    new_version_token,
    parse_duration,
    random_chars,
    strip_nulls,
)

# What CancelPaymentByIdempotencyKey answers for a COMPLETED payment (undocumented; see GUESSES).
CANCEL_COMPLETED_ANSWERS = ("error", "ok")
CARD_STATUS_FOR = {
    "APPROVED": "AUTHORIZED",
    "COMPLETED": "CAPTURED",
    "CANCELED": "VOIDED",
    "FAILED": "FAILED",
}


# Square's sandbox test nonces and what each one answers.
@dataclass(frozen=True)
class Outcome:
    code: str | None = None  # None: approved
    category: str = "PAYMENT_METHOD_ERROR"
    detail: str | None = None
    with_payment: bool = True  # a decline carries a FAILED payment
    gift_card: bool = False
    cvv_status: str = "CVV_ACCEPTED"
    avs_status: str = "AVS_ACCEPTED"
    consumes_key: bool = True


def _decline(code: str, **kw: Any) -> Outcome:
    return Outcome(code=code, detail=f"Authorization error: '{code}'", **kw)


def _token_error(code: str, detail: str, **kw: Any) -> Outcome:
    return Outcome(code=code, category="INVALID_REQUEST_ERROR", detail=detail, **kw)


NONCES: dict[str, Outcome] = {
    "cnon:card-nonce-ok": Outcome(),
    "cnon:gift-card-nonce-ok": Outcome(gift_card=True),
    "cnon:card-nonce-declined": _decline("GENERIC_DECLINE"),
    "cnon:card-nonce-rejected-cvv": _decline("CVV_FAILURE", cvv_status="CVV_REJECTED"),
    "cnon:card-nonce-rejected-postalcode": _decline(
        "ADDRESS_VERIFICATION_FAILURE", avs_status="AVS_REJECTED"
    ),
    "cnon:card-nonce-rejected-expiration": _decline("INVALID_EXPIRATION"),
    "cnon:gift-card-nonce-insufficient-funds": _decline("INSUFFICIENT_FUNDS", gift_card=True),
    "cnon:gift-card-nonce-insufficient-permission": _decline(
        "CARDHOLDER_INSUFFICIENT_PERMISSIONS", gift_card=True
    ),
    "cnon:card-nonce-already-used": _token_error(
        "CARD_TOKEN_USED", "Card nonce already used; please request new nonce.", with_payment=False
    ),
    # Stand-in-only test values (not Square's):
    # payapp's demo wallet nonces (payapp/gateways/demo.py DEMO_WALLET_NONCES): a wallet token is
    # a card nonce to CreatePayment, so they answer like the card nonces.
    "cnon:demo-apple-pay-ok": Outcome(),
    "cnon:demo-google-pay-ok": Outcome(),
    "cnon:demo-wallet-declined": _decline("GENERIC_DECLINE"),
    "cnon:standin-verification-required": _decline("CARD_DECLINED_VERIFICATION_REQUIRED"),
    "cnon:standin-token-expired": _token_error(
        "CARD_TOKEN_EXPIRED", "Card nonce expired.", with_payment=False
    ),
    "cnon:standin-invalid-card-data": _token_error(
        "INVALID_CARD_DATA", "Invalid card data.", with_payment=False
    ),
    "cnon:standin-temporary-error": Outcome(
        code="TEMPORARY_ERROR",
        detail="A temporary internal error occurred. Retry with the same idempotency key.",
        with_payment=False,
        consumes_key=False,
    ),
}
RISK_BY_AMOUNT = {2222: "MODERATE", 3333: "HIGH"}


class PaymentOperations(StandinState):
    """The Payments API on the shared state (mixed into ``SquareStandin``)."""

    def _create_payment(self, *, params: dict, body: dict | None, query: dict):
        original = body or {}
        req = strip_nulls(original)
        problem = self._request_error("CreatePaymentRequest", req)
        if problem:
            return problem
        key = req["idempotency_key"]
        prior = self._payment_keys.get(key)
        if prior is not None:
            if prior.body == original:
                return prior.status, copy.deepcopy(prior.response)
            return invalid(
                "IDEMPOTENCY_KEY_REUSED",
                f"The idempotency key `{key}` has already been used with a different request.",
                "idempotency_key",
            )
        location_id = req.get("location_id", self.location_id)
        if location_id != self.location_id:  # GUESS: code, status and wording
            return invalid("NOT_FOUND", f"Location `{location_id}` not found.", "location_id")
        problem = self._money_error(req.get("amount_money"), "amount_money", self.currency)
        if problem:
            return problem
        if "tip_money" in req:
            problem = self._money_error(req["tip_money"], "tip_money", self.currency)
            if problem:
                return problem
        autocomplete = req.get("autocomplete", True)
        if autocomplete and ("delay_duration" in req or "delay_action" in req):
            which = "delay_duration" if "delay_duration" in req else "delay_action"
            return invalid(
                "INVALID_VALUE", f"`{which}` can only be set when `autocomplete` is false.", which
            )
        delay_duration = req.get("delay_duration", "PT168H")
        delay = parse_duration(delay_duration)
        if delay is None:
            return invalid("INVALID_VALUE", "Expected an RFC 3339 duration.", "delay_duration")
        delay_action = req.get("delay_action", "CANCEL")
        if delay_action not in ("CANCEL", "COMPLETE"):
            return invalid(
                "INVALID_ENUM_VALUE",
                f"`{delay_action}` is not a valid enum value for `delay_action`.",
                "delay_action",
            )

        outcome = NONCES.get(req["source_id"])
        if outcome is None:
            return invalid("NOT_FOUND", "Card nonce not found", "source_id")
        if outcome.code and not outcome.with_payment:
            status, response = fail(outcome.category, outcome.code, outcome.detail)
            if outcome.consumes_key:
                self._payment_keys[key] = KeyEntry(original, status, copy.deepcopy(response))
            return status, response

        payment = self._new_payment(req, outcome, autocomplete, delay, delay_duration, delay_action)
        self.payments[payment["id"]] = payment
        if outcome.code:
            err = error_body(outcome.category, outcome.code, outcome.detail)
            payment["card_details"]["errors"] = [err]
            status, response = 400, {"errors": [err], "payment": copy.deepcopy(payment)}
        else:
            self.charges.append(copy.deepcopy(payment))
            status, response = 200, {"payment": copy.deepcopy(payment)}
        self._payment_keys[key] = KeyEntry(original, status, copy.deepcopy(response), payment["id"])
        return status, response

    def _new_payment(
        self,
        req: dict,
        outcome: Outcome,
        autocomplete: bool,
        delay: timedelta,
        delay_duration: str,
        delay_action: str,
    ) -> dict:
        created = self._now()
        created_at = format_time(created)
        pid = new_square_id()
        amount = dict(req["amount_money"])
        tip = req.get("tip_money")
        total = {
            "amount": amount["amount"] + (tip["amount"] if tip else 0),
            "currency": self.currency,
        }
        status = "FAILED" if outcome.code else ("COMPLETED" if autocomplete else "APPROVED")
        year = created.year + 4
        if outcome.gift_card:
            card = {
                "card_brand": "SQUARE_GIFT_CARD",
                "last_4": "0000",
                "bin": "778332",
                "card_type": "DEBIT",
                "prepaid_type": "PREPAID",
            }
        else:
            card = {
                "card_brand": "VISA",
                "last_4": "1111",
                "exp_month": 11,
                "exp_year": year,
                "card_type": "CREDIT",
                "prepaid_type": "NOT_PREPAID",
                "bin": "411111",
            }
        card["fingerprint"] = "sq-1-" + random_chars(64, URLSAFE)
        descriptor = req.get("statement_description_identifier") or self.location_name
        timeline: dict[str, str] = {}
        if status != "FAILED":
            timeline["authorized_at"] = created_at
        if status == "COMPLETED":
            timeline["captured_at"] = created_at
        card_details: dict[str, Any] = {
            "status": CARD_STATUS_FOR[status],
            "card": card,
            "entry_method": "KEYED",
            "cvv_status": outcome.cvv_status,
            "avs_status": outcome.avs_status,
            "auth_result_code": random_chars(6),
            "statement_description": ("SQ *" + descriptor.upper())[:22],
            "card_payment_timeline": timeline,
        }
        payment: dict[str, Any] = {
            "id": pid,
            "created_at": created_at,
            "updated_at": created_at,
            "amount_money": amount,
            "total_money": total,
        }
        if tip:
            payment["tip_money"] = dict(tip)
        if "app_fee_money" in req:
            payment["app_fee_money"] = dict(req["app_fee_money"])
        if status != "FAILED":
            payment["approved_money"] = dict(total)
        payment.update(
            status=status,
            delay_duration=delay_duration,
            delay_action=delay_action,
            delayed_until=format_time(created + delay),
            source_type="CARD",
            card_details=card_details,
            location_id=self.location_id,
            order_id=req.get("order_id") or new_square_id(),
        )
        for echo in (
            "reference_id",
            "customer_id",
            "team_member_id",
            "buyer_email_address",
            "billing_address",
            "shipping_address",
            "note",
            "statement_description_identifier",
        ):
            if echo in req:
                payment[echo] = copy.deepcopy(req[echo])
        if status != "FAILED":
            risk = RISK_BY_AMOUNT.get(amount["amount"], "NORMAL")
            payment["risk_evaluation"] = {"created_at": created_at, "risk_level": risk}
        payment.update(
            receipt_number=pid[:4],
            receipt_url=f"https://squareup.com/receipt/preview/{pid}",
            application_details={
                "square_product": "ECOMMERCE_API",
                "application_id": self.application_id,
            },
            version_token=new_version_token(),
        )
        return payment

    def _payment_or_404(self, payment_id: str) -> dict | tuple[int, dict]:
        payment = self.payments.get(payment_id)
        if payment is None:
            return invalid("NOT_FOUND", f"Could not find payment with id: {payment_id}")
        return payment

    def _get_payment(self, *, params: dict, body: dict | None, query: dict):
        found = self._payment_or_404(params["id"])
        if isinstance(found, tuple):
            return found
        return 200, {"payment": copy.deepcopy(found)}

    def _set_status(self, payment: dict, status: str) -> None:
        payment["status"] = status
        details = payment.get("card_details")
        if details is not None:
            details["status"] = CARD_STATUS_FOR.get(status, details.get("status"))
            timeline = details.setdefault("card_payment_timeline", {})
            stamp = self._stamp()
            if status == "COMPLETED":
                timeline["captured_at"] = stamp
            elif status == "CANCELED":
                timeline["voided_at"] = stamp
        self._touch(payment)

    def _void(self, payment: dict) -> None:
        self._set_status(payment, "CANCELED")

    def _cannot(self, payment: dict, verb: str) -> tuple[int, dict]:
        return invalid(
            "BAD_REQUEST", f"Payment `{payment['id']}` is {payment['status']} and cannot be {verb}."
        )

    def _payment_action(self, *, params: dict, body: dict | None, query: dict):
        if params["action"] == "complete":
            problem = self._request_error("CompletePaymentRequest", strip_nulls(body or {}))
            if problem:
                return problem
        found = self._payment_or_404(params["id"])
        if isinstance(found, tuple):
            return found
        payment = found
        if params["action"] == "cancel":
            if payment["status"] == "APPROVED":
                self._void(payment)
            elif payment["status"] != "CANCELED":
                return self._cannot(payment, "canceled")
        else:
            if payment["status"] == "APPROVED":
                self._set_status(payment, "COMPLETED")
            elif payment["status"] != "COMPLETED":
                return self._cannot(payment, "completed")
        return 200, {"payment": copy.deepcopy(payment)}

    def _cancel_by_key(self, *, params: dict, body: dict | None, query: dict):
        req = strip_nulls(body or {})
        problem = self._request_error("CancelPaymentByIdempotencyKeyRequest", req)
        if problem:
            return problem
        entry = self._payment_keys.get(req["idempotency_key"])
        payment = self.payments.get(entry.object_id) if entry and entry.object_id else None
        if payment is None or payment["status"] in ("FAILED", "CANCELED"):
            return 200, {}
        if payment["status"] == "APPROVED":
            self._void(payment)
            del self._payment_keys[req["idempotency_key"]]  # GUESS: the key is free again
            return 200, {}
        if self.cancel_completed_by_key == "ok":  # GUESS (a switch): "no action", like no key
            return 200, {}
        return self._cannot(payment, "canceled")

    def _list_payments(self, *, params: dict, body: dict | None, query: dict):
        def card(p: dict) -> dict:
            return (p.get("card_details") or {}).get("card") or {}

        listed = self._list(
            list(self.payments.values()),
            query,
            {
                "location_id": lambda p, v: p["location_id"] == v,
                "total": lambda p, v: str(p["total_money"]["amount"]) == v,
                "last_4": lambda p, v: card(p).get("last_4") == v,
                "card_brand": lambda p, v: card(p).get("card_brand") == v,
            },
        )
        if listed is None:
            return invalid("INVALID_CURSOR", "Invalid cursor or limit.")
        page, cursor = listed
        out: dict[str, Any] = {"payments": copy.deepcopy(page)}
        if cursor:
            out["cursor"] = cursor
        return 200, out

    # --- a change made in Square's own dashboard (no HTTP; for webhook tests) ----------------

    def update_payment(self, payment_id: str, **changes: Any) -> dict:
        """Change a payment as Square would behind the app's back; returns the new state.

        ``status=`` also moves ``card_details.status`` (and its timeline) along. Bumps
        ``updated_at`` and ``version_token``.
        """
        with self._lock:
            payment = self.payments[payment_id]
            status = changes.pop("status", None)
            payment.update(copy.deepcopy(changes))
            if status is not None:
                self._set_status(payment, status)
            else:
                self._touch(payment)
            return copy.deepcopy(payment)
