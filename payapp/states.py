"""The words payapp stores and shows: link, payment and refund states, message statuses and audit
actions. Each is a ``StrEnum`` (a member equals its stored string) carrying the label staff read.

Stored values are lower case; "cancelled" is spelled one way everywhere (migration 0005 rewrote
the payments stored as "canceled"). Square's own upper-case statuses ("CANCELED", "COMPLETED")
are compared only where a gateway answer is read.
"""

from __future__ import annotations

from enum import StrEnum

from .plaintext import patient_text, staff_text


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

    OPEN = "open", staff_text("Open")
    PAID = "paid", staff_text("Paid")
    EXPIRED = "expired", staff_text("Expired")
    CANCELLED = "cancelled", staff_text("Cancelled")
    LOCKED = "locked", staff_text("Locked")
    PARTIALLY_REFUNDED = "partially_refunded", staff_text("Partly refunded")
    REFUNDED = "refunded", staff_text("Refunded")


# Link states that mean "a charge already went through" (a second completion is a double charge).
LINK_PAID_STATES = (LinkStatus.PAID, LinkStatus.PARTIALLY_REFUNDED, LinkStatus.REFUNDED)
# Link states that can take no payment: the patient sees a closed page, staff can reissue.
LINK_CLOSED_STATES = (LinkStatus.EXPIRED, LinkStatus.CANCELLED, LinkStatus.LOCKED)


class PaymentStatus(_Labelled):
    """One charge attempt: pending -> completed | failed | unknown; unknown -> completed | failed
    | cancelled (an authorization we voided)."""

    PENDING = "pending", staff_text("In progress")
    COMPLETED = "completed", staff_text("Paid")
    FAILED = "failed", staff_text("Declined")
    UNKNOWN = "unknown", staff_text("Confirming")
    CANCELLED = "cancelled", staff_text("Voided")


class RefundStatus(_Labelled):
    """One refund: pending -> completed | failed | rejected; unknown while the gateway has not
    answered. Labels are read mid-sentence ("$25.00 — refunded")."""

    PENDING = "pending", staff_text("pending at Square")
    COMPLETED = "completed", staff_text("refunded")
    FAILED = "failed", staff_text("failed")
    REJECTED = "rejected", staff_text("rejected")
    UNKNOWN = "unknown", staff_text("being confirmed")


# Refunds that count against what can still be refunded.
REFUND_HOLDING_STATES = (RefundStatus.COMPLETED, RefundStatus.PENDING, RefundStatus.UNKNOWN)


class MessageStatus(_Labelled):
    """One email or text message of a link. Labels are read mid-sentence."""

    QUEUED = "queued", staff_text("queued")
    SENT = "sent", staff_text("sent")
    FAILED = "failed", staff_text("failed")
    SENDING = (
        "sending",
        staff_text("being sent"),
    )  # claimed by run-jobs, in Twilio's hands in a moment


class SurgeKind(_Labelled):
    """What kind of failure a surge alert counts (alerts.py). Labels are read mid-sentence."""

    PAYMENT = "payment", staff_text("card payment failures")
    MESSAGE = "message", staff_text("email and text delivery failures")
    GATEWAY = "gateway", staff_text("payment system set-up errors")


