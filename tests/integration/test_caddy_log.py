"""The documented reverse proxy keeps payment-link tokens out of its access log.

Debian's Caddy runs deploy/Caddyfile itself, adapted only through the file's environment
placeholders (site address: plain HTTP on a loopback port; upstream; log path), in front of payapp
under gunicorn. A patient's page is opened and paid the way a browser with htmx does it: the token
is in the path and, on htmx requests, in ``HX-Current-URL``; every same-origin request carries it
in ``Referer``. Caddy's log must hold those requests and headers, but never the token.

The one change to Caddy's config besides the placeholders: its admin endpoint is switched off, so
the test neither collides with a Caddy already on localhost:2019 nor persists any config.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from ..support.servers import (
    CLI_TIMEOUT_S,
    REPO_ROOT,
    create_link_url,
    free_port,
    is_healthy,
    payapp_env,
    run_flask,
    running_gunicorn,
    stop,
    tail,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CADDYFILE = REPO_ROOT / "deploy" / "Caddyfile"
START_TIMEOUT_S = 20


def _request(port, method, path, headers=None, body=None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        response.text = response.read().decode()
        return response
    finally:
        conn.close()


@contextmanager
def _payapp(workdir: Path, public_url: str) -> Iterator[tuple[int, str]]:
    """payapp under gunicorn on a loopback port (development mode, demo gateway) with one link;
    yields the port and the link's patient URL (on ``public_url``, Caddy's address)."""
    port = free_port()
    env = payapp_env(workdir, public_url)
    run_flask(env, "init-db")
    pay_url = create_link_url(
        env, public_url,
        "--amount", "80.00", "--name", "Jane Doe", "--no-send", "--email", "jane@example.com",
    )  # fmt: skip
    with running_gunicorn(env, port, workdir / "gunicorn.log", options=("--threads", "4")):
        yield port, pay_url


@contextmanager
def _caddy(workdir: Path, port: int, upstream_port: int, access_log: Path) -> Iterator[None]:
    """Debian's Caddy running deploy/Caddyfile on http://127.0.0.1:<port>."""
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.fail("caddy is not on PATH: run scripts/test (it installs Debian's caddy)")
    env = {
        **os.environ,
        "PAYAPP_SITE_ADDRESS": f"http://127.0.0.1:{port}",
        "PAYAPP_UPSTREAM": f"127.0.0.1:{upstream_port}",
        "PAYAPP_ACCESS_LOG": str(access_log),
        # Caddy's own state (certificates, autosave) stays in the test's folder.
        "HOME": str(workdir),
        "XDG_DATA_HOME": str(workdir / "caddy-data"),
        "XDG_CONFIG_HOME": str(workdir / "caddy-config"),
    }
    adapted = subprocess.run(  # noqa: S603
        [caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=CLI_TIMEOUT_S,
    ).stdout
    config = json.loads(adapted)
    config["admin"] = {"disabled": True, "config": {"persist": False}}
    config_path = workdir / "caddy.json"
    config_path.write_text(json.dumps(config))
    log = workdir / "caddy.log"
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603
            [caddy, "run", "--config", str(config_path)], env=env, stdout=out, stderr=out
        )
    try:
        wait_until(
            lambda: is_healthy(f"http://127.0.0.1:{port}"), server, "caddy", log, START_TIMEOUT_S
        )
        yield
    finally:
        stop(server)


def _log_lines(access_log: Path, at_least: int) -> list[dict]:
    """Caddy's access-log entries, once it has written ``at_least`` of them."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        lines = [
            json.loads(line) for line in tail(access_log, lines=10_000).splitlines() if line.strip()
        ]
        if len(lines) >= at_least or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_caddys_access_log_never_holds_the_payment_token(tmp_path: Path) -> None:
    caddy_port = free_port()
    origin = f"http://127.0.0.1:{caddy_port}"
    access_log = tmp_path / "access.log"
    with (
        _payapp(tmp_path, origin) as (app_port, pay_url),
        _caddy(tmp_path, caddy_port, app_port, access_log),
    ):
        path = urlsplit(pay_url).path
        token = path.removeprefix("/pay/")
        page = _request(caddy_port, "GET", path, {"Referer": f"{origin}/"})
        assert page.status == 200 and "Card details" in page.text
        cookie = page.getheader("Set-Cookie").split(";")[0]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)[1]
        attempt = re.search(r'name="attempt_key" id="attempt-key" value="([^"]+)"', page.text)[1]
        htmx = {  # what htmx 2 sends from the pay page, beside the browser's Referer and Origin
            "HX-Request": "true",
            "HX-Current-URL": pay_url,
            "HX-Target": "pay-result",
            "HX-Trigger": "pay-form",
            "Referer": pay_url,
            "Origin": origin,
            "Cookie": cookie,
        }
        form = {"csrf_token": csrf, "source_id": "cnon:card-nonce-ok"}
        form |= {"postal_code": "94103", "attempt_key": attempt}
        paid = _request(
            caddy_port,
            "POST",
            path,
            {**htmx, "Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form),
        )
        assert paid.status == 200 and "Payment received" in paid.text
        again = _request(caddy_port, "GET", path, htmx)  # an htmx GET of the same page
        assert again.status == 200
        opt_out = "/reminders/stop/WyJzb21lLWxpbmsiLDE4MDAwMDAwMDBd.c2lnbmF0dXJlLXNpZw"
        assert _request(caddy_port, "GET", opt_out, {}).status == 404  # logged all the same
        entries = _log_lines(access_log, at_least=4)

    text = tail(access_log, lines=10_000)
    pay_entries = [e for e in entries if e["request"]["uri"] == "/pay/[token]"]
    assert len(pay_entries) == 3, text  # the requests were logged, with their headers
    headers = pay_entries[1]["request"]["headers"]
    assert headers["Hx-Current-Url"] == [f"{origin}/pay/[token]"], headers
    assert headers["Referer"] == [f"{origin}/pay/[token]"], headers
    assert token not in text
    assert "/reminders/stop/[token]" in [e["request"]["uri"] for e in entries]
    assert "c2lnbmF0dXJlLXNpZw" not in text  # nor a reminder's opt-out token
    assert max(token.split("."), key=len) not in text  # not even the signature alone
    assert cookie.split("=", 1)[1] not in text  # nor the session cookie (Caddy blanks it)
