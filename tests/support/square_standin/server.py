"""The HTTP side: ``SquareStandin`` (lifecycle, routing, authorization, faults, response schema
checks) on a standard-library threading server, one thread per request."""

from __future__ import annotations

import contextlib
import copy
import hmac
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .faults import Fault, FaultInjection
from .payments import CANCEL_COMPLETED_ANSWERS, NONCES, PaymentOperations
from .refunds import RefundOperations
from .schema import DEFAULT_SPEC_PATH, SpecValidators, load_spec_validators
from .state import KeyEntry
from .webhooks import WebhookEvents
from .wire import fail, invalid


@dataclass
class _Reply:
    status: int
    body: dict | None
    operation: str | None = None  # spec operationId, for response validation


Route = tuple[str | None, Callable[..., tuple[int, dict]], dict[str, str]]


class SquareStandin(PaymentOperations, RefundOperations, WebhookEvents, FaultInjection):
    """A Square stand-in on 127.0.0.1. ``start()`` it (or use ``with``) and read ``base_url``.

    State tests can read (plain dicts/lists, safe to inspect between requests):

    * ``payments`` / ``refunds``: id -> the object's CURRENT JSON, as GET would return it.
    * ``requests``: (method, request target incl. any query string, parsed JSON body or None)
      for every request received, faulted and unauthorized ones included;
      ``request_headers`` runs parallel (lower-case names); ``square_versions`` is a shortcut.
    * ``charges``: a snapshot of every payment approved or completed at creation (money moved);
      declined (FAILED) payments are in ``payments`` but not here.
    * ``schema_errors``: responses/webhooks that failed the OpenAPI schema; ``server_errors``:
      exceptions inside the stand-in (answered as HTTP 500).

    Test hooks: ``inject``/``clear_faults``, ``wait_until_idle``, ``reset``, ``update_payment``,
    ``create_dashboard_refund``, ``update_refund``, ``complete_refund``, ``webhook``,
    ``check_schema``.
    """

    def __init__(
        self,
        *,
        access_token: str = "standin-token",  # noqa: S107 - a fake token for a local test server
        location_id: str = "LSTANDIN1",
        currency: str = "USD",
        location_name: str = "Stand-in Dental",
        spec_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        merchant_id: str = "MSTANDIN1",
        application_id: str = "sandbox-sq0idb-STANDIN",
        country: str = "US",
        timezone: str = "America/New_York",
        location_status: str = "ACTIVE",
        location_capabilities: tuple[str, ...] = ("CREDIT_CARD_PROCESSING",),
        validate: bool | None = None,
        verbose: bool = False,
        cancel_completed_by_key: str = "error",
    ):
        if cancel_completed_by_key not in CANCEL_COMPLETED_ANSWERS:
            raise ValueError(f"cancel_completed_by_key must be one of {CANCEL_COMPLETED_ANSWERS}")
        self.cancel_completed_by_key = cancel_completed_by_key
        self.access_token = access_token
        self.location_id = location_id
        self.currency = currency
        self.location_name = location_name
        self.merchant_id = merchant_id
        self.application_id = application_id
        self.host = host
        self.port = port
        self.verbose = verbose
        self.spec_path = Path(spec_path) if spec_path else DEFAULT_SPEC_PATH
        self.validators: SpecValidators | None = None
        if validate is not False:
            try:
                self.validators = load_spec_validators(str(self.spec_path))
            except (ImportError, OSError) as exc:
                if validate:
                    raise
                print(f"square stand-in: schema validation off ({exc})", file=sys.stderr)
        self._location = {
            "id": location_id,
            "name": location_name,
            "business_name": location_name,
            "timezone": timezone,
            "capabilities": list(location_capabilities),
            "status": location_status,
            "created_at": "2024-01-02T15:04:05.000Z",
            "merchant_id": merchant_id,
            "country": country,
            "language_code": "en-US",
            "currency": currency,
            "type": "PHYSICAL",
        }

        self.payments: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.request_headers: list[dict[str, str]] = []  # lower-case names, parallel to requests
        self.charges: list[dict] = []
        self.schema_errors: list[str] = []
        self.server_errors: list[str] = []  # exceptions inside the stand-in itself (a bug)
        self._payment_keys: dict[str, KeyEntry] = {}
        self._refund_keys: dict[str, KeyEntry] = {}
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._last_stamp = datetime.fromtimestamp(0, UTC)
        self._busy = 0
        self._idle = threading.Condition()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def validating(self) -> bool:
        return self.validators is not None

    def start(self) -> SquareStandin:
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"square-standin-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # wakes injected sleeps
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self.wait_until_idle(timeout=2)

    def __enter__(self) -> SquareStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_until_idle(self, timeout: float = 5.0) -> bool:
        """Block until no request is being handled (e.g. a delayed one still sleeping)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout)

    def reset(self) -> None:
        """Forget every payment, refund, key, fault and recorded request."""
        with self._lock:
            for container in (self.payments, self.refunds, self._payment_keys, self._refund_keys):
                container.clear()
            for seq in (
                self.requests,
                self.request_headers,
                self.charges,
                self.schema_errors,
                self.server_errors,
                self._faults,
            ):
                seq.clear()

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                self._idle.notify_all()

    @property
    def square_versions(self) -> list[str | None]:
        return [h.get("square-version") for h in self.request_headers]

    # --- request handling ----------------------------------------------------------------------

    def _route(self, method: str, path: str) -> Route | None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if len(parts) < 2 or parts[0] != "v2":
            return None
        resource, rest = parts[1], parts[2:]
        table: dict[tuple[str, str, int], tuple[str | None, Callable[..., tuple[int, dict]]]] = {
            ("GET", "payments", 0): ("ListPayments", self._list_payments),
            ("POST", "payments", 0): ("CreatePayment", self._create_payment),
            ("GET", "payments", 1): ("GetPayment", self._get_payment),
            ("POST", "payments", 2): ("", self._payment_action),
            ("GET", "refunds", 0): ("ListPaymentRefunds", self._list_refunds),
            ("POST", "refunds", 0): ("RefundPayment", self._refund_payment),
            ("GET", "refunds", 1): ("GetPaymentRefund", self._get_refund),
            ("GET", "locations", 0): (None, self._list_locations),
            ("GET", "locations", 1): (None, self._get_location),
        }
        if method == "POST" and resource == "payments" and rest == ["cancel"]:
            return "CancelPaymentByIdempotencyKey", self._cancel_by_key, {}
        hit = table.get((method, resource, len(rest)))
        if hit is None:
            return None
        operation, handler = hit
        params = {"id": rest[0]} if rest else {}
        if operation == "":  # POST /v2/payments/{id}/<action>
            action = rest[1]
            if action not in ("cancel", "complete"):
                return None
            operation = "CancelPayment" if action == "cancel" else "CompletePayment"
            params["action"] = action
        return operation, handler, params

    def _serve(self, handler: _Handler) -> None:
        """Everything about one HTTP request; called on the request's own thread."""
        with self._in_flight():
            method = handler.command
            raw = handler.read_body()
            parsed: Any = None
            bad_json = False
            if raw.strip():
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    bad_json = True
            headers = {k.lower(): v for k, v in handler.headers.items()}
            split = urlsplit(handler.path)
            with self._lock:
                self.requests.append((method, handler.path, parsed))
                self.request_headers.append(headers)
            route = self._route(method, split.path)
            operation = route[0] if route else None
            fault = self._take_fault(operation)

            sleep_first = fault is not None and fault.kind in ("delay", "timeout_no_charge")
            # (a stop() during the sleep abandons the request rather than charging late)
            if sleep_first and (self._stopping.wait(fault.delay) or fault.kind != "delay"):
                handler.drop()
                return
            if fault and fault.kind == "500":
                status, body = fail("API_ERROR", "INTERNAL_SERVER_ERROR", "Internal server error.")
                reply = _Reply(status, body, operation)
            elif fault and fault.kind == "temporary_error":
                detail = NONCES["cnon:standin-temporary-error"].detail
                status, body = fail("PAYMENT_METHOD_ERROR", "TEMPORARY_ERROR", detail)
                reply = _Reply(status, body, operation)
            else:
                reply = self._process(route, headers, parsed, bad_json, split.query)
            if reply.body is not None and reply.operation:
                self._check_response(reply.operation, reply.body)
            if fault and fault.kind == "drop_after_charge":
                handler.drop()
                return
            if fault and fault.kind == "delay_after_charge" and self._stopping.wait(fault.delay):
                handler.drop()
                return
            handler.send_json(reply.status, reply.body)

    def _process(
        self, route: Route | None, headers: dict, parsed: Any, bad_json: bool, query: str
    ) -> _Reply:
        operation = route[0] if route else None
        auth = headers.get("authorization")
        if auth is None:
            detail = (
                "Your request did not include an `Authorization` http header with an access token."
            )
            return _Reply(*fail("AUTHENTICATION_ERROR", "UNAUTHORIZED", detail), operation)
        if not hmac.compare_digest(auth.encode(), f"Bearer {self.access_token}".encode()):
            detail = "This request could not be authorized."
            return _Reply(*fail("AUTHENTICATION_ERROR", "UNAUTHORIZED", detail), operation)
        if route is None:
            return _Reply(*invalid("NOT_FOUND", "Resource not found."))
        if bad_json or (parsed is not None and not isinstance(parsed, dict)):
            detail = "The request body is not a JSON object."
            return _Reply(*invalid("BAD_REQUEST", detail), operation)
        operation, func, params = route
        try:
            with self._lock:
                status, body = func(params=params, body=parsed, query=parse_qs(query))
        except Exception as exc:  # a stand-in bug: answer like Square's 500 and keep a note
            self.server_errors.append(f"{type(exc).__name__}: {exc}")
            status, body = fail("API_ERROR", "INTERNAL_SERVER_ERROR", "Stand-in error.")
        return _Reply(status, body, operation)

    def _check_response(self, operation: str, body: dict) -> None:
        if self.validators is None or operation not in self.validators.response_schema:
            return
        schema = self.validators.response_schema[operation]
        for message in self.validators.check(schema, body):
            self.schema_errors.append(f"{operation} response: {message}")

    def check_schema(self, schema_name: str, instance: Any) -> list[str]:
        """Validate ``instance`` against a component schema; returns messages, records nothing."""
        if self.validators is None:
            raise RuntimeError(
                "schema validation is off (openapi-schema-validator or spec missing)"
            )
        return self.validators.check(schema_name, instance)

    # --- locations (not in the subset spec: never validated) -----------------------------------

    def _get_location(self, *, params: dict, body: dict | None, query: dict):
        if params["id"] not in (self.location_id, "main"):
            return invalid("NOT_FOUND", f"Location `{params['id']}` not found.")
        return 200, {"location": copy.deepcopy(self._location)}

    def _list_locations(self, *, params: dict, body: dict | None, query: dict):
        return 200, {"locations": [copy.deepcopy(self._location)]}


# --- HTTP plumbing -----------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, standin: SquareStandin):
        self.standin = standin
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Unblock keep-alive threads still waiting for a next request."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):  # the client went away; nothing to report
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like Square
    server_version = "SquareStandin/1.0"
    sys_version = ""
    timeout = 60  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def do_GET(self) -> None:
        self.server.standin._serve(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode("utf-8") if body is not None else b""
        with contextlib.suppress(OSError):  # a client that timed out has hung up
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def drop(self) -> None:
        """Close the connection without a single response byte."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin.verbose:
            super().log_message(format, *args)
