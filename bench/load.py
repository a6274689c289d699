#!/usr/bin/env python3
"""Throughput of payapp under the documented production gunicorn, against a bare Flask app.

One run, same settings for every target: gunicorn with deploy/gunicorn.conf.py (2 processes of
4 threads: the production WORKERS default, named on the command line since demo mode alone would
run 1), payapp in production mode behind a trusted proxy (wrk sends the X-Forwarded-Proto
and X-Forwarded-For that Caddy would), demo gateway (zero latency), SQLite in WAL mode, rate
limits off (PAYAPP_RATELIMIT_ENABLED=false). Debian's wrk drives each target with 32
connections:
  - GET /healthz on bench/bare_app.py   (the baseline: a bare one-route Flask app)
  - GET /healthz                        (payapp's cheapest request: every hook, one SELECT 1)
  - GET /pay/<token>                    (the patient's page)
  - POST /pay/<token>                   (a real charge: each request pays its own fresh link
                                         with its own attempt key, a valid CSRF token and cookie)
It prints requests/s, p50 and p99, each as a ratio to the bare app measured in the same run,
the exact wrk command, and the non-2xx/3xx responses and socket errors (both must be 0). Then
the server's own work per charge, in-process: the median time of one POST through the test
client, less the time spent inside the gateway. The links are desk links (no email or phone),
so no receipt is sent after a charge. With --limits-on, the pay page is measured once more with
rate limiting on (limits too high to refuse anything, so every request still counts its hits in
the shared SQLite store, instance/ratelimits.db).
Needs wrk and the test extras (tests/support/servers.py).

    .venv/bin/python bench/load.py [--duration 10] [--links 4000] [--charges 300] [--limits-on]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: payapp and tests.support from this checkout

from payapp.config import Defaults  # noqa: E402
from tests.support.servers import free_port, payapp_env, running_gunicorn  # noqa: E402

CONNECTIONS = 32
WRK_THREADS = 2
# The documented production settings (docs/admin.md, "Deployment"); --bind only picks the port.
# The config runs one process in demo mode (the demo gateway's memory); production runs WORKERS.
GUNICORN_OPTIONS = (
    "--config", str(ROOT / "deploy" / "gunicorn.conf.py"), "--workers", str(Defaults.WORKERS)
)  # fmt: skip
UNREFUSED = "1000000000 per minute"  # --limits-on: every hit counted, none refused
# What Caddy adds in front of gunicorn; payapp believes it with TRUSTED_PROXIES = 1.
PROXY_HEADERS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
CARD_NONCE = "cnon:card-nonce-ok"  # the demo gateway approves it
GOALS = "goals: pay page >= 0.50x the bare app (reach 0.70x), p99 <= 50 ms, charge work <= 10 ms"

# Each wrk thread reads its share of the prepared charges (one line each: path, form body) and
# sends each once; a thread that runs out stops. The first line is the session cookie.
POST_SCRIPT = """\
local queue, nexti = {}, 1
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  local me, threads, n = tonumber(wrk.thread:get("id")), tonumber(args[2]), 0
  local lines = io.lines(args[1])
  wrk.headers["Cookie"] = lines()
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  for line in lines do
    if n % threads == me - 1 then
      local path, body = line:match("^(%S+) (%S+)$")
      wrk.headers["Referer"] = args[3] .. path
      queue[#queue + 1] = wrk.format("POST", path, nil, body)
    end
    n = n + 1
  end
end
function request()
  if nexti > #queue then
    wrk.thread:stop()
    return queue[#queue]  -- a replay of the last attempt key: no second charge
  end
  nexti = nexti + 1
  return queue[nexti - 1]
end
"""


@dataclass(frozen=True)
class Charges:
    """Prepared charges: one browser session (cookie, CSRF token) and fresh open links, each
    with its own attempt key; ``form(i)`` is the i-th POST body as pay.js would send it."""

    cookie: str
    csrf_token: str
    paths: list[str]
    attempt_keys: list[str]

    def form(self, i: int) -> dict[str, str]:
        return {
            "csrf_token": self.csrf_token,
            "source_id": CARD_NONCE,
            "postal_code": "94103",
            "attempt_key": self.attempt_keys[i],
        }

    def write(self, path: Path) -> None:
        """The wrk script's data file: the cookie, then one "path body" line per charge."""
        lines = [self.cookie]
        lines += [f"{p} {urlencode(self.form(i))}" for i, p in enumerate(self.paths)]
        path.write_text("\n".join(lines) + "\n")


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad_responses: int  # non-2xx/3xx
    socket_errors: int
    server_cpu_ms: float = 0.0  # gunicorn's CPU time (all its processes) per request


def process_tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and its children (Linux /proc):
    a server's own work, which other load on a shared machine does not inflate the way it does
    requests/s."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        own_pid = int(stat.parent.name)
        if own_pid == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def bench_env(workdir: Path, port: int) -> dict[str, str]:
    """payapp's environment for the run: production behind one proxy, demo gateway, no limits."""
    return payapp_env(
        workdir,
        f"https://127.0.0.1:{port}",
        PAYAPP_ENV="production",
        PAYAPP_SECRET_KEY=secrets.token_hex(32),
        PAYAPP_TRUSTED_PROXIES="1",
        PAYAPP_BIND=f"127.0.0.1:{port}",
        PAYAPP_RATELIMIT_ENABLED="false",
    )


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ replaced by ``env`` (create_app reads PAYAPP_* from it), restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def make_app(env: dict[str, str]):
    """payapp in this process with ``env``, its schema migrated."""
    from payapp import create_app
    from payapp.db import upgrade_schema

    with environment(env):
        app = create_app()
    upgrade_schema(app.extensions["payapp.engine"])
    return app


def create_links(app, count: int, prefix: str) -> list[str]:
    """``count`` open links shown at the desk (no email or text), as /pay/<token> paths."""
    from payapp.db import get_session
    from payapp.links import LinkDraft, LinkRules, create_link, sign_token

    rules = LinkRules.from_config(app.config)
    paths = []
    with app.app_context():
        session = get_session()
        for i in range(count):
            draft = LinkDraft(
                patient_name=f"Load Patient {i}",
                amount="125.00",
                reference=f"{prefix}-{i}",
                send_now=False,
            )
            link = create_link(session, draft, rules)
            paths.append(f"/pay/{sign_token(link, app.config['SECRET_KEY'])}")
    return paths


def prepare_charges(app, count: int, host: str) -> Charges:
    """Fresh open links to pay and a patient's session: the pay page is opened once, as a
    browser would, for its session cookie and CSRF token."""
    paths = create_links(app, count + 1, "LOAD")
    client = app.test_client(use_cookies=False)
    page = client.get(paths[0], headers={**PROXY_HEADERS, "Host": host})
    if page.status_code != 200:
        raise RuntimeError(f"the pay page answered {page.status_code}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    cookie = next(
        (c.split(";", 1)[0] for c in page.headers.getlist("Set-Cookie") if "_session=" in c), None
    )
    if csrf is None or cookie is None:
        raise RuntimeError("the pay page gave no CSRF token or no session cookie")
    keys = [secrets.token_urlsafe(24) for _ in range(count)]  # what pay.py's new_attempt_key makes
    return Charges(cookie, csrf[1], paths[1:], keys)


def post_headers(charges: Charges, path: str, host: str) -> dict[str, str]:
    """The headers of one charge, as a browser (through htmx) behind Caddy sends them."""
    return {
        **PROXY_HEADERS,
        "Host": host,
        "Cookie": charges.cookie,
        "Referer": f"https://{host}{path}",
        "HX-Request": "true",
    }


# --- wrk ------------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures of ``wrk --latency``'s report."""
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not (p50 and p99 and total and rps):
        raise RuntimeError(f"could not read wrk's report:\n{output}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return WrkResult(
        requests_per_s=float(rps[1]),
        p50_ms=_ms(p50[1]),
        p99_ms=_ms(p99[1]),
        requests=int(total[1]),
        bad_responses=int(bad[1]) if bad else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def wrk_command(url: str, duration: float, *, script: Path | None = None, args=()) -> list[str]:
    argv = [shutil.which("wrk") or "wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}"]
    argv += [f"-d{duration:g}s", "--latency", "--timeout", "10s"]
    for name, value in PROXY_HEADERS.items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-H", "HX-Request: true", "-s", str(script)]
    argv.append(url)
    if args:
        argv += ["--", *args]
    return argv


def run_wrk(argv: list[str], server_pid: int) -> WrkResult:
    """Run wrk; its figures, plus the server's CPU time per request meanwhile."""
    cpu = process_tree_cpu_seconds(server_pid)
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)  # noqa: S603
    cpu = process_tree_cpu_seconds(server_pid) - cpu
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    result = parse_wrk(done.stdout)
    return dataclasses.replace(result, server_cpu_ms=cpu * 1000 / max(result.requests, 1))


def shown(argv: list[str]) -> str:
    return " ".join(f"'{a}'" if " " in a else a for a in argv)


# --- server work per charge, in-process -----------------------------------------------------------


class TimedGateway:
    """The app's gateway, with the wall and CPU time spent inside create_payment added up."""

    def __init__(self, gateway):
        self._gateway = gateway
        self.wall = self.cpu = 0.0

    def create_payment(self, request):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._gateway.create_payment(request)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.thread_time() - cpu

    def __getattr__(self, name):
        return getattr(self._gateway, name)


@dataclass(frozen=True)
class ChargeWork:
    cpu_ms: float  # median CPU time of this thread per charge, less the gateway's
    wall_ms: float  # median elapsed time per charge, less the gateway's (other load shows here)
    completed: int
    attempted: int


def charge_work(workdir: Path, count: int) -> ChargeWork:
    """Server work per charge, in-process: each POST through the test client, timed less the
    time spent inside the (zero-latency demo) gateway. CPU time is the figure to judge on a
    shared machine; elapsed time also counts waiting for the CPUs others use."""
    host = "127.0.0.1:8443"
    app = make_app(bench_env(workdir, 8443))
    gateway = TimedGateway(app.extensions["payapp.gateway"])
    app.extensions["payapp.gateway"] = gateway
    charges = prepare_charges(app, count, host)
    client = app.test_client(use_cookies=False)  # the session cookie goes in the headers
    cpu_ms, wall_ms = [], []
    for i, path in enumerate(charges.paths):
        headers = post_headers(charges, path, host)
        gateway_wall, gateway_cpu = gateway.wall, gateway.cpu
        wall, cpu = time.perf_counter(), time.thread_time()
        response = client.post(path, data=charges.form(i), headers=headers)
        cpu_ms.append((time.thread_time() - cpu - (gateway.cpu - gateway_cpu)) * 1000)
        wall_ms.append((time.perf_counter() - wall - (gateway.wall - gateway_wall)) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"a charge answered {response.status_code}")
    warm = count // 10  # the first tenth warms caches up
    return ChargeWork(
        statistics.median(cpu_ms[warm:]),
        statistics.median(wall_ms[warm:]),
        count_completed(app),
        count,
    )


def count_completed(app) -> int:
    from sqlalchemy import func, select

    from payapp.db import get_session
    from payapp.models import Payment
    from payapp.states import PaymentStatus

    with app.app_context():
        session = get_session()
        return session.scalar(select(func.count()).where(Payment.status == PaymentStatus.COMPLETED))


# --- the run --------------------------------------------------------------------------------------


def gunicorn_options(workers: int = 0, threads: int = 0) -> tuple[str, ...]:
    """gunicorn's options for both apps: the documented settings, with --workers and --threads
    (when not 0) after them, so they win."""
    options = GUNICORN_OPTIONS
    if workers:
        options = (*options, "--workers", str(workers))
    if threads:
        options = (*options, "--threads", str(threads))
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per target")
    parser.add_argument("--links", type=int, default=4000, help="links prepared for the POSTs")
    parser.add_argument("--charges", type=int, default=300, help="in-process charges timed")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="gunicorn threads per process for both apps instead of the documented 4 (to "
        "compare; the goals are judged at the documented settings)",
    )
    parser.add_argument(
        "--workers", type=int, default=0, help="gunicorn processes instead of WORKERS (to compare)"
    )
    parser.add_argument(
        "--limits-on", action="store_true", help="also the pay page with rate limiting on"
    )
    args = parser.parse_args(argv)
    options = gunicorn_options(args.workers, args.threads)
    if shutil.which("wrk") is None:
        print("wrk is missing: apt-get install wrk (scripts/test installs it)", file=sys.stderr)
        return 2

    results: dict[str, tuple[WrkResult, list[str]]] = {}
    with tempfile.TemporaryDirectory(prefix="payapp-load-") as tmp:
        work = Path(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = bench_env(work / "payapp", port)
        bare_env = {k: v for k, v in env.items() if not k.startswith("PAYAPP_")}
        # The bare app under the same gunicorn settings (its config reads PAYAPP_BIND).
        bare_env["PAYAPP_BIND"] = env["PAYAPP_BIND"]
        bare_env["PAYAPP_INSTANCE_PATH"] = str(work / "bare")
        with running_gunicorn(
            bare_env, port, work / "bare.log", options=options, app="bench.bare_app:app"
        ) as server:
            run_wrk(wrk_command(f"{base}/healthz", 1), server.pid)  # warm up
            cmd = wrk_command(f"{base}/healthz", args.duration)
            results["bare Flask app /healthz"] = (run_wrk(cmd, server.pid), cmd)

        app = make_app(env)
        host = f"127.0.0.1:{port}"
        page_path = create_links(app, 1, "PAGE")[0]
        charges = prepare_charges(app, args.links, host)
        data = work / "charges.txt"
        charges.write(data)
        script = work / "charge.lua"
        script.write_text(POST_SCRIPT)
        with running_gunicorn(
            env, port, work / "payapp.log", options=options, health_headers=PROXY_HEADERS
        ) as server:
            run_wrk(wrk_command(f"{base}/healthz", 1), server.pid)  # warm up
            run_wrk(wrk_command(f"{base}{page_path}", 1), server.pid)
            for name, path in (
                ("payapp GET /healthz", "/healthz"),
                ("GET /pay/<token>", page_path),
            ):
                cmd = wrk_command(f"{base}{path}", args.duration)
                results[name] = (run_wrk(cmd, server.pid), cmd)
            cmd = wrk_command(
                base,
                args.duration,
                script=script,
                args=(str(data), str(WRK_THREADS), f"https://{host}"),
            )
            results["POST /pay/<token> (charge)"] = (run_wrk(cmd, server.pid), cmd)
        if args.limits_on:
            limited = {
                **env,
                "PAYAPP_RATELIMIT_ENABLED": "true",
                "PAYAPP_RATELIMIT_PAY_VIEW": UNREFUSED,
                "PAYAPP_RATELIMIT_INVALID_TOKEN": UNREFUSED,
            }
            with running_gunicorn(
                limited, port, work / "limited.log", options=options, health_headers=PROXY_HEADERS
            ) as server:
                run_wrk(wrk_command(f"{base}{page_path}", 1), server.pid)  # warm up
                cmd = wrk_command(f"{base}{page_path}", args.duration)
                results["GET /pay/<token>, limits on"] = (run_wrk(cmd, server.pid), cmd)
        paid = count_completed(app)
        per_charge = charge_work(work / "inprocess", args.charges)

    bare = results["bare Flask app /healthz"][0]
    print(
        f"gunicorn {' '.join(options)} ({args.workers or Defaults.WORKERS} processes x "
        f"{args.threads or 4} threads); "
        f"wrk {CONNECTIONS} connections, {args.duration:g} s each; production mode behind a "
        f"trusted proxy, demo gateway, SQLite WAL, rate limits off; {os.cpu_count()} CPUs "
        "shared with wrk"
    )
    print(GOALS)
    header = f"{'target':30} {'req/s':>8} {'x bare':>7} {'p50 ms':>7} {'x bare':>7} {'p99 ms':>7}"
    header += f" {'x bare':>7} {'cpu ms':>7} {'x bare':>7}"
    print(header + f" {'requests':>8} {'non-2xx/3xx':>11} {'socket err':>10}")
    for name, (r, _cmd) in results.items():
        print(
            f"{name:30} {r.requests_per_s:8.0f} {r.requests_per_s / bare.requests_per_s:6.2f}x "
            f"{r.p50_ms:7.2f} {r.p50_ms / bare.p50_ms:6.2f}x {r.p99_ms:7.2f} "
            f"{r.p99_ms / bare.p99_ms:6.2f}x {r.server_cpu_ms:7.3f} "
            f"{bare.server_cpu_ms / max(r.server_cpu_ms, 1e-9):6.2f}x {r.requests:8d} "
            f"{r.bad_responses:11d} {r.socket_errors:10d}"
        )
    print(
        "cpu ms: gunicorn's CPU time per request (all its processes, /proc); its x bare is "
        "bare cpu / this cpu, the share of the bare app's capacity when CPU is what runs out"
    )
    posts = results["POST /pay/<token> (charge)"][0]
    print(
        f"charges completed under load: {paid} (POSTs answered in time: {posts.requests}; "
        f"links prepared: {args.links})"
    )
    if paid >= args.links:
        print("  the prepared links ran out before the time did: raise --links")
    print(
        "server work per charge, in-process, less the gateway: "
        f"median {per_charge.cpu_ms:.2f} ms CPU ({per_charge.wall_ms:.2f} ms elapsed); "
        f"{per_charge.completed} of {per_charge.attempted} charges completed"
    )
    print("wrk commands (the POST's script and data file are made by this run):")
    for name, (_r, cmd) in results.items():
        print(f"  {name}: {shown(cmd)}")
    errors = sum(r.bad_responses + r.socket_errors for r, _ in results.values())
    return 1 if errors or per_charge.completed != per_charge.attempted else 0


if __name__ == "__main__":
    sys.exit(main())
