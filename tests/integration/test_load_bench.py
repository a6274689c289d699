"""bench/load.py end to end, briefly: real gunicorn, real wrk (scripts/test installs it), real
charges. No timing is asserted (speed is the benchmark's to print); only that every request was
answered and every charge paid."""

import re

import pytest

from bench import load

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_short_load_run_ends_with_no_errors_and_real_charges(capsys):
    argv = ["--duration", "1", "--links", "40", "--charges", "10", "--limits-on"]
    assert load.main(argv) == 0
    out = capsys.readouterr().out
    targets = ("bare Flask app /healthz", "payapp GET /healthz", "GET /pay/<token>")
    targets += ("POST /pay/<token> (charge)", "GET /pay/<token>, limits on")
    rows = {t: line for line in out.splitlines() for t in targets if line.startswith(t + " ")}
    assert set(rows) == set(targets)
    for line in rows.values():
        *_, requests, bad_responses, socket_errors = line.split()
        assert int(requests) > 0 and int(bad_responses) == 0 and int(socket_errors) == 0, line
    paid = int(re.search(r"charges completed under load: (\d+)", out)[1])
    assert 0 < paid <= 40
    assert "10 of 10 charges completed" in out


def test_the_thread_count_can_be_changed_for_both_apps(capsys):
    assert load.main(["--duration", "1", "--links", "20", "--charges", "5", "--threads", "2"]) == 0
    out = capsys.readouterr().out
    assert "--threads 2 (2 processes x 2 threads)" in out
