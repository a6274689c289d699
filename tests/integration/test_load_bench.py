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


def test_the_process_and_thread_counts_can_be_changed_for_both_apps():
    # main() starts the bare app and payapp with these same options (a whole run to show it
    # again took 11 s of each leg of the suite).
    assert load.gunicorn_options() == load.GUNICORN_OPTIONS
    assert load.gunicorn_options(threads=2)[-2:] == ("--threads", "2")
    options = load.gunicorn_options(3, 8)
    assert options[: len(load.GUNICORN_OPTIONS)] == load.GUNICORN_OPTIONS
    assert options[len(load.GUNICORN_OPTIONS) :] == ("--workers", "3", "--threads", "8")
    # gunicorn takes the last of a repeated option: the documented --workers is overridden.
    from gunicorn.config import Config

    config = Config()
    parsed = config.parser().parse_args(list(options[2:]))
    assert (parsed.workers, parsed.threads) == (3, 8)
