"""Profile payapp's per-request overhead in-process (issue 10, third round): N requests through
the WSGI app (production mode behind one trusted proxy, as bench/load.py), for /healthz, the open
pay page and the bare app; prints CPU per request, each as a ratio to the bare app in the same
run, then (with --profile) cProfile's top functions by cumulative time for each payapp target.

    PYTHONPATH=$PWD .venv/bin/python bench/profile_request.py [-n 5000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import tempfile
import time
from pathlib import Path

from werkzeug.test import EnvironBuilder

from bench.bare_app import app as bare
from bench.load import PROXY_HEADERS, bench_env, create_links, make_app

HOST = "127.0.0.1:8000"


def environ_for(path: str) -> dict:
    headers = {**PROXY_HEADERS, "Host": HOST}
    return EnvironBuilder(path=path, headers=headers, base_url=f"http://{HOST}").get_environ()


def call(app, environ) -> int:
    status = []
    body = app(dict(environ), lambda s, h, e=None: status.append(s))
    for _ in body:
        pass
    if hasattr(body, "close"):
        body.close()
    return int(status[0].split()[0])


def cpu_per_request(app, environ, n: int) -> float:
    for _ in range(50):
        assert call(app, environ) == 200
    best = float("inf")
    for _ in range(5):  # the best of five batches: other load on a shared machine only adds
        start = time.process_time()
        for _ in range(n // 5):
            call(app, environ)
        best = min(best, (time.process_time() - start) / (n // 5) * 1000)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        app = make_app(bench_env(Path(tmp), 8000))
        (path,) = create_links(app, 1, "PROFILE")
        call(app, environ_for(path))  # the first view records link.viewed
        targets = {
            "bare /healthz": (bare, "/healthz"),
            "payapp /healthz": (app, "/healthz"),
            "GET /pay/<token>": (app, path),
        }
        base = None
        for name, (wsgi, p) in targets.items():
            ms = cpu_per_request(wsgi, environ_for(p), args.n)
            base = base or ms
            print(f"{name:20} {ms:.3f} ms CPU/request  ({base / ms:.2f}x of bare)")
        if args.profile:
            for name, (wsgi, p) in list(targets.items())[1:]:
                env = environ_for(p)
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(args.n):
                    call(wsgi, env)
                prof.disable()
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(45)
                print(f"--- {name}\n{out.getvalue()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
