"""X-Forwarded-For is believed only from configured proxies (TRUSTED_PROXIES), and check-deployment
refuses to call a site ready that trusts them while gunicorn is reachable by others (issue 7 §5)."""

import runpy
from pathlib import Path

import pytest

from payapp import create_app, deployment
from payapp.db import get_session, upgrade_schema
from payapp.links import LinkDraft, LinkRules, create_link, sign_token

from .conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[1]
SITE = "https://pay.clinic.example"
PROXY = {"REMOTE_ADDR": "127.0.0.1"}  # every request arrives from the same machine (Caddy's)


def production_app(tmp_path, monkeypatch, **settings):
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    app = create_app(
        {
            "ENV": "production",
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path}/prod.db",
            "PUBLIC_BASE_URL": SITE,
            "OUTBOX_DIR": str(tmp_path / "outbox"),
            "RATELIMIT_ENABLED": True,
            "RATELIMIT_PAY_VIEW": "1 per hour",
            **settings,
        }
    )
    with app.app_context():
        upgrade_schema(app.extensions["payapp.engine"])
        link = create_link(
            get_session(),
            LinkDraft(patient_name="Jane Doe", email="jane@example.com", amount="20.00"),
            LinkRules.from_config(app.config),
        )
        app.config["TEST_PAY_PATH"] = f"/pay/{sign_token(link, app.config['SECRET_KEY'])}"
    return app


def views_from(app, *forwarded_for: str) -> list[int]:
    """Open the pay page once per X-Forwarded-For value, all from the same TCP peer."""
    client = app.test_client()
    return [
        client.get(
            app.config["TEST_PAY_PATH"],
            base_url=SITE,
            environ_base=PROXY,
            headers={"X-Forwarded-For": address},
        ).status_code
        for address in forwarded_for
    ]


def test_by_default_x_forwarded_for_does_not_change_the_rate_limit_key(tmp_path, monkeypatch):
    app = production_app(tmp_path, monkeypatch)
    assert app.config["TRUSTED_PROXIES"] == 0
    # A client making up a new address per request still counts as one address.
    assert views_from(app, "203.0.113.1", "203.0.113.2", "203.0.113.3") == [200, 429, 429]


def test_with_one_trusted_proxy_each_forwarded_address_is_limited_on_its_own(tmp_path, monkeypatch):
    app = production_app(tmp_path, monkeypatch, TRUSTED_PROXIES=1)
    assert views_from(app, "203.0.113.1", "203.0.113.2", "203.0.113.1") == [200, 200, 429]


def test_the_setting_not_the_mode_decides_development_trusts_a_proxy_when_told(
    tmp_path, monkeypatch
):
    app = production_app(tmp_path, monkeypatch, TRUSTED_PROXIES=1, ENV="development")
    assert views_from(app, "203.0.113.1", "203.0.113.2", "203.0.113.1") == [200, 200, 429]


@pytest.mark.parametrize("value", [-1, 9, "one", True])
def test_a_nonsense_number_of_proxies_refuses_to_start(tmp_path, monkeypatch, value):
    from payapp.config import ConfigError

    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        production_app(tmp_path, monkeypatch, TRUSTED_PROXIES=value)


# --- check-deployment ---------------------------------------------------------------------------


def proxy_check(app, **environ):
    return deployment.proxy_check(app.config, environ)


@pytest.mark.parametrize(
    ("proxies", "bind", "ok"),
    [
        (0, "127.0.0.1:8000", False),  # behind a proxy it does not believe: HTTPS loops
        (0, "unix:/run/payapp.sock", False),
        (0, "0.0.0.0:8000", True),  # served directly: the headers are ignored anyway
        (1, "127.0.0.1:8000", True),
        (1, "localhost:8000", True),
        (1, "[::1]:8000", True),
        (1, "unix:/run/payapp.sock", True),
        (1, "0.0.0.0:8000", False),
        (1, ":8000", False),
        (1, "[::]:8000", False),
        (1, "192.0.2.10:8000", False),
        (1, "127.0.0.1:8000 0.0.0.0:8001", False),
    ],
)
def test_check_deployment_fails_when_proxy_headers_are_trusted_on_an_open_port(
    tmp_path, monkeypatch, proxies, bind, ok
):
    app = production_app(tmp_path, monkeypatch, TRUSTED_PROXIES=proxies, BIND=bind)
    check = proxy_check(app)
    assert check.ok is ok, check
    if not ok and proxies:
        assert "BIND" in check.detail and "TRUSTED_PROXIES = 0" in check.detail
    if not ok and not proxies:
        assert "set TRUSTED_PROXIES = 1" in check.detail


def test_check_deployment_sees_a_bind_given_to_gunicorn_in_gunicorn_cmd_args(tmp_path, monkeypatch):
    app = production_app(tmp_path, monkeypatch, TRUSTED_PROXIES=1)
    assert proxy_check(app).ok
    assert not proxy_check(app, GUNICORN_CMD_ARGS="--workers 2 --bind 0.0.0.0:8000").ok
    assert not proxy_check(app, GUNICORN_CMD_ARGS="-b 0.0.0.0:9000").ok


def test_check_deployment_lists_the_proxy_check(tmp_path, monkeypatch):
    app = production_app(tmp_path, monkeypatch, TRUSTED_PROXIES=1, BIND="0.0.0.0:8000")
    with app.app_context():
        checks = {c.name: c for c in deployment.run_checks(app.config, get_session())}
    assert not checks["Proxy headers"].ok


def test_gunicorn_listens_where_bind_says(tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir()
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(instance))
    monkeypatch.delenv("PAYAPP_BIND", raising=False)
    conf = str(ROOT / "deploy" / "gunicorn.conf.py")
    assert runpy.run_path(conf)["bind"] == ["127.0.0.1:8000"]
    (instance / "config.py").write_text('BIND = "127.0.0.1:8100"\n')
    assert runpy.run_path(conf)["bind"] == ["127.0.0.1:8100"]
    monkeypatch.setenv("PAYAPP_BIND", "unix:/run/payapp.sock")
    assert runpy.run_path(conf)["bind"] == ["unix:/run/payapp.sock"]
