"""What paying part now costs the server (issue 11), in-process like bench/load.py's charge work:
the median CPU per charge POST (less the demo gateway's own time) for a whole payment of a plain
link (the baseline, measured in the same run, interleaved), a part payment of a link with a
minimum, and paying that link's rest; and the CPU per GET of the open pay page for a plain link
and a link paid in part (both from OpenPages). Prints each with its ratio to the baseline.

    PYTHONPATH=$PWD .venv/bin/python bench/part_payment.py [--charges 300] [-n 3000]
"""

from __future__ import annotations

import argparse
import logging
import re
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from bench.load import CARD_NONCE, PROXY_HEADERS, TimedGateway, bench_env, make_app
from bench.profile_request import cpu_per_request, environ_for

HOST = "127.0.0.1:8443"


def new_links(app, count: int, min_payment: str) -> list[str]:
    from payapp.db import get_session
    from payapp.links import LinkDraft, LinkRules, create_link, sign_token

    rules = LinkRules.from_config(app.config)
    with app.app_context():
        session = get_session()
        return [
            "/pay/"
            + sign_token(
                create_link(
                    session,
                    LinkDraft(
                        patient_name=f"Bench Patient {i}",
                        amount="200.00",
                        reference=f"PART-{min_payment or 'W'}-{i}",
                        send_now=False,
                        min_payment=min_payment,
                    ),
                    rules,
                ),
                app.config["SECRET_KEY"],
            )
            for i in range(count)
        ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--charges", type=int, default=300)
    parser.add_argument("-n", type=int, default=3000, help="GETs per page target")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(bench_env(Path(tmp), 8443))
        gateway = TimedGateway(app.extensions["payapp.gateway"])
        app.extensions["payapp.gateway"] = gateway
        plain = new_links(app, args.charges + 1, "")
        parts = new_links(app, args.charges + 1, "50")
        client = app.test_client(use_cookies=False)
        first = client.get(plain[0], headers={**PROXY_HEADERS, "Host": HOST})
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', first.text)[1]
        cookie = next(
            c.split(";", 1)[0] for c in first.headers.getlist("Set-Cookie") if "_session=" in c
        )

        def post(path: str, extra: dict[str, str]) -> float:
            headers = {
                **PROXY_HEADERS,
                "Host": HOST,
                "Cookie": cookie,
                "Referer": f"https://{HOST}{path}",
                "HX-Request": "true",
            }
            form = {
                "csrf_token": csrf,
                "source_id": CARD_NONCE,
                "postal_code": "94103",
                "attempt_key": secrets.token_urlsafe(24),
                **extra,
            }
            g_cpu = gateway.cpu
            cpu = time.thread_time()
            response = client.post(path, data=form, headers=headers)
            spent = (time.thread_time() - cpu - (gateway.cpu - g_cpu)) * 1000
            if response.status_code != 200 or "Payment received" not in response.text:
                raise RuntimeError(f"a charge answered {response.status_code}")
            return spent

        whole, part, rest = [], [], []
        for i in range(1, args.charges + 1):  # interleaved: other load hits all three alike
            whole.append(post(plain[i], {}))
            part.append(post(parts[i], {"pay_choice": "other", "other_amount": "50"}))
            rest.append(post(parts[i], {"pay_choice": "full", "balance_cents": "15000"}))
        warm = args.charges // 10
        base = statistics.median(whole[warm:])
        print(f"charge POST, CPU per request less the gateway's ({args.charges} each, median):")
        for name, values in (
            ("whole payment, plain link (baseline)", whole),
            ("part payment ($50 of $200)", part),
            ("paying the rest ($150)", rest),
        ):
            ms = statistics.median(values[warm:])
            print(f"  {name:38} {ms:6.3f} ms  ({ms / base:.2f}x of the baseline)")

        open_plain, open_part = new_links(app, 1, "")[0], new_links(app, 1, "50")[0]
        post(open_part, {"pay_choice": "other", "other_amount": "50"})
        for path in (open_plain, open_part):  # the first view records link.viewed
            client.get(path, headers={**PROXY_HEADERS, "Host": HOST})
        page_base = cpu_per_request(app, environ_for(open_plain), args.n)
        page_part = cpu_per_request(app, environ_for(open_part), args.n)
        print(f"open pay page GET, CPU per request (best of 5 batches of {args.n // 5}):")
        print(f"  {'plain link (baseline)':38} {page_base:6.3f} ms  (1.00x)")
        print(
            f"  {'link paid in part, with the choice':38} {page_part:6.3f} ms  "
            f"({page_part / page_base:.2f}x of the baseline)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
