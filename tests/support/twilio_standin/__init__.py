"""A local stand-in for Twilio's Messages API, so the real ``twilio`` SDK can be tested offline.

It serves ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form-encoded, HTTP basic auth
with the account SID and auth token) and answers like Twilio does:

- 201 with a Message resource (``sid`` SM + 32 hex, ``status`` queued, or accepted with a
  messaging service);
- 400 ``{"code": 21211, ...}`` for an invalid 'To' number (not E.164, or Twilio's magic test
  number +15005550001), 400 21610 for a number that replied STOP (or +15005550004), 400 21603
  with no sender, 401 20003 for wrong credentials, 429 20429 when told to (``inject("429")``).

Carrier outcomes come later, as Twilio's do: ``status_callback(sid, "undelivered", "30007")``
builds the status callback Twilio would POST to the message's StatusCallback, signed with
X-Twilio-Signature; ``reply(from_, body)`` builds an incoming message (with ``OptOutType`` for
STOP/START/HELP, as Twilio's Advanced Opt-Out adds), and STOP marks the number unsubscribed.
Tests post these to the app themselves (the Flask test client), so no server of ours is needed.

Guesses (not documented by Twilio): the exact wording of error messages.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "standin-auth-token-0123456789abcd"  # noqa: S105 - the stand-in's fake secret
INVALID_NUMBER = "+15005550001"
UNSUBSCRIBED_NUMBER = "+15005550004"
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
PATH = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")
OPT_OUT = {"stop": "STOP", "unsubscribe": "STOP", "start": "START", "help": "HELP"}


@dataclass
class State:
    messages: dict[str, dict] = field(default_factory=dict)
    unsubscribed: set[str] = field(default_factory=lambda: {UNSUBSCRIBED_NUMBER})
    faults: list[str] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def error_body(status: int, code: int, message: str) -> dict:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args):  # quiet: tests read state, not logs
        pass

    def answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's name
        state = self.server.state
        with state.lock:
            state.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        match = PATH.match(self.path)
        if not match:
            return self.answer(404, error_body(404, 20404, "The requested resource was not found"))
        expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}" or match["sid"] != ACCOUNT_SID:
            return self.answer(401, error_body(401, 20003, "Authenticate"))
        with state.lock:
            fault = state.faults.pop(0) if state.faults else None
        if fault == "429":
            return self.answer(429, error_body(429, 20429, "Too Many Requests"))
        if fault == "500":
            return self.answer(500, error_body(500, 20500, "Internal Server Error"))
        to = form.get("To", "")
        if not E164.match(to) or to == INVALID_NUMBER:
            return self.answer(
                400, error_body(400, 21211, f"The 'To' number {to} is not a valid phone number.")
            )
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self.answer(400, error_body(400, 21603, "A 'From' phone number is required."))
        if to in state.unsubscribed:
            return self.answer(
                400, error_body(400, 21610, "Attempt to send to unsubscribed recipient")
            )
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        resource = {
            "account_sid": ACCOUNT_SID,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if form.get("MessagingServiceSid") else "queued",
            "subresource_uris": {
                "media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"
            },
            "to": to,
            "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
        }
        with state.lock:
            state.messages[sid] = {**resource, "status_callback": form.get("StatusCallback")}
        return self.answer(201, resource)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State


class TwilioStandin:
    """``with TwilioStandin() as twilio:`` serves on a free local port; ``base_url``, ``config``
    (payapp settings pointing at it), ``sent`` (the messages taken), and the hooks."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.server = _Server((host, port), Handler)
        self.server.state = State()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def state(self) -> State:
        return self.server.state

    @property
    def sent(self) -> list[dict]:
        return list(self.state.messages.values())

    def config(self, from_: str = "+15005550006") -> dict:
        return {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": from_,
            "TWILIO_BASE_URL": self.base_url,
        }

    def inject(self, fault: str) -> None:
        """The next Messages request answers with ``fault`` ("429" or "500")."""
        self.state.faults.append(fault)

    def signed(self, url: str, params: dict) -> tuple[dict, dict]:
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        return params, {"X-Twilio-Signature": signature}

    def status_callback(self, sid: str, status: str, error_code: str | None = None):
        """The (url, form, headers) Twilio would POST to the message's StatusCallback."""
        message = self.state.messages[sid]
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "From": message["from"] or "",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": message["to"],
        }
        if error_code:
            params["ErrorCode"] = error_code
        url = message["status_callback"]
        return (url, *self.signed(url, params))

    def reply(self, url: str, from_: str, body: str, to: str = "+15005550006"):
        """The (url, form, headers) of an incoming text from ``from_`` that Twilio would POST to
        the number's messaging webhook ``url``; STOP also unsubscribes the number, as Twilio
        does."""
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "Body": body,
            "From": from_,
            "MessageSid": "SM" + secrets.token_hex(16),
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "To": to,
        }
        keyword = OPT_OUT.get(body.strip().lower())
        if keyword:
            params["OptOutType"] = keyword
        if keyword == "STOP":
            self.state.unsubscribed.add(from_)
        elif keyword == "START":
            self.state.unsubscribed.discard(from_)
        return (url, *self.signed(url, params))

    def __enter__(self) -> TwilioStandin:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
