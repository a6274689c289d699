"""What happens when the shared rate-limit store (Redis, or the one-VM SQLite file) is unusable
(issue 7 §6.12)."""

import pytest

from payapp.db import get_session
from payapp.links import LinkDraft, LinkRules, create_link, sign_token

from ..support.servers import free_port

pytestmark = pytest.mark.integration


def pay_path(app) -> str:
    with app.app_context():
        link = create_link(
            get_session(),
            LinkDraft(patient_name="Jane Doe", email="jane@example.com", amount="20.00"),
            LinkRules.from_config(app.config),
        )
        return f"/pay/{sign_token(link, app.config['SECRET_KEY'])}"


@pytest.mark.parametrize("store", ["redis", "sqlite"])
def test_with_the_store_unusable_pages_still_answer_and_limits_still_apply_per_process(
    make_payapp, tmp_path, store
):
    # Redis where nothing listens; or the one-VM default file pointed at a folder, so every hit
    # fails, as with a full or unreadable disk. flask-limiter's in-memory fallback takes over.
    (tmp_path / "not-a-database").mkdir()
    uri = {
        "redis": f"redis://127.0.0.1:{free_port()}",
        "sqlite": f"sqlite:///{tmp_path / 'not-a-database'}",
    }[store]
    app = make_payapp(
        RATELIMIT_ENABLED=True,
        RATELIMIT_STORAGE_URI=uri,
        RATELIMIT_PAY_VIEW="3 per hour",
        PUBLIC_BASE_URL="http://localhost",
    )
    path = pay_path(app)
    client = app.test_client()

    statuses = [client.get(path).status_code for _ in range(5)]

    assert statuses == [200, 200, 200, 429, 429]
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_when_redis_stops_mid_run_pages_keep_answering_and_limits_carry_on_per_process(
    make_payapp, tmp_path
):
    from .test_redis_limits import _redis_server

    with _redis_server(tmp_path) as redis_url:
        app = make_payapp(
            RATELIMIT_ENABLED=True,
            RATELIMIT_STORAGE_URI=redis_url,
            RATELIMIT_PAY_VIEW="3 per hour",
            PUBLIC_BASE_URL="http://localhost",
        )
        path = pay_path(app)
        client = app.test_client()
        assert client.get(path).status_code == 200  # counted in Redis
    # Redis has stopped: no 500s; the limit carries on, counted in this process's memory (the
    # count there may differ from Redis's by the request that found Redis gone).
    statuses = [client.get(path).status_code for _ in range(5)]

    assert set(statuses) == {200, 429} and statuses[0] == 200, statuses
    assert statuses.count(200) <= 3 and statuses[-2:] == [429, 429], statuses
    assert client.get("/login").status_code == 200
