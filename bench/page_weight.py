#!/usr/bin/env python3
"""What does a patient's phone download before it can pay, and how long until Pay works?

Runs payapp the documented production way: gunicorn (deploy/gunicorn.conf.py's 2 processes x 4
threads, PAYAPP_ENV=production, demo card gateway) behind Debian's Caddy running deploy/Caddyfile
over HTTPS (Caddy's internal CA for 127.0.0.1, HTTP/2, its `encode`). Creates a fresh link, opens
it in Debian's Chromium (a fresh profile: empty cache) and prints our own resources (same
origin), requests and bytes as transferred (headers included, as DevTools' "Transferred"), by
type, and the time from navigation start until the Pay button is usable (enabled, card field
mounted), under Chrome DevTools Protocol network emulation and CPU throttling:

    profile "slow 3G": 400 kbit/s down, 400 kbit/s up, 400 ms round trip per request; CPU 4x

The same page is then loaded once more unthrottled as the baseline of this run (the machine is
shared; compare the ratio, not the seconds). Goals (issue 10) are printed next to the figures.

    .venv/bin/python bench/page_weight.py [--runs 3] [--split]

With --split, the page is also loaded with only the network slowed and with only the CPU slowed,
to show which of the two the Pay-usable time waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from payapp.config import Defaults  # noqa: E402
from tests.support.servers import (  # noqa: E402
    create_link_url,
    free_port,
    is_healthy,
    payapp_env,
    run_flask,
    running_gunicorn,
    stop,
    wait_until,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip
SLOW_3G = {"offline": False, "latency": 400, "downloadThroughput": 400_000 / 8,
           "uploadThroughput": 400_000 / 8}  # fmt: skip
CPU_SLOWDOWN = 4
GOAL_REQUESTS, GOAL_BYTES, GOAL_USABLE_S = 4, 30 * 1024, 2.0
TYPES = ("document", "script", "stylesheet", "image", "font", "other")

# Set before any page script runs (Playwright injects it; the page's CSP does not apply): the
# moment the Pay button is enabled with the card field mounted, in ms since navigation start.
PAY_USABLE_PROBE = """
(() => {
  const usable = () => {
    const b = document.getElementById('pay-button');
    const field = document.querySelector('#card-container input, #card-container iframe');
    return b && !b.disabled && field;
  };
  new MutationObserver((_, observer) => {
    if (!window.__payUsableAt && usable()) {
      window.__payUsableAt = performance.now();
      observer.disconnect();
    }
  }).observe(document, {subtree: true, childList: true, attributes: true});
})();
"""


@contextmanager
def caddy_in_front(workdir: Path, port: int, upstream_port: int) -> Iterator[None]:
    """Debian's Caddy running deploy/Caddyfile on https://127.0.0.1:<port> (its own local CA,
    not installed into any trust store; admin endpoint off)."""
    caddy = shutil.which("caddy") or sys.exit("caddy is not installed (scripts/test installs it)")
    env = {
        **os.environ,
        "PAYAPP_SITE_ADDRESS": f"https://127.0.0.1:{port}",
        "PAYAPP_UPSTREAM": f"127.0.0.1:{upstream_port}",
        "PAYAPP_ACCESS_LOG": str(workdir / "access.log"),
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir / "caddy-data"),
        "XDG_CONFIG_HOME": str(workdir / "caddy-config"),
    }
    adapted = subprocess.run(  # noqa: S603 - fixed argv
        [caddy, "adapt", "--config", str(ROOT / "deploy" / "Caddyfile"), "--adapter", "caddyfile"],
        env=env, capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    config = json.loads(adapted)
    config["admin"] = {"disabled": True, "config": {"persist": False}}
    config.setdefault("apps", {})["pki"] = {
        "certificate_authorities": {"local": {"install_trust": False}}
    }
    https = config["apps"]["http"]["servers"]
    for server in https.values():  # no port-80 redirect server for a loopback bench
        server.setdefault("automatic_https", {})["disable_redirects"] = True
    (workdir / "caddy.json").write_text(json.dumps(config))
    log = workdir / "caddy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [caddy, "run", "--config", str(workdir / "caddy.json")], env=env, stdout=out,
            stderr=out,
        )  # fmt: skip
    try:
        wait_until(
            lambda: is_healthy(f"https://127.0.0.1:{port}"), process, "caddy", log, timeout=30
        )
        yield
    finally:
        stop(process)


def load_page(
    browser, url: str, *, throttled: bool, network: bool = True, cpu: bool = True
) -> tuple[list[dict], float]:
    """Open ``url`` in a fresh context; our own responses and the Pay-usable time in seconds.
    ``throttled`` slows the network and the CPU, each unless told not to (``--split``)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.add_init_script(PAY_USABLE_PROBE)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
    if throttled and network:
        cdp.send("Network.emulateNetworkConditions", SLOW_3G)
    if throttled and cpu:
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    responses: dict[str, dict] = {}

    def on_response(event):
        response = event["response"]
        responses[event["requestId"]] = {
            "url": response["url"],
            "type": event["type"].lower(),
            "status": response["status"],
            "encoding": {k.lower(): v for k, v in response["headers"].items()}.get(
                "content-encoding", ""
            ),
            "protocol": response.get("protocol", ""),
        }

    def on_finished(event):
        if event["requestId"] in responses:
            responses[event["requestId"]]["bytes"] = event["encodedDataLength"]

    cdp.on("Network.responseReceived", on_response)
    cdp.on("Network.loadingFinished", on_finished)
    page.goto(url, wait_until="load", timeout=120_000)
    page.wait_for_function("window.__payUsableAt", timeout=120_000, polling=100)
    usable_ms = page.evaluate("window.__payUsableAt")
    page.wait_for_load_state("networkidle")
    context.close()
    own = [r for r in responses.values() if r["url"].startswith(origin)]
    return own, usable_ms / 1000


