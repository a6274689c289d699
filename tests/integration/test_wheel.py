"""The wheel built from setup.cfg runs the site on its own.

Built from a copy of the repo, installed into a fresh virtualenv, and started with gunicorn from a
directory outside the repo, the installed copy creates its database, makes a link, and serves the
login page and the pay page with their CSS and JavaScript.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from payapp.assets import split_url
from payapp.integrity import join_parts

from ..support.servers import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_REF = re.compile(r'(?:href|src)="(/(?:static|assets)/[^"?]+)')
# What a developer's checkout has that a clean source tree does not (and the tests: not shipped).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.py[co]", "instance",
    "tests", "test-results", ".*_cache", ".observatory", "node_modules",
)  # fmt: skip


@dataclass(frozen=True)
class InstalledSite:
    venv: Path
    site: Path  # the working directory outside the repo: its instance/ holds the database
    env: dict[str, str]

    def run(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603 - fixed argv
            [str(self.venv / "bin" / args[0]), *args[1:]],
            cwd=self.site,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def clean_env() -> dict[str, str]:
    """The environment minus what would make the venv import the checkout or our settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PAYAPP_", "FLASK_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> InstalledSite:
    work = tmp_path_factory.mktemp("wheel")
    env = clean_env()
    # Build from a copy: an in-tree build would leave build/ and payapp.egg-info in the checkout.
    source = work / "source"
    shutil.copytree(REPO_ROOT, source, ignore=NOT_SOURCE)
    dist, venv, site = work / "dist", work / "venv", work / "site"
    site.mkdir()
    pip = [sys.executable, "-m", "pip"]

    def run(*argv: str) -> None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)  # noqa: S603
        assert done.returncode == 0, done.stderr

    run(*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(source))
    (wheel,) = dist.glob("payapp-*.whl")
    # A venv without its own pip (ensurepip is the slow part): our pip installs into it.
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    into_venv = [*pip, "--python", str(venv / "bin" / "python")]
    run(*into_venv, "install", "-q", "-c", str(REPO_ROOT / "constraints.txt"), str(wheel))
    return InstalledSite(venv, site, env)


@pytest.fixture(scope="module")
def served(installed: InstalledSite) -> Iterator[str]:
    installed.run("flask", "--app", "payapp", "init-db")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - fixed argv
        [str(installed.venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "payapp:create_app()"],
        cwd=installed.site,
        env=installed.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "gunicorn did not answer /healthz within 30 s"
            time.sleep(0.1)  # polling for readiness, not timing a behaviour
        yield base_url
    finally:
        server.terminate()
        server.wait(timeout=10)
        server.stderr.close()


def test_the_venv_imports_the_installed_copy_not_the_checkout(installed):
    where = installed.run("python", "-c", "import payapp; print(payapp.__file__)").strip()
    assert Path(where).is_relative_to(installed.venv)
    assert not Path(where).is_relative_to(REPO_ROOT)
    tools = installed.run("python", "-c", "import importlib.util as u; print(u.find_spec('tests'))")
    assert tools.strip() == "None"  # the Square stand-in and the tests stay out of the wheel


def test_init_db_creates_the_database_in_the_working_directory(installed, served):
    assert (installed.site / "instance" / "payapp.db").is_file()
    again = installed.run("flask", "--app", "payapp", "init-db")
    assert "Database is up to date." in again


def assert_static_files_served(base_url: str, html: str, installed: InstalledSite) -> set[str]:
    refs = set(STATIC_REF.findall(html))
    inventory = json.loads((REPO_ROOT / "static" / "js" / "inventory.json").read_text())
    bundles = {b["file"]: b["parts"] for b in inventory.get("bundles", [])}
    for ref in refs:
        response = httpx.get(base_url + ref, headers={"Accept-Encoding": "identity"}, timeout=5)
        assert response.status_code == 200, ref
        name = split_url(ref)[0] if ref.startswith("/assets/") else ref.removeprefix("/static/")
        parts = bundles.get(name, [name])
        expected = join_parts([(REPO_ROOT / "static" / p).read_bytes() for p in parts])
        assert response.content == expected, ref
    return {Path(ref).suffix for ref in refs}


def test_the_installed_site_serves_the_login_page_with_its_css_and_js(installed, served):
    response = httpx.get(f"{served}/login", timeout=5)
    assert response.status_code == 200
    assert 'type="password"' in response.text
    assert {".css", ".js"} <= assert_static_files_served(served, response.text, installed)


@pytest.fixture
def pay_path(installed: InstalledSite, served: str) -> str:
    out = installed.run(
        "flask", "--app", "payapp", "create-link", "--amount", "12.50", "--name", "Pat Wheel"
    )
    return urlsplit(out.strip().splitlines()[-1]).path


def test_the_installed_site_serves_a_pay_page_with_its_css_and_js(
    installed, served, pay_path, caplog
):
    # httpx logs each URL at INFO, and this one carries a link token: the log-leak check in
    # conftest is right about app logs, but this is the test's own client.
    caplog.set_level(logging.WARNING, logger="httpx")
    response = httpx.get(served + pay_path, timeout=5)
    assert response.status_code == 200
    assert "$12.50" in response.text
    suffixes = assert_static_files_served(served, response.text, installed)
    assert {".css", ".js"} <= suffixes
    assert "/assets/js/pay-demo." in response.text  # the pay page's bundle


def test_the_installed_site_speaks_spanish_from_its_packaged_catalogue(installed, served, caplog):
    caplog.set_level(logging.WARNING, logger="httpx")
    out = installed.run(
        "flask",
        "--app",
        "payapp",
        "create-link",
        "--amount",
        "12.50",
        "--name",
        "Pat Wheel",
        "--language",
        "es",
    )
    path = urlsplit(out.strip().splitlines()[-1]).path
    response = httpx.get(served + path, timeout=5)
    assert response.status_code == 200
    assert '<html lang="es">' in response.text and "Pagar $12.50" in response.text
