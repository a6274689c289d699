"""bench/load.py's pieces: the bare baseline app, the prepared charges wrk sends, and the reading
of wrk's report. (tests/integration/test_load_bench.py runs the whole benchmark, briefly.)"""

import re
from urllib.parse import parse_qsl

from sqlalchemy import select

from bench import bare_app, load
from payapp.db import get_session
from payapp.models import PaymentLink

HOST = "127.0.0.1:8443"

WRK_REPORT = """\
Running 10s test @ http://127.0.0.1:40000/healthz
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    21.06ms   17.62ms 160.80ms   86.17%
    Req/Sec   605.12    150.70     1.00k    70.50%
  Latency Distribution
     50%  920.00us
     75%   27.40ms
     90%   41.12ms
     99%    1.20s
  12177 requests in 10.10s, 1.90MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   1205.64
Transfer/sec:    192.66KB
"""


def test_the_bare_app_answers_healthz_like_payapp_without_payapp():
    response = bare_app.app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert "Content-Security-Policy" not in response.headers


def test_prepared_charges_each_pay_their_own_fresh_link(tmp_path):
    app = load.make_app(load.bench_env(tmp_path, 8443))
    charges = load.prepare_charges(app, 3, HOST)
    assert len(set(charges.paths)) == 3 and len(set(charges.attempt_keys)) == 3
    client = app.test_client(use_cookies=False)
    for i, path in enumerate(charges.paths):
        # Production mode behind the proxy: HTTPS, strict CSRF with a same-origin Referer.
        response = client.post(
            path, data=charges.form(i), headers=load.post_headers(charges, path, HOST)
        )
        assert response.status_code == 200
        assert "Payment received" in response.text
    assert load.count_completed(app) == 3
    with app.app_context():
        statuses = get_session().scalars(select(PaymentLink.status)).all()
    # The link whose page gave the session cookie and CSRF token stays open.
    assert sorted(statuses) == ["open", "paid", "paid", "paid"]


def test_the_wrk_data_file_holds_the_cookie_then_one_charge_a_line(tmp_path):
    app = load.make_app(load.bench_env(tmp_path / "app", 8443))
    charges = load.prepare_charges(app, 2, HOST)
    data = tmp_path / "charges.txt"
    charges.write(data)
    cookie, *lines = data.read_text().splitlines()
    assert cookie == charges.cookie and cookie.startswith("payapp_session=")
    assert len(lines) == 2
    for i, line in enumerate(lines):
        # What the Lua script's pattern "^(%S+) (%S+)$" reads.
        path, body = re.fullmatch(r"(\S+) (\S+)", line).groups()
        assert path == charges.paths[i]
        assert dict(parse_qsl(body)) == charges.form(i)


def test_wrks_report_is_read_with_its_errors_and_units():
    result = load.parse_wrk(WRK_REPORT)
    assert result.requests_per_s == 1205.64 and result.requests == 12177
    assert result.p50_ms == 0.92 and result.p99_ms == 1200.0
    assert result.bad_responses == 7 and result.socket_errors == 5


def test_a_clean_wrk_report_counts_no_errors():
    clean = "\n".join(
        line for line in WRK_REPORT.splitlines() if not line.startswith(("  Socket", "  Non-2xx"))
    )
    result = load.parse_wrk(clean)
    assert result.bad_responses == 0 and result.socket_errors == 0
