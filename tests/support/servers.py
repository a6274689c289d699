"""Real servers for the tests that need them: a free port, a TLS certificate (trustme), payapp's
CLI and gunicorn as subprocesses, and the Square stand-in in Square mode.

Failures raise ServerError with the tail of the server's log, so a test (or a script) shows why
the server did not come up.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme

from tests.support.square_standin import SquareStandin

REPO_ROOT = Path(__file__).resolve().parents[2]
# The flask and gunicorn scripts of the interpreter running the tests (the project's venv).
VENV_BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT_S = 30
CLI_TIMEOUT_S = 60
LOG_TAIL_LINES = 200


class ServerError(RuntimeError):
    """A server or command the tests need did not start or failed."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    # The OS picks an unused port; the server binds it a moment later. The race is harmless here.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The end of a log file, or why it could not be read."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def stop(process: subprocess.Popen) -> None:
    """Terminate a server, killing it if it does not stop within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsCertificate:
    """A server certificate for 127.0.0.1 issued by a throwaway CA; clients trust ``ca_cert``."""

    ca_cert: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))


def make_certificate(folder: Path, host: str = "127.0.0.1") -> TlsCertificate:
    """Write a CA certificate and a server certificate and key for ``host`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert(host)  # an IP address becomes an IP subjectAltName (Chromium wants it)
    certificate = TlsCertificate(folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(certificate.ca_cert))
    for i, pem in enumerate(issued.cert_chain_pems):
        pem.write_to_path(str(certificate.cert), append=i > 0)
    issued.private_key_pem.write_to_path(str(certificate.key))
    return certificate


# --- payapp as a process ------------------------------------------------------------------------


def payapp_env(workdir: Path, base_url: str, **settings: str) -> dict[str, str]:
    """This process's environment without the developer's PAYAPP_*/FLASK_* settings (Square keys,
    debug mode, another database...), plus a temporary instance folder, database and outbox."""
    from tests.support.postgres import empty_database_url  # it imports this module

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYAPP_", "FLASK_"))}
    env.update(
        # An empty instance folder, so a local instance/config.py (Square keys...) can't leak in.
        PAYAPP_INSTANCE_PATH=str(workdir / "instance"),
        PAYAPP_OUTBOX_DIR=str(workdir / "outbox"),
        PAYAPP_PUBLIC_BASE_URL=base_url,
        **settings,
    )
    if "PAYAPP_DATABASE_URL" not in settings:
        # SQLite in the folder, or a new database on the PostgreSQL leg.
        env["PAYAPP_DATABASE_URL"] = empty_database_url(workdir / "payapp.db")
    return env


def run_flask(env: dict[str, str], *args: str) -> str:
    """Run ``flask --app payapp ARGS`` from the repository; return its stdout."""
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(VENV_BIN / "flask"), "--app", "payapp", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise ServerError(
            f"`flask --app payapp {' '.join(args)}` exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result.stdout


def create_link_url(env: dict[str, str], base_url: str, *args: str) -> str:
    """Create a payment link with the CLI (``args`` are create-link's options); the patient's
    URL, which is the command's last line."""
    stdout = run_flask(env, "create-link", *args)
    lines = stdout.strip().splitlines()
    pay_url = lines[-1].strip() if lines else ""
    if not pay_url.startswith(f"{base_url}/pay/"):
        raise ServerError(f"create-link's last line is not a patient URL on {base_url}:\n{stdout}")
    return pay_url


def is_healthy(base_url: str, *, headers: dict[str, str] | None = None) -> bool:
    """Whether GET /healthz answers {"status": "ok"} (any certificate: "is it up?", not "is it
    trusted?")."""
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(  # noqa: S310 - our own http(s):// URL
        f"{base_url}/healthz", headers={"Connection": "close", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, context=unverified, timeout=2) as response:  # noqa: S310
            body = json.load(response)
    except (OSError, http.client.HTTPException, ValueError):
        return False  # not listening yet, TLS not up yet, 5xx, not JSON...
    return isinstance(body, dict) and body.get("status") == "ok"


def wait_until(ready, process: subprocess.Popen, name: str, log_path: Path, timeout: float) -> None:
    """Poll ``ready()`` until it is true; fail with the log if ``process`` exits or time runs
    out. Between polls it waits on the process itself, which returns at once if it died."""
    deadline = time.monotonic() + timeout
    while not ready():
        try:
            process.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                raise ServerError(
                    f"{name} was not ready within {timeout}s\n--- log ---\n{tail(log_path)}"
                ) from None
            continue
        raise ServerError(f"{name} exited with code {process.returncode}\n{tail(log_path)}")


@contextmanager
def running_gunicorn(
    env: dict[str, str],
    port: int,
    log_path: Path,
    *,
    certificate: TlsCertificate | None = None,
    options: Sequence[str] = ("--workers", "1", "--threads", "4"),
    health_headers: dict[str, str] | None = None,
    app: str = "wsgi:app",
) -> Iterator[subprocess.Popen]:
    """gunicorn serving ``app`` (payapp's ``wsgi:app`` unless told) on 127.0.0.1:``port`` (TLS
    with ``certificate``), its output in ``log_path``; yields once /healthz answers ok, stops it
    afterwards."""
    argv = [str(VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}"]
    if certificate is not None:
        argv += ["--certfile", str(certificate.cert), "--keyfile", str(certificate.key)]
    # No ~/.gunicorn/gunicorn.ctl (gunicorn 27 makes one by default).
    argv += [*options, "--no-control-socket", app]
    base_url = f"{'https' if certificate else 'http'}://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        server = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(
            lambda: is_healthy(base_url, headers=health_headers),
            server,
            "gunicorn",
            log_path,
            SERVER_START_TIMEOUT_S,
        )
        yield server
    finally:
        stop(server)


# --- Square mode against the local Square stand-in ----------------------------------------------

SQUARE_WEBHOOK_URL = "https://pay.clinic.example/webhooks/square"


@contextmanager
def running_standin(token: str, location: str, **options) -> Iterator[SquareStandin]:
    """The Square stand-in, checked afterwards: idle, no internal errors, every response it gave
    valid against Square's published schema. ``options`` go to SquareStandin."""
    with SquareStandin(access_token=token, location_id=location, **options) as server:
        yield server
        assert server.wait_until_idle(timeout=5)
        assert server.server_errors == []
        assert server.schema_errors == []


def square_mode(standin: SquareStandin, *, webhook_key: str, **extra) -> dict:
    """App settings that put payapp in Square mode, its API calls going to ``standin``."""
    return {
        "SQUARE_ACCESS_TOKEN": standin.access_token,
        "SQUARE_APPLICATION_ID": "sandbox-sq0idb-standin-app",
        "SQUARE_LOCATION_ID": standin.location_id,
        "SQUARE_ENVIRONMENT": "sandbox",
        "SQUARE_BASE_URL": standin.base_url,
        "SQUARE_TIMEOUT": 1.0,
        "SQUARE_WEBHOOK_SIGNATURE_KEY": webhook_key,
        "SQUARE_WEBHOOK_URL": SQUARE_WEBHOOK_URL,
        **extra,
    }


def square_mode_env(standin: SquareStandin, application_id: str) -> dict[str, str]:
    """The same, as the PAYAPP_* environment of a payapp process."""
    return {
        "PAYAPP_SQUARE_ACCESS_TOKEN": standin.access_token,
        "PAYAPP_SQUARE_APPLICATION_ID": application_id,
        "PAYAPP_SQUARE_LOCATION_ID": standin.location_id,
        "PAYAPP_SQUARE_ENVIRONMENT": "sandbox",
        "PAYAPP_SQUARE_BASE_URL": standin.base_url,
    }
