"""``python -m tests.support.square_standin``: serve the stand-in until Ctrl+C."""

from __future__ import annotations

import argparse
import sys
import threading

from .payments import CANCEL_COMPLETED_ANSWERS
from .server import SquareStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.square_standin",
        description="Serve a local Square stand-in (Payments, Refunds, Locations) until Ctrl+C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="standin-token", help="the access token to accept")
    parser.add_argument("--location", default="LSTANDIN1", help="the one location id")
    parser.add_argument("--currency", default="USD")
    parser.add_argument("--location-name", default="Stand-in Dental")
    parser.add_argument("--spec", default=None, help="OpenAPI subset to validate responses with")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument(
        "--cancel-completed-by-key",
        choices=CANCEL_COMPLETED_ANSWERS,
        default="error",
        help="answer to cancel-by-idempotency-key for a COMPLETED payment: 400 (error) or 200 {}",
    )
    args = parser.parse_args(argv)
    standin = SquareStandin(
        access_token=args.token,
        location_id=args.location,
        currency=args.currency,
        location_name=args.location_name,
        spec_path=args.spec,
        host=args.host,
        port=args.port,
        verbose=not args.quiet,
        cancel_completed_by_key=args.cancel_completed_by_key,
    ).start()
    print(standin.base_url, flush=True)
    print(
        f"square stand-in: token={args.token} location={args.location} currency={args.currency}; "
        "Ctrl+C to stop",
        file=sys.stderr,
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
        for message in standin.schema_errors:
            print(f"schema error: {message}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