class AuditAction(_Labelled):
    """Every action the audit trail records, with the words the link timeline and the audit
    filter show for it."""

    LINK_CREATED = "link.created", staff_text("Link created")
    LINK_VIEWED = "link.viewed", staff_text("Patient opened the link")
    LINK_CANCELLED = "link.cancelled", staff_text("Link cancelled")
    LINK_EXPIRED = "link.expired", staff_text("Link expired")
    LINK_LOCKED = "link.locked", staff_text("Link locked after too many declines")
    LINK_REISSUED = "link.reissued", staff_text("Link reissued")
    EMAIL_SENT = "email.sent", staff_text("Email sent")
    EMAIL_FAILED = "email.failed", staff_text("Email could not be sent")
    SMS_SENT = "sms.sent", staff_text("Text message sent")
    SMS_FAILED = "sms.failed", staff_text("Text message could not be sent")
    PAYMENT_ATTEMPTED = "payment.attempted", staff_text("Payment attempt")
    PAYMENT_COMPLETED = "payment.completed", staff_text("Payment completed")
    PAYMENT_DECLINED = "payment.declined", staff_text("Payment declined")
    PAYMENT_UNKNOWN = "payment.unknown", staff_text("Payment outcome unknown (being confirmed)")
    GATEWAY_ERROR = "gateway.error", staff_text("Payment system error")
    GATEWAY_REJECTED = (
        "gateway.rejected",
        staff_text("Payment request refused by the payment processor"),
    )
    PAYMENT_RECONCILED = "payment.reconciled", staff_text("Payment outcome confirmed")
    PAYMENT_UNRESOLVED = (
        "payment.unresolved",
        staff_text("Payment outcome still unknown (Square did not say)"),
    )
    PAYMENT_PAID_TWICE = "payment.paid_twice", staff_text("Paid twice — refund one")
    REFUND_REQUESTED = "refund.requested", staff_text("Refund requested")
    REFUND_CREATED = "refund.created", staff_text("Refund made")
    REFUND_FAILED = "refund.failed", staff_text("Refund refused by the payment processor")
    DECLINES_SPIKE = "declines.spike", staff_text("Unusual number of declined cards")
    LOGIN = "login", staff_text("Logged in")
    LOGIN_FAILED = "login.failed", staff_text("Login failed")
    LOGOUT = "logout", staff_text("Logged out")
    REAUTH = "reauth", staff_text("Confirmed it's them")
    ACCOUNT_LOCKED = "account.locked", staff_text("Account locked after failed logins")
    PASSWORD_CHANGED = "password.changed", staff_text("Password changed")
    SESSIONS_REVOKED = "sessions.revoked", staff_text("Logged out everywhere")
    MFA_ENROLLED = "mfa.enrolled", staff_text("Two-step verification turned on")
    MFA_RECOVERY_CODES_REPLACED = (
        "mfa.recovery_codes_replaced",
        staff_text("New recovery codes made"),
    )
    MFA_RECOVERY_CODE_USED = "mfa.recovery_code_used", staff_text("Recovery code used")
    USER_CREATED = "user.created", staff_text("User created")
    USER_DEACTIVATED = "user.deactivated", staff_text("User deactivated")
    USER_REACTIVATED = "user.reactivated", staff_text("User reactivated")
    USER_UNLOCKED = "user.unlocked", staff_text("User's lockout cleared")
    USER_REFUNDS_GRANTED = "user.refunds_granted", staff_text("User allowed to refund")
    USER_REFUNDS_REVOKED = "user.refunds_revoked", staff_text("User's refund permission taken away")
    USER_MFA_RESET = "user.mfa_reset", staff_text("User's two-step verification reset")
    USER_PASSWORD_RESET = "user.password_reset", staff_text("User given a temporary password")
    INTEGRITY_BASELINE = "integrity.baseline", staff_text("Integrity baseline recorded")
    INTEGRITY_ALERT = "integrity.alert", staff_text("Payment page changed")
    SECURITY_REVIEW = "security.review", staff_text("Security review recorded")
    CSP_VIOLATION = "csp.violation", staff_text("Blocked by the Content-Security-Policy")
    RATELIMIT_HIT = "ratelimit.hit", staff_text("Rate limit reached")
    WEBHOOK_BAD_SIGNATURE = "webhook.bad_signature", staff_text("Webhook with a bad signature")
    AUDIT_EXPORTED = "audit.exported", staff_text("Audit trail downloaded")
    REMINDER_SENT = "reminder.sent", staff_text("Reminder sent")
    REMINDER_FAILED = "reminder.failed", staff_text("Reminder could not be sent")
    REMINDERS_STOPPED = "reminders.stopped", staff_text("Reminders stopped by staff")
    REMINDERS_OPTED_OUT = "reminders.opted_out", staff_text("Patient asked for no more reminders")
    SURGE_STARTED = "surge.started", staff_text("Surge of failures: admins alerted")
    SURGE_ACKNOWLEDGED = "surge.acknowledged", staff_text("Surge of failures acknowledged")
    SURGE_RECOVERED = "surge.recovered", staff_text("Surge of failures over")
    PROBLEM_REPORTED = "problem.reported", staff_text("Patient reported a problem")
    PROBLEM_RESOLVED = "problem.resolved", staff_text("Problem report resolved")
    PROBLEM_NOTICE_FAILED = (
        "problem.notice_failed",
        staff_text("Front desk could not be emailed about a problem report"),
    )
    SMS_QUEUED = "sms.queued", staff_text("Text message waiting for clinic hours")
    SMS_DELIVERED = "sms.delivered", staff_text("Text message delivered")
    SMS_UNDELIVERED = (
        "sms.undelivered",
        staff_text("Text message not delivered by the phone carrier"),
    )
    SMS_OPTED_OUT = "sms.opted_out", staff_text("Patient replied STOP: no more texts")
    SMS_OPTED_IN = "sms.opted_in", staff_text("Patient replied START: texts allowed again")
    SMS_HELP = "sms.help", staff_text("Patient replied HELP")
    RECEIPT_SENT = "receipt.sent", staff_text("Receipt sent to the patient")
    RECEIPT_FAILED = "receipt.failed", staff_text("Receipt could not be sent")
    REFUND_NOTICE_SENT = "refund_notice.sent", staff_text("Refund notice sent to the patient")
    REFUND_NOTICE_FAILED = "refund_notice.failed", staff_text("Refund notice could not be sent")
    EXPORT_DOWNLOADED = "export.downloaded", staff_text("Export downloaded")
    NEW_LINK_REQUESTED = "new_link.requested", staff_text("Patient asked for a new link")
    NEW_LINK_SENT = "new_link.sent", staff_text("New link sent at the patient's request")
    NEW_LINK_DISMISSED = "new_link.dismissed", staff_text("Request for a new link dismissed")
    NEW_LINK_NOTICE_FAILED = (
        "new_link.notice_failed",
        staff_text("Front desk could not be emailed about a request for a new link"),
    )
    PAY_LOOKUP_FOUND = "pay.lookup_found", staff_text("Patient found the bill by statement number")
    PAY_LOOKUP_FAILED = (
        "pay.lookup_failed",
        staff_text("Statement number lookup found no open bill"),
    )

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

    OPEN = "open", staff_text("Waiting for the front desk")
    DONE = "done", staff_text("New link sent")
    DISMISSED = "dismissed", staff_text("Dismissed")


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
