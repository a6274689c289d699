"""The words payapp stores and shows: link, payment and refund states, message statuses and audit
actions. Each is a ``StrEnum`` (a member equals its stored string) carrying the label staff read.

Stored values are lower case; "cancelled" is spelled one way everywhere (migration 0005 rewrote
the payments stored as "canceled"). Square's own upper-case statuses ("CANCELED", "COMPLETED")
are compared only where a gateway answer is read.
"""

from __future__ import annotations

from enum import StrEnum

from .plaintext import patient_text


class _Labelled(StrEnum):
    """A StrEnum whose members are declared as ``NAME = "value", "Label"``."""

    label: str

    def __new__(cls, value: str, label: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member

    @classmethod
    def lookup(cls, value: object):
        """The member with this value, or None (``value in cls`` raises for a str on 3.11)."""
        return cls._value2member_map_.get(value) if isinstance(value, str) else None

    @classmethod
    def label_of(cls, value: object) -> str:
        """The label for a stored value; the value itself if it is not one of ours."""
        member = cls.lookup(value)
        return member.label if member is not None else str(value)


class LinkStatus(_Labelled):
    """A payment link's state: open -> paid -> (partially_)refunded; open -> expired | cancelled |
    locked. Declared in the order the staff status filter lists them."""

    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"
    LOCKED = "locked", "Locked"
    PARTIALLY_REFUNDED = "partially_refunded", "Partly refunded"
    REFUNDED = "refunded", "Refunded"


# Link states that mean "a charge already went through" (a second completion is a double charge).
LINK_PAID_STATES = (LinkStatus.PAID, LinkStatus.PARTIALLY_REFUNDED, LinkStatus.REFUNDED)
# Link states that can take no payment: the patient sees a closed page, staff can reissue.
LINK_CLOSED_STATES = (LinkStatus.EXPIRED, LinkStatus.CANCELLED, LinkStatus.LOCKED)


class PaymentStatus(_Labelled):
    """One charge attempt: pending -> completed | failed | unknown; unknown -> completed | failed
    | cancelled (an authorization we voided)."""

    PENDING = "pending", "In progress"
    COMPLETED = "completed", "Paid"
    FAILED = "failed", "Declined"
    UNKNOWN = "unknown", "Confirming"
    CANCELLED = "cancelled", "Voided"


class RefundStatus(_Labelled):
    """One refund: pending -> completed | failed | rejected; unknown while the gateway has not
    answered. Labels are read mid-sentence ("$25.00 — refunded")."""

    PENDING = "pending", "pending at Square"
    COMPLETED = "completed", "refunded"
    FAILED = "failed", "failed"
    REJECTED = "rejected", "rejected"
    UNKNOWN = "unknown", "being confirmed"


# Refunds that count against what can still be refunded.
REFUND_HOLDING_STATES = (RefundStatus.COMPLETED, RefundStatus.PENDING, RefundStatus.UNKNOWN)


class MessageStatus(_Labelled):
    """One email or text message of a link. Labels are read mid-sentence."""

    QUEUED = "queued", "queued"
    SENT = "sent", "sent"
    FAILED = "failed", "failed"
    SENDING = "sending", "being sent"  # claimed by run-jobs, in Twilio's hands in a moment


class SurgeKind(_Labelled):
    """What kind of failure a surge alert counts (alerts.py). Labels are read mid-sentence."""

    PAYMENT = "payment", "card payment failures"
    MESSAGE = "message", "email and text delivery failures"
    GATEWAY = "gateway", "payment system set-up errors"


class AuditAction(_Labelled):
    """Every action the audit trail records, with the words the link timeline and the audit
    filter show for it."""

    LINK_CREATED = "link.created", "Link created"
    LINK_VIEWED = "link.viewed", "Patient opened the link"
    LINK_CANCELLED = "link.cancelled", "Link cancelled"
    LINK_EXPIRED = "link.expired", "Link expired"
    LINK_LOCKED = "link.locked", "Link locked after too many declines"
    LINK_REISSUED = "link.reissued", "Link reissued"
    EMAIL_SENT = "email.sent", "Email sent"
    EMAIL_FAILED = "email.failed", "Email could not be sent"
    SMS_SENT = "sms.sent", "Text message sent"
    SMS_FAILED = "sms.failed", "Text message could not be sent"
    PAYMENT_ATTEMPTED = "payment.attempted", "Payment attempt"
    PAYMENT_COMPLETED = "payment.completed", "Payment completed"
    PAYMENT_DECLINED = "payment.declined", "Payment declined"
    PAYMENT_UNKNOWN = "payment.unknown", "Payment outcome unknown (being confirmed)"
    GATEWAY_ERROR = "gateway.error", "Payment system error"
    GATEWAY_REJECTED = "gateway.rejected", "Payment request refused by the payment processor"
    PAYMENT_RECONCILED = "payment.reconciled", "Payment outcome confirmed"
    PAYMENT_UNRESOLVED = (
        "payment.unresolved",
        "Payment outcome still unknown (Square did not say)",
    )
    PAYMENT_PAID_TWICE = "payment.paid_twice", "Paid twice — refund one"
    REFUND_REQUESTED = "refund.requested", "Refund requested"
    REFUND_CREATED = "refund.created", "Refund made"
    REFUND_FAILED = "refund.failed", "Refund refused by the payment processor"
    DECLINES_SPIKE = "declines.spike", "Unusual number of declined cards"
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login.failed", "Login failed"
    LOGOUT = "logout", "Logged out"
    REAUTH = "reauth", "Confirmed it's them"
    ACCOUNT_LOCKED = "account.locked", "Account locked after failed logins"
    PASSWORD_CHANGED = "password.changed", "Password changed"
    SESSIONS_REVOKED = "sessions.revoked", "Logged out everywhere"
    MFA_ENROLLED = "mfa.enrolled", "Two-step verification turned on"
    MFA_RECOVERY_CODES_REPLACED = "mfa.recovery_codes_replaced", "New recovery codes made"
    MFA_RECOVERY_CODE_USED = "mfa.recovery_code_used", "Recovery code used"
    USER_CREATED = "user.created", "User created"
    USER_DEACTIVATED = "user.deactivated", "User deactivated"
    USER_REACTIVATED = "user.reactivated", "User reactivated"
    USER_UNLOCKED = "user.unlocked", "User's lockout cleared"
    USER_REFUNDS_GRANTED = "user.refunds_granted", "User allowed to refund"
    USER_REFUNDS_REVOKED = "user.refunds_revoked", "User's refund permission taken away"
    USER_MFA_RESET = "user.mfa_reset", "User's two-step verification reset"
    USER_PASSWORD_RESET = "user.password_reset", "User given a temporary password"
    INTEGRITY_BASELINE = "integrity.baseline", "Integrity baseline recorded"
    INTEGRITY_ALERT = "integrity.alert", "Payment page changed"
    SECURITY_REVIEW = "security.review", "Security review recorded"
    CSP_VIOLATION = "csp.violation", "Blocked by the Content-Security-Policy"
    RATELIMIT_HIT = "ratelimit.hit", "Rate limit reached"
    WEBHOOK_BAD_SIGNATURE = "webhook.bad_signature", "Webhook with a bad signature"
    AUDIT_EXPORTED = "audit.exported", "Audit trail downloaded"
    REMINDER_SENT = "reminder.sent", "Reminder sent"
    REMINDER_FAILED = "reminder.failed", "Reminder could not be sent"
    REMINDERS_STOPPED = "reminders.stopped", "Reminders stopped by staff"
    REMINDERS_OPTED_OUT = "reminders.opted_out", "Patient asked for no more reminders"
    SURGE_STARTED = "surge.started", "Surge of failures: admins alerted"
    SURGE_ACKNOWLEDGED = "surge.acknowledged", "Surge of failures acknowledged"
    SURGE_RECOVERED = "surge.recovered", "Surge of failures over"
    PROBLEM_REPORTED = "problem.reported", "Patient reported a problem"
    PROBLEM_RESOLVED = "problem.resolved", "Problem report resolved"
    PROBLEM_NOTICE_FAILED = (
        "problem.notice_failed",
        "Front desk could not be emailed about a problem report",
    )
    SMS_QUEUED = "sms.queued", "Text message waiting for clinic hours"
    SMS_DELIVERED = "sms.delivered", "Text message delivered"
    SMS_UNDELIVERED = "sms.undelivered", "Text message not delivered by the phone carrier"
    SMS_OPTED_OUT = "sms.opted_out", "Patient replied STOP: no more texts"
    SMS_OPTED_IN = "sms.opted_in", "Patient replied START: texts allowed again"
    SMS_HELP = "sms.help", "Patient replied HELP"
    RECEIPT_SENT = "receipt.sent", "Receipt sent to the patient"
    RECEIPT_FAILED = "receipt.failed", "Receipt could not be sent"
    REFUND_NOTICE_SENT = "refund_notice.sent", "Refund notice sent to the patient"
    REFUND_NOTICE_FAILED = "refund_notice.failed", "Refund notice could not be sent"
    EXPORT_DOWNLOADED = "export.downloaded", "Export downloaded"
    NEW_LINK_REQUESTED = "new_link.requested", "Patient asked for a new link"
    NEW_LINK_SENT = "new_link.sent", "New link sent at the patient's request"
    NEW_LINK_DISMISSED = "new_link.dismissed", "Request for a new link dismissed"
    NEW_LINK_NOTICE_FAILED = (
        "new_link.notice_failed",
        "Front desk could not be emailed about a request for a new link",
    )
    PAY_LOOKUP_FOUND = "pay.lookup_found", "Patient found the bill by statement number"
    PAY_LOOKUP_FAILED = "pay.lookup_failed", "Statement number lookup found no open bill"

    @property
    def detail_is_code(self) -> bool:
        """The detail is a gateway code, shown in plain words with the code in a tooltip."""
        return self in _CODED_DETAIL

    @property
    def detail_on_timeline(self) -> bool:
        """The link timeline shows this action's detail after its label."""
        return self in _CODED_DETAIL or self in _PLAIN_DETAIL_ON_TIMELINE

    @classmethod
    def message(cls, channel: str, status: MessageStatus) -> AuditAction:
        """The action for a message on ``channel`` ("email" or "sms") that was sent or failed."""
        return cls(f"{channel}.{status}")


_CODED_DETAIL = frozenset(
    {
        AuditAction.PAYMENT_DECLINED,
        AuditAction.GATEWAY_ERROR,
        AuditAction.GATEWAY_REJECTED,
        AuditAction.REFUND_FAILED,
    }
)
_PLAIN_DETAIL_ON_TIMELINE = frozenset(
    {
        AuditAction.PAYMENT_COMPLETED,
        AuditAction.PAYMENT_RECONCILED,
        AuditAction.PAYMENT_PAID_TWICE,
        AuditAction.PAYMENT_UNRESOLVED,
        AuditAction.REFUND_REQUESTED,
        AuditAction.REFUND_CREATED,
        AuditAction.REMINDER_SENT,
        AuditAction.REMINDER_FAILED,
        AuditAction.REMINDERS_OPTED_OUT,
        AuditAction.PROBLEM_REPORTED,
        AuditAction.NEW_LINK_SENT,
        AuditAction.NEW_LINK_DISMISSED,
        AuditAction.SMS_UNDELIVERED,
        AuditAction.RECEIPT_SENT,
        AuditAction.RECEIPT_FAILED,
        AuditAction.REFUND_NOTICE_SENT,
        AuditAction.REFUND_NOTICE_FAILED,
    }
)


class LinkRequestState(_Labelled):
    """A patient's "Send me a new link" task (``link_request.state``): open until staff reissue
    (done) or dismiss it; in automatic mode it is done at once."""

    OPEN = "open", "Waiting for the front desk"
    DONE = "done", "New link sent"
    DISMISSED = "dismissed", "Dismissed"


class ProblemCategory(_Labelled):
    """What a patient says went wrong on the "Problem paying?" form, in the order it lists them.
    Labels are the patient's own words; staff read the same ones."""

    AMOUNT_WRONG = "amount_wrong", patient_text("The amount looks wrong")
    CARD_DECLINED = "card_declined", patient_text("My card was declined")
    UNEXPECTED_MESSAGE = "unexpected_message", patient_text("I didn't expect this message")
    OTHER = "other", patient_text("Something else")


class Language(_Labelled):
    """The language a patient reads a link's pages in (``payment_link.language``); labels are
    each language's own name, as the switch link shows it."""

    EN = "en", "English"
    ES = "es", "Español"


class Wallet(_Labelled):
    """The wallet a patient paid with (``payment.wallet``; NULL for a typed card). Square's
    Payment shows an Apple Pay or Google Pay charge as a plain card payment (its
    ``wallet_details`` brands are Cash App and the like), so the pay form says which button made
    the token; the label is the wallet's own name, the same in every language."""

    APPLE_PAY = "apple_pay", "Apple Pay"
    GOOGLE_PAY = "google_pay", "Google Pay"


def jinja_globals() -> dict[str, object]:
    """The enums templates use by name (``LinkStatus.OPEN``, ``AuditAction`` for the filter)."""
    return {
        "LINK_CLOSED_STATES": LINK_CLOSED_STATES,
        "LinkStatus": LinkStatus,
        "Language": Language,
        "PaymentStatus": PaymentStatus,
        "RefundStatus": RefundStatus,
        "MessageStatus": MessageStatus,
        "AuditAction": AuditAction,
        "SurgeKind": SurgeKind,
        "ProblemCategory": ProblemCategory,
        "LinkRequestState": LinkRequestState,
    }
