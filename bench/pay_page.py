#!/usr/bin/env python3
"""How fast is the patient page under real gunicorn, relative to the cheapest request?

Starts gunicorn as deploy/gunicorn.conf.py does on one VM (1 process, 8 threads), demo mode,
a fresh SQLite database in WAL mode, then drives it from this process with N client threads
for a fixed time and prints requests/second and latency percentiles for:
  - GET /healthz       (baseline: one SELECT 1)
  - GET /pay/<token>   (the patient's page: token check, link lookup, full render)
  - GET /login         (a static-ish page with CSRF and CSP nonces)
and each one's ratio to the baseline measured in the same run. Rate limits are raised so they
do not cap the measurement.

    .venv/bin/python bench/pay_page.py [--seconds 5] [--clients 8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port: int, path: str, seconds: float, clients: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker():
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine, bad = [], 0
        while time.monotonic() < stop:
            start = time.perf_counter()
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                bad += 1
            mine.append(time.perf_counter() - start)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.monotonic() - began), latencies, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYAPP_", "FLASK_"))}
        env.update(
            PAYAPP_INSTANCE_PATH=f"{tmp}/instance",
            PAYAPP_DATABASE_URL=f"sqlite:///{tmp}/bench.db",
            PAYAPP_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            PAYAPP_RATELIMIT_PAY_VIEW="1000000 per minute",
            PAYAPP_RATELIMIT_INVALID_TOKEN="1000000 per minute",
        )
        flask = [str(BIN / "flask"), "--app", "payapp"]
        subprocess.run([*flask, "init-db"], cwd=ROOT, env=env, check=True, capture_output=True)
        out = subprocess.run(
            [
                *flask,
                "create-link",
                "--amount",
                "125.00",
                "--name",
                "Bench Patient",
                "--email",
                "bench@example.com",
                "--reference",
                "B-1",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        pay_path = urlsplit(out.stdout.strip().splitlines()[-1]).path
        server = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        print("gunicorn did not start", file=sys.stderr)
                        return 2
                    time.sleep(0.1)
            load(port, "/healthz", 1, 2)  # warm up
            results = {}
            for name, path in (
                ("GET /healthz (baseline)", "/healthz"),
                ("GET /pay/<token>", pay_path),
                ("GET /login", "/login"),
            ):
                rps, lat, errors = load(port, path, args.seconds, args.clients)
                results[name] = (rps, lat, errors)
        finally:
            server.terminate()
            server.wait(timeout=10)

    base = results["GET /healthz (baseline)"][0]
    print(
        f"gunicorn 1 process x 8 threads, {args.clients} clients, {args.seconds:g} s each, "
        f"SQLite WAL, demo mode; {os.cpu_count()} CPUs"
    )
    print(
        f"{'request':28} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'errors':>7} {'vs baseline':>12}"
    )
    for name, (rps, lat, errors) in results.items():
        qs = statistics.quantiles(lat, n=20)
        print(
            f"{name:28} {rps:8.0f} {statistics.median(lat) * 1000:8.1f} "
            f"{qs[18] * 1000:8.1f} {errors:7d} {rps / base:11.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
