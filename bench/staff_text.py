"""What translating staff words where they are shown costs (issue 11, staff strings): CPU per
render of the staff links page (50 links, each status badge and filter option through the
templates' ``| translated``) and of a paid link's page (payments, timeline, decline words), with
``translated`` as payapp has it and, interleaved in the same run as the baseline, with
``translated`` replaced by ``str`` (the labels printed as written, as before). Prints each
median with its ratio to the baseline.

    PYTHONPATH=$PWD .venv/bin/python bench/staff_text.py [-n 400]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from bench.load import bench_env, make_app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=400, help="renders of each page in each mode")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from flask import g, render_template

    from payapp import accounts, audit, i18n, links, payments
    from payapp.db import get_session
    from payapp.links import LinkDraft, LinkRules, create_link
    from payapp.models import PaymentLink, StaffUser
    from payapp.states import LinkStatus
    from payapp.views.staff import ActionForm

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(bench_env(Path(tmp), 8443))
        rules = LinkRules.from_config(app.config)
        with app.app_context():
            session = get_session()
            user = accounts.create_user(
                session, "bench@example.com", "maple lantern orbit", "staff"
            )
            made = [
                create_link(
                    session,
                    LinkDraft(
                        patient_name=f"Bench Patient {i}",
                        amount="125.00",
                        reference=f"TXT-{i}",
                        send_now=False,
                    ),
                    rules,
                )
                for i in range(50)
            ]
            paid_id = made[0].id
            gateway = app.extensions["payapp.gateway"]
            for nonce in ("cnon:card-nonce-declined", "cnon:card-nonce-ok"):
                with contextlib.suppress(payments.PaymentError):  # the decline is recorded
                    payments.charge_link(
                        session,
                        gateway,
                        made[0],
                        source_id=nonce,
                        attempt_key=secrets.token_urlsafe(24),
                    )
            user_id = user.id

        def render_list() -> str:
            found = links.list_links(get_session(), per_page=50)
            return render_template(
                "staff/links.html",
                found=found,
                links_page=found.links,
                query="",
                status="",
                statuses=list(LinkStatus),
                action_form=ActionForm(),
            )

        def render_detail() -> str:
            link = get_session().get(PaymentLink, paid_id)
            return render_template(
                "staff/link_detail.html",
                link=link,
                status=links.effective_status(link),
                url="https://example.com/pay/x",
                qr="",
                timeline=audit.link_timeline(get_session(), link.id),
                link_request=None,
                duplicates=[],
                action_form=ActionForm(),
                may_refund=True,
                refund_key="k",
            )

        filters = app.jinja_env.filters
        modes = {"as written (str, baseline)": str, "translated where shown": i18n.translate}
        times: dict[tuple[str, str], list[float]] = {}
        with app.test_request_context("/links", base_url="https://127.0.0.1:8443"):
            g.staff = get_session().get(StaffUser, user_id)
            for page, render in (
                ("links page, 50 links", render_list),
                ("paid link", render_detail),
            ):
                for i in range(args.n):  # interleaved: other load on the machine hits both alike
                    for mode, function in modes.items():
                        filters["translated"] = function
                        start = time.thread_time()
                        html = render()
                        times.setdefault((page, mode), []).append(time.thread_time() - start)
                        if i == 0 and "Paid" not in html:
                            raise RuntimeError(f"the {page} did not render as expected")
        filters["translated"] = i18n.translate
        warm = args.n // 10
        print(f"CPU per render, median of {args.n - warm} (after {warm} warm-up), interleaved:")
        for page in ("links page, 50 links", "paid link"):
            base = statistics.median(times[page, "as written (str, baseline)"][warm:])
            for mode in modes:
                ms = statistics.median(times[page, mode][warm:]) * 1000
                print(f"  {page:22} {mode:28} {ms:6.3f} ms  ({ms / base / 1000:.3f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
