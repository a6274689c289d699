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
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from .conftest import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent  # the flask and gunicorn of the venv running pytest
CADDYFILE = REPO_ROOT / "deploy" / "Caddyfile"
START_TIMEOUT_S = 20
CLI_TIMEOUT_S = 60


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _request(port, method, path, headers=None, body=None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        response = conn.getresponse()
        response.text = response.read().decode()
        return response
    finally:
        conn.close()


def _wait_until_up(process: subprocess.Popen, name: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if _request(port, "GET", "/healthz").status == 200:
                return
        except OSError:
            pass  # not listening yet
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not answer /healthz in {START_TIMEOUT_S}s:\n{_read(log)}")
            continue
        pytest.fail(f"{name} exited with code {process.returncode}:\n{_read(log)}")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {path}: {exc})"


@contextmanager
def _payapp(workdir: Path, public_url: str) -> Iterator[tuple[int, str]]:
    """payapp under gunicorn on a loopback port (development mode, demo gateway) with one link;
    yields the port and the link's patient URL (on ``public_url``, Caddy's address)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYAPP_", "FLASK_"))}
    env.update(
        PAYAPP_INSTANCE_PATH=str(workdir / "instance"),
        PAYAPP_DATABASE_URL=f"sqlite:///{workdir / 'payapp.db'}",
        PAYAPP_OUTBOX_DIR=str(workdir / "outbox"),
        PAYAPP_PUBLIC_BASE_URL=public_url,
    )
    flask = [str(VENV_BIN / "flask"), "--app", "payapp"]
    run = {"cwd": REPO_ROOT, "env": env, "capture_output": True, "text": True, "check": True}
    subprocess.run([*flask, "init-db"], timeout=CLI_TIMEOUT_S, **run)  # noqa: S603
    created = subprocess.run(  # noqa: S603
        [*flask, "create-link", "--amount", "80.00", "--name", "Jane Doe", "--no-send"]
        + ["--email", "jane@example.com"],
        timeout=CLI_TIMEOUT_S,
        **run,
    ).stdout
    pay_url = created.strip().splitlines()[-1].strip()
    assert pay_url.startswith(f"{public_url}/pay/"), created
    log = workdir / "gunicorn.log"
    argv = [
        str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--threads", "4",
        "--error-logfile", str(log), "--no-control-socket", "wsgi:app",
    ]  # fmt: skip
    server = subprocess.Popen(argv, cwd=REPO_ROOT, env=env)  # noqa: S603
    try:
        _wait_until_up(server, "gunicorn", port, log)
        yield port, pay_url
    finally:
        _stop(server)


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
        _wait_until_up(server, "caddy", port, log)
        yield
    finally:
        _stop(server)


def _log_lines(access_log: Path, at_least: int) -> list[dict]:
    """Caddy's access-log entries, once it has written ``at_least`` of them."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        lines = [json.loads(line) for line in _read(access_log).splitlines() if line.strip()]
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
        entries = _log_lines(access_log, at_least=3)

    text = _read(access_log)
    pay_entries = [e for e in entries if e["request"]["uri"] == "/pay/[token]"]
    assert len(pay_entries) == 3, text  # the requests were logged, with their headers
    headers = pay_entries[1]["request"]["headers"]
    assert headers["Hx-Current-Url"] == [f"{origin}/pay/[token]"], headers
    assert headers["Referer"] == [f"{origin}/pay/[token]"], headers
    assert token not in text
    assert max(token.split("."), key=len) not in text  # not even the signature alone
    assert cookie.split("=", 1)[1] not in text  # nor the session cookie (Caddy blanks it)
