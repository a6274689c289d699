"""Static files for pages (payapp/assets.py): fingerprinted names, compressed bodies, cached for a
year; pages themselves stay uncacheable."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import brotli

from payapp.assets import FOREVER, split_url

ROOT = Path(__file__).resolve().parents[1]
ASSET_REF = re.compile(r'(?:href|src)="(/assets/[^"]+)"')


def asset_refs(html: str) -> dict[str, str]:
    """{"css/app.css": "/assets/css/app.<fingerprint>.css", ...} for a page's assets."""
    return {split_url(ref)[0]: ref for ref in ASSET_REF.findall(html)}


def test_pages_link_fingerprinted_assets_only(client, link_factory):
    for page in (client.get("/login"), client.get(link_factory().path)):
        assert "/static/" not in page.text
        refs = asset_refs(page.text)
        assert {"css/app.css", "favicon.svg"} <= set(refs)
        for ref in refs.values():
            assert re.fullmatch(r"/assets/[\w/.-]+\.[0-9a-f]{16}\.(css|js|svg)", ref), ref


def test_the_open_pay_page_loads_three_own_files_one_of_them_a_script(client, link_factory):
    """Issue 10's budget: the page itself plus these three are its four requests."""
    page = client.get(link_factory().path)
    refs = asset_refs(page.text)
    assert set(refs) == {"css/app.css", "favicon.svg", "js/pay-demo.js"}
    assert len(re.findall(r"<script\b", page.text)) == 1


def test_an_asset_is_compressed_as_the_browser_accepts_and_cached_for_a_year(client):
    ref = asset_refs(client.get("/login").text)["css/app.css"]
    css = (ROOT / "static" / "css" / "app.css").read_bytes()

    br = client.get(ref, headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert br.status_code == 200 and br.headers["Content-Encoding"] == "br"
    assert brotli.decompress(br.data) == css
    assert len(br.data) < len(css) / 3

    gz = client.get(ref, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip" and gzip.decompress(gz.data) == css

    plain = client.get(ref, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.data == css

    for response in (br, gz, plain):
        assert response.headers["Cache-Control"] == FOREVER
        assert "immutable" in response.headers["Cache-Control"]
        assert "Accept-Encoding" in response.headers["Vary"]
        assert response.headers["Content-Type"] == "text/css; charset=utf-8"
        assert response.mimetype == "text/css"
        assert "Pragma" not in response.headers


def test_pages_are_still_never_stored_by_any_cache(client, link_factory):
    for page in (client.get("/login"), client.get(link_factory().path)):
        assert page.headers["Cache-Control"] == "no-store"


def test_a_changed_file_gets_a_new_name_and_the_old_name_is_gone(app, client, tmp_path):
    before = asset_refs(client.get("/login").text)
    static = tmp_path / "static"
    shutil.copytree(ROOT / "static", static)
    (static / "css" / "app.css").write_bytes(b"body { color: #000; }\n" * 40)
    app.static_folder = str(static)

    after = asset_refs(client.get("/login").text)
    assert after["css/app.css"] != before["css/app.css"]
    assert after["favicon.svg"] == before["favicon.svg"]  # unchanged content, unchanged name
    assert after["js/app.js"] == before["js/app.js"]
    fresh = client.get(after["css/app.css"], headers={"Accept-Encoding": "identity"})
    assert fresh.status_code == 200 and fresh.data.startswith(b"body { color: #000; }")
    assert client.get(before["css/app.css"]).status_code == 404


def test_made_up_or_unsafe_asset_names_are_not_found(client):
    ref = asset_refs(client.get("/login").text)["css/app.css"]
    fingerprint = split_url(ref)[1]
    for path in (
        "/assets/css/app.css",  # no fingerprint
        ref.replace(fingerprint, "0" * 16),
        f"/assets/js/inventory.{fingerprint}.json",
        f"/assets/../payapp/config.{fingerprint}.css",
        f"/assets/js/skimmer.{fingerprint}.js",
    ):
        assert client.get(path).status_code == 404, path


def test_the_pay_bundle_is_its_inventoried_parts_joined(app, client, link_factory):
    inventory = app.extensions["payapp.inventory"]
    ref = asset_refs(client.get(link_factory().path).text)["js/pay-demo.js"]
    body = client.get(ref, headers={"Accept-Encoding": "identity"})
    assert body.mimetype == "text/javascript"
    names = inventory.bundles["js/pay-demo.js"]["parts"]
    parts = [(ROOT / "static" / p).read_bytes() for p in names]
    assert body.data == b"\n;\n".join(parts)


def test_script_hashes_prints_the_bundles_hashes(app, runner):
    inventory = app.extensions["payapp.inventory"]
    with app.app_context():
        output = runner.invoke(args=["script-hashes"]).output
    for file, entry in inventory.bundles.items():
        assert f"{file} {entry['sha384']}" in output
