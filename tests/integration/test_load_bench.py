"""bench/load.py end to end, briefly: real gunicorn, real wrk, real charges. No timing is
asserted (speed is the benchmark's to print); only that every request was answered and paid."""

import re
import shutil

import pytest

from bench import load

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by scripts/test")
def test_a_short_load_run_ends_with_no_errors_and_real_charges(capsys):
    assert load.main(["--duration", "1", "--links", "40", "--charges", "10"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("  ")[0]: line for line in out.splitlines() if line.endswith(" 0")}
    assert {"bare Flask app /healthz", "payapp GET /healthz", "GET /pay/<token>"} <= set(rows)
    assert "POST /pay/<token> (charge)" in rows
    paid = int(re.search(r"charges completed under load: (\d+)", out)[1])
    assert 0 < paid <= 40
    assert "10 of 10 charges completed" in out
