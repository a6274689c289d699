"""Answer time of a statement-number lookup (issue 11) for each outcome, measured in-process on
lookup.find_by_statement with N links (most open, each with a ZIP code): the failures (unknown
statement, wrong name, wrong ZIP, cancelled link) must take the same time, and a ZIP lookup the
same as a name lookup, so the time says nothing about which it was. Prints the median and 90th
percentile per outcome and each as a ratio to "unknown statement" measured in the same run,
interleaved round by round in a shuffled order (other load on the machine hits every outcome
alike).

    PYTHONPATH=$PWD .venv/bin/python bench/lookup_timing.py [--links 5000] [--rounds 3000]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.load import bench_env, create_links, make_app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--links", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3000)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from sqlalchemy import update

    from payapp import lookup
    from payapp.db import get_session
    from payapp.links import cancel_link
    from payapp.models import PaymentLink

    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(bench_env(Path(tmp), 8000))
        create_links(app, args.links, "ST")  # "Load Patient <i>", statement ST-<i>
        with app.app_context():
            session = get_session()
            cancel_link(session, session.get(PaymentLink, 2), staff_id=None)  # ST-1
            session.execute(update(PaymentLink).values(postal_code="10027"))
            session.commit()
        # A link's last name is its number ("Load Patient 4"): each case below fails for the one
        # reason its name gives, or is found (checked before timing).
        cases = {
            "unknown statement": lookup.StatementQuery("ST-NOPE", "3"),
            "wrong name": lookup.StatementQuery("ST-3", "Smith"),
            "wrong ZIP": lookup.StatementQuery("ST-3", "", "10451"),
            "cancelled link": lookup.StatementQuery("ST-1", "1"),
            "found": lookup.StatementQuery("ST-4", "4"),
            "found by ZIP": lookup.StatementQuery("ST-5", "", "10027"),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        with app.app_context():
            session = get_session()
            for name, query in cases.items():
                found = lookup.find_by_statement(session, query) is not None
                if found != name.startswith("found"):
                    raise SystemExit(f"the case {name!r} is not what it says")
            # A fresh order each round: whatever runs right after a found (slower) lookup pays
            # for it, and that must not land on one outcome.
            order = list(cases.items())
            shuffle = random.Random(11).shuffle
            for _ in range(args.rounds):
                shuffle(order)
                for name, query in order:
                    start = time.perf_counter()
                    lookup.find_by_statement(session, query)
                    times[name].append((time.perf_counter() - start) * 1000)
        app.extensions["payapp.engine"].dispose()
    base = statistics.median(times["unknown statement"])
    print(f"{args.links} links, {args.rounds} rounds, each lookup audited and committed (SQLite)")
    print(f"{'outcome':<20} {'median ms':>10} {'p90 ms':>8} {'median ratio':>13}")
    for name, values in times.items():
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<20} {median:>10.3f} {p90:>8.3f} {median / base:>13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