def by_type(resources: list[dict]) -> dict[str, tuple[int, int]]:
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in resources:
        kind = r["type"] if r["type"] in TYPES else "other"
        table[kind][0] += 1
        table[kind][1] += r.get("bytes", 0)
    return {k: tuple(v) for k, v in table.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="page loads per condition (median)")
    parser.add_argument(
        "--split",
        action="store_true",
        help="also load with only the network slowed and with only the CPU slowed",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="payapp-weight-") as tmp:
        workdir = Path(tmp)
        app_port, caddy_port = free_port(), free_port()
        base_url = f"https://127.0.0.1:{caddy_port}"
        env = payapp_env(
            workdir, base_url,
            PAYAPP_ENV="production", PAYAPP_SECRET_KEY=secrets.token_hex(32),
            PAYAPP_TRUSTED_PROXIES="1", PAYAPP_BIND=f"127.0.0.1:{app_port}",
            PAYAPP_CLINIC_NAME="Maple Street Dental", PAYAPP_CLINIC_PHONE="(555) 010-0142",
        )  # fmt: skip
        run_flask(env, "init-db")
        # Production's WORKERS processes (demo mode alone would run one).
        options = ("--config", str(ROOT / "deploy" / "gunicorn.conf.py"),
                   "--workers", str(Defaults.WORKERS))  # fmt: skip
        health = {"X-Forwarded-Proto": "https"}  # production redirects plain HTTP
        with (
            running_gunicorn(env, app_port, workdir / "gunicorn.log", options=options,
                             health_headers=health),
            caddy_in_front(workdir, caddy_port, app_port),
            sync_playwright() as playwright,
        ):  # fmt: skip
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            loads = {True: [], False: []}
            split = {"network": [], "cpu": []}
            for run in range(args.runs):
                conditions = [(False, "none"), (True, "both")]
                if args.split:
                    conditions += [(True, "network"), (True, "cpu")]
                for throttled, which in conditions:
                    url = create_link_url(
                        env, base_url, "--amount", "125.00", "--name", "Jane Doe",
                        "--email", "jane@example.com", "--reference", f"W-{run}-{which}",
                    )  # fmt: skip
                    load = load_page(
                        browser, url, throttled=throttled,
                        network=which in ("both", "network"), cpu=which in ("both", "cpu"),
                    )  # fmt: skip
                    (loads[throttled] if which in ("none", "both") else split[which]).append(load)
            browser.close()
    report(loads)
    if args.split:
        print("\nPay usable with one slowdown at a time (median): where the time goes")
        labels = (("network", "slow 3G network only"), ("cpu", f"CPU {CPU_SLOWDOWN}x only"))
        for which, label in labels:
            times = [t for _, t in split[which]]
            print(f"  {label:<22} {statistics.median(times):.2f} s  (runs: "
                  f"{', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip


def report(loads: dict[bool, list[tuple[list[dict], float]]]) -> None:
    own = loads[True][0][0]
    count, total = len(own), sum(r.get("bytes", 0) for r in own)
    print("payapp page weight: the patient page (open link, demo mode), production setup")
    print("  gunicorn (deploy/gunicorn.conf.py) behind Caddy (deploy/Caddyfile), HTTPS, no cache")
    print(f"  protocol: {sorted({r['protocol'] for r in own})}\n")
    print(f"{'own resources':<14}{'requests':>9}{'bytes':>10}")
    for kind, (n, size) in sorted(by_type(own).items(), key=lambda kv: TYPES.index(kv[0])):
        print(f"  {kind:<12}{n:>9}{size:>10}")
    print(f"  {'total':<12}{count:>9}{total:>10}")
    for r in own:
        path = urlsplit(r["url"]).path
        path = "/pay/<token>" if path.startswith("/pay/") else path
        print(f"    {r['status']} {r.get('bytes', 0):>7} B {r['encoding'] or 'identity':<8} {path}")
    fast = statistics.median(t for _, t in loads[False])
    slow = [t for _, t in loads[True]]
    median = statistics.median(slow)
    print(
        f"\nPay usable (slow 3G: 400 kbit/s, 400 ms RTT; CPU {CPU_SLOWDOWN}x), "
        f"median of {len(slow)}: {median:.2f} s  (runs: {', '.join(f'{t:.2f}' for t in slow)})"
    )
    print(f"Pay usable unthrottled (baseline, same run): {fast:.2f} s; ratio {median / fast:.1f}x")
    print("\ngoal                       figure     goal      met")
    rows = [
        ("own requests", f"{count}", f"<= {GOAL_REQUESTS}", count <= GOAL_REQUESTS),
        ("own bytes (transferred)", f"{total / 1024:.1f} KB", f"<= {GOAL_BYTES // 1024} KB",
         total <= GOAL_BYTES),
        ("Pay usable, slow 3G", f"{median:.2f} s", f"<= {GOAL_USABLE_S} s",
         median <= GOAL_USABLE_S),
    ]  # fmt: skip
    for name, figure, goal, met in rows:
        print(f"  {name:<25}{figure:>9}  {goal:<9} {'yes' if met else 'NO'}")


if __name__ == "__main__":
    main()
