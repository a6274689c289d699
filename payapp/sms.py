"""Text messages through Twilio's official SDK: the transport, its errors in words staff can act
on, the keywords patients reply with, and the clinic hours texts may go out in.

No database and no Flask here: notify.py decides whether to send, texting.py records what
Twilio tells us.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from .config import parse_text_hours

# Twilio's error codes that mean something to us (twilio.com/docs/api/errors).
INVALID_NUMBER_CODES = {21211, 21614}  # not a valid 'To' number / not a mobile number
UNSUBSCRIBED_CODE = 21610  # the recipient replied STOP to this sender
TOO_MANY_REQUESTS_CODE = 20429
CARRIER_ERRORS = {
    "30003": "the phone is switched off or out of reach",
    "30004": "the number blocks messages from us",
    "30005": "the number does not exist at the carrier",
    "30006": "it is a landline or the carrier cannot take texts",
    "30007": "the carrier filtered it as possible spam",
    "30008": "the carrier gave no reason",
}

# Words a patient may reply; Twilio's own opt-out handling answers them (its docs list these).
# Twilio's own English words, and Spanish ones for the clinic's Spanish-speaking patients: Twilio
# knows those only when the clinic adds them to a Messaging Service's Advanced Opt-Out (then it
# sends OptOutType and confirms); without that, payapp still stops texting the number.
STOP_WORDS = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
STOP_WORDS |= {"alto", "parar", "cancelar"}
START_WORDS = {"start", "yes", "unstop", "optin", "comenzar"}
HELP_WORDS = {"help", "info", "ayuda"}


class SmsError(Exception):
    """Twilio did not take the text. ``retry_later``: a rate limit or an outage, not the
    number's fault; ``opted_out``: the number replied STOP (Twilio's 21610)."""

    def __init__(self, text: str, *, code: str = "", retry_later=False, opted_out=False):
        super().__init__(text)
        self.code = code
        self.retry_later = retry_later
        self.opted_out = opted_out


class RebasedHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, sending to another host (the local stand-in in tests)."""

    def __init__(self, base_url: str, timeout: float):
        super().__init__(timeout=timeout)
        self.base = urlsplit(base_url)

    def request(self, method, url, *args, **kwargs) -> Response:
        parts = urlsplit(url)._replace(scheme=self.base.scheme, netloc=self.base.netloc)
        return super().request(method, parts.geturl(), *args, **kwargs)


class TwilioSms:
    """Sends through Twilio's Messages API, with status callbacks to our webhook."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_: str | None,
        messaging_service_sid: str | None,
        status_callback: str,
        base_url: str | None = None,
        timeout: float = 15,
    ):
        http_client = (
            RebasedHttpClient(base_url, timeout) if base_url else TwilioHttpClient(timeout=timeout)
        )
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_ = from_
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback

    @classmethod
    def from_config(cls, cfg) -> TwilioSms:
        return cls(
            cfg["TWILIO_ACCOUNT_SID"],
            cfg["TWILIO_AUTH_TOKEN"],
            from_=cfg["TWILIO_FROM"],
            messaging_service_sid=cfg["TWILIO_MESSAGING_SERVICE_SID"],
            status_callback=cfg["TWILIO_WEBHOOK_URL"],
            base_url=cfg["TWILIO_BASE_URL"],
            timeout=cfg["TWILIO_TIMEOUT"],
        )

    def send(self, to: str, body: str, name: str) -> str:
        """Hand the text to Twilio; returns its message id (SM...)."""
        sender = (
            {"messaging_service_sid": self.messaging_service_sid}
            if self.messaging_service_sid
            else {"from_": self.from_}
        )
        try:
            message = self.client.messages.create(
                to=to, body=body, status_callback=self.status_callback, **sender
            )
        except TwilioException as exc:
            raise error_from_twilio(exc) from exc
        except requests.RequestException as exc:
            raise SmsError(
                f"Twilio could not be reached ({type(exc).__name__}); the text will be retried.",
                retry_later=True,
            ) from exc
        return message.sid


def error_from_twilio(exc: TwilioException) -> SmsError:
    code = int(getattr(exc, "code", 0) or 0)
    status = int(getattr(exc, "status", 0) or 0)
    if code == TOO_MANY_REQUESTS_CODE or status == 429:
        return SmsError(
            "Twilio asked us to slow down (20429); the text will be retried.",
            code=str(code or 429),
            retry_later=True,
        )
    if code in INVALID_NUMBER_CODES:
        return SmsError(
            f"Twilio says this is not a mobile number it can text ({code}). Check the number, "
            "or send the link by email.",
            code=str(code),
        )
    if code == UNSUBSCRIBED_CODE:
        return SmsError(
            "Not sent: this number has replied STOP to our texts (21610). It gets texts again "
            "only after the patient texts START.",
            code=str(code),
            opted_out=True,
        )
    if status in (401, 403):
        return SmsError(
            f"Twilio refused our account details ({code or status}): an admin must check "
            "PAYAPP_TWILIO_ACCOUNT_SID and PAYAPP_TWILIO_AUTH_TOKEN.",
            code=str(code or status),
        )
    if status >= 500:
        return SmsError(
            f"Twilio had a problem ({status}); the text will be retried.",
            code=str(code or status),
            retry_later=True,
        )
    detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or str(exc)
    return SmsError(f"Twilio refused the text ({code}: {detail})"[:500], code=str(code))


def carrier_error_text(code: str | None) -> str:
    """A delivery failure from a status callback, in words staff can act on."""
    reason = CARRIER_ERRORS.get(code or "", "the carrier or Twilio gave no reason we know")
    return (
        f"The text was not delivered ({code or 'no code'}): {reason}. "
        "Check the number or send the link by email."
    )


def keyword_of(body: str) -> str | None:
    """'stop', 'start' or 'help' for a reply made of one of those words, else None."""
    word = (body or "").strip().strip(".!").lower()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def is_signed_by_twilio(auth_token: str, url: str, params: dict, signature: str) -> bool:
    """X-Twilio-Signature over the URL Twilio was configured with and the posted fields."""
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))


def within_text_hours(now: datetime, timezone: str, hours, days) -> bool:
    """Whether ``now`` (aware) falls inside the clinic's texting hours, in its own time zone."""
    window = parse_text_hours(hours, days)
    if window is None:
        return True
    start, end, weekdays = window
    local = now.astimezone(ZoneInfo(timezone))
    minute = local.hour * 60 + local.minute
    return local.weekday() in weekdays and start <= minute < end
