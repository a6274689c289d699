"""Through the documented server (Debian's Caddy running deploy/Caddyfile in front of gunicorn),
the pay page's own files arrive compressed and cacheable for a year, and the page does not."""

from __future__ import annotations

import gzip
import http.client
import re
from pathlib import Path
from urllib.parse import urlsplit

import brotli
import pytest

from payapp.assets import split_url

from ..support.servers import REPO_ROOT, free_port
from .test_caddy_log import _caddy, _payapp

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _get(port: int, path: str, accept_encoding: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Connection": "close", "Accept-Encoding": accept_encoding}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.body = response.read()
        return response
    finally:
        conn.close()


def test_through_caddy_assets_are_compressed_and_immutable_and_pages_are_not_stored(
    tmp_path: Path,
) -> None:
    caddy_port = free_port()
    with (
        _payapp(tmp_path, f"http://127.0.0.1:{caddy_port}") as (app_port, pay_url),
        _caddy(tmp_path, caddy_port, app_port, tmp_path / "access.log"),
    ):
        page = _get(caddy_port, urlsplit(pay_url).path, "gzip")
        assert page.status == 200
        assert page.getheader("Cache-Control") == "no-store"
        html = gzip.decompress(page.body).decode()
        refs = re.findall(r'(?:href|src)="(/assets/[^"]+)"', html)
        assert {split_url(ref)[0] for ref in refs} == {
            "css/app.css",
            "favicon.svg",
            "js/pay-demo.js",
        }
        css_ref = next(ref for ref in refs if ref.endswith(".css"))
        css = (REPO_ROOT / "static" / "css" / "app.css").read_bytes()
        for encoding, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
            asset = _get(caddy_port, css_ref, f"{encoding}, deflate")
            assert asset.status == 200
            assert asset.getheader("Content-Encoding") == encoding
            assert asset.getheader("Cache-Control") == "public, max-age=31536000, immutable"
            assert decode(asset.body) == css
