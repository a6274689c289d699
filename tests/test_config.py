"""Settings: the public address follows where `scripts/run` serves unless set (issue 7 §6.1)."""

import email
from email import policy

import pytest

from payapp import create_app
from payapp.clinic import Clinic
from payapp.config import local_base_url
from payapp.db import get_session, upgrade_schema
from payapp.links import LinkDraft, LinkRules, create_link, link_url
from payapp.notify import Transports, send_link

from .conftest import TEST_SECRET


@pytest.fixture
def build(tmp_path, monkeypatch):
    """create_app() the way scripts/run does: no PUBLIC_BASE_URL, HOST/PORT from the shell."""
    for key in ("PAYAPP_PUBLIC_BASE_URL", "HOST", "PORT", "FLASK_RUN_HOST", "FLASK_RUN_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    built = []

    def make(**settings):
        app = create_app(
            {
                "SECRET_KEY": TEST_SECRET,
                "DATABASE_URL": f"sqlite:///{tmp_path}/c.db",
                "OUTBOX_DIR": str(tmp_path / "outbox"),
                "TEXT_HOURS": "",  # texts at any hour: these tests run at any hour
                **settings,
            }
        )
        built.append(app)
        return app

    yield make
    for app in built:
        app.extensions["payapp.engine"].dispose()


def test_without_settings_the_public_address_is_flasks_default(build):
    assert build().config["PUBLIC_BASE_URL"] == "http://127.0.0.1:5000"


def test_port_5101_makes_links_emails_and_texts_point_at_port_5101(build, monkeypatch, tmp_path):
    monkeypatch.setenv("PORT", "5101")
    app = build()
    assert app.config["PUBLIC_BASE_URL"] == "http://127.0.0.1:5101"

    with app.app_context():
        upgrade_schema(app.extensions["payapp.engine"])
        draft = LinkDraft(
            patient_name="Jane Doe", email="jane@example.com", phone="2125550123", amount="9.00"
        )
        link = create_link(get_session(), draft, LinkRules.from_config(app.config))
        url = link_url(app.config["PUBLIC_BASE_URL"], link, app.config["SECRET_KEY"])
        sent = send_link(
            get_session(),
            app.jinja_env,
            Transports.from_config(app.config),
            link,
            url,
            Clinic.from_config(app.config),
        )
    assert url.startswith("http://127.0.0.1:5101/pay/")
    assert [m.status for m in sent] == ["sent", "sent"]
    [eml] = (tmp_path / "outbox").glob("*.eml")
    body = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert url in body.get_body(preferencelist=("plain",)).get_content()
    [sms] = (tmp_path / "outbox").glob("*.txt")
    assert url in sms.read_text()


def test_host_and_port_both_count_and_all_interfaces_means_this_machine(build, monkeypatch):
    monkeypatch.setenv("HOST", "192.0.2.5")
    monkeypatch.setenv("PORT", "8080")
    assert build().config["PUBLIC_BASE_URL"] == "http://192.0.2.5:8080"
    assert local_base_url({"HOST": "0.0.0.0", "PORT": "5101"}) == "http://127.0.0.1:5101"
    assert local_base_url({"HOST": "::1", "PORT": "5101"}) == "http://[::1]:5101"
    assert local_base_url({"FLASK_RUN_PORT": "5202"}) == "http://127.0.0.1:5202"


def test_an_explicit_public_address_wins_over_host_and_port(build, monkeypatch):
    monkeypatch.setenv("PORT", "5101")
    monkeypatch.setenv("PAYAPP_PUBLIC_BASE_URL", "https://pay.clinic.example/")
    assert build().config["PUBLIC_BASE_URL"] == "https://pay.clinic.example"
