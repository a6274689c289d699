"""requirement A3: rate limits hold across processes when several gunicorn workers run.

Each test starts a real gunicorn with two sync workers serving ``wsgi:app`` (plain HTTP,
development mode) on a fresh database, creates a payment link with the CLI, then opens the
patient page 30 times, each on a fresh ``Connection: close`` connection: the first half while
one worker is held busy by a half-sent request (so the other serves them all), the second half
while that other worker is held. gunicorn's access log names the worker (pid) behind each answer:
a probe header numbers the requests and the log line carries that number, the pid and the status.

* With ``redis://`` storage (a private redis-server on a free port) both workers count into one
  counter: exactly 5 pages succeed, every later request gets 429, whichever worker answers.
* With the default store (a SQLite file in the instance folder, no Redis) the same holds.
* The control, ``memory://`` with the same two workers: each worker counts alone, so each lets
  its own first 5 through (10 in all). That is why several workers need Redis.
"""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from ..support.servers import (
    create_link_url,
    free_port,
    payapp_env,
    run_flask,
    running_gunicorn,
    stop,
    tail,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


LIMIT = 5
PAY_VIEW_LIMIT = f"{LIMIT} per hour"  # the window opens at the first hit: no edge mid-test
REQUESTS = 30  # enough that both workers pass their own 5 when each counts alone
START_TIMEOUT_S = 20
PROBE_HEADER = "X-Probe"
# The probe number, the worker's pid as "<1234>", the status. No path: it holds the link token.
ACCESS_LOG_FORMAT = f"probe=%({{{PROBE_HEADER.lower()}}}i)s pid=%(p)s status=%(s)s"
ACCESS_LINE = re.compile(r"^probe=(\S+) pid=<(\d+)> status=(\d+)$")


@dataclass(frozen=True)
class Answer:
    status: int
    pid: int


@dataclass(frozen=True)
class TwoWorkers:
    """gunicorn with two sync workers, one payment link, and the access log that names pids."""

    master: subprocess.Popen
    port: int
    pay_url: str
    access_log: Path
    error_log: Path

    def open_pay_page_on_each_worker(self, times: int) -> list[Answer]:
        """GET the patient page ``times`` times, the first half on one worker, the rest on the
        other: while one batch runs, the other worker is held busy by an unfinished request."""
        first_half = times // 2
        with self._hold_one_worker() as free_pid:
            answers = self._open_pay_page(range(first_half))
        assert {a.pid for a in answers} == {free_pid}, answers
        with self._hold_one_worker(other_than=free_pid) as other_pid:
            second = self._open_pay_page(range(first_half, times))
        assert {a.pid for a in second} == {other_pid}, second
        return answers + second

    @contextmanager
    def _hold_one_worker(self, other_than: int | None = None) -> Iterator[int]:
        """Keep one worker busy (``other_than``'s, if given) reading a request that is not
        finished yet; yield the pid of the other worker, the only one free to accept.

        A sync worker serves one connection at a time, so it stays on the half-sent request.
        Which worker accepts it is the kernel's choice: a /healthz probe, answered by the free
        worker, tells which; when it is the wrong one, let it go and try again."""
        deadline = time.monotonic() + START_TIMEOUT_S
        for attempt in itertools.count():
            name = f"hold-{other_than}-{attempt}"
            held = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            try:
                held.sendall(  # no blank line at the end: the worker waits for the rest
                    f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                    f"{PROBE_HEADER}: {name}\r\n".encode()
                )
                self._get("/healthz", f"{name}-probe")
                free_pid = self._pids_of([f"{name}-probe"])[f"{name}-probe"]
                if other_than is None or free_pid != other_than:
                    yield free_pid
                    return
            finally:
                held.sendall(b"\r\n")
                while held.recv(65536):  # the worker answers, closes, and is free again
                    pass
                held.close()
            if time.monotonic() > deadline:
                pytest.fail(f"could not hold worker {other_than} busy in {START_TIMEOUT_S}s")

    def _open_pay_page(self, probes: range) -> list[Answer]:
        """GET the patient page once per probe number, one fresh connection each, in order."""
        path = urlsplit(self.pay_url).path
        statuses = [self._get(path, str(probe)) for probe in probes]
        pids = self._pids_of([str(probe) for probe in probes])
        return [
            Answer(status, pids[str(probe)]) for probe, status in zip(probes, statuses, strict=True)
        ]

    def _get(self, path: str, probe: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close", PROBE_HEADER: probe})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def _pids_of(self, probes: list[str]) -> dict[str, int]:
        """Which worker answered each probe, from the access log (a worker writes its line just
        after sending the response, so poll until every probe is there)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            pids = {}
            for line in self.access_log.read_text().splitlines():
                if match := ACCESS_LINE.match(line.strip()):
                    pids[match[1]] = int(match[2])
            if pids.keys() >= set(probes):
                return pids
            if time.monotonic() > deadline:
                pytest.fail(
                    f"the access log lacks probes {sorted(set(probes) - pids.keys())}:\n"
                    f"{self.access_log.read_text()}"
                )
            _pause_unless_exited(self.master, "gunicorn", self.error_log)


def _pause_unless_exited(process: subprocess.Popen, name: str, log: Path) -> None:
    """Wait a moment between polls, on the process itself: fail at once if it has died."""
    try:
        process.wait(timeout=0.05)
    except subprocess.TimeoutExpired:
        return
    pytest.fail(f"{name} exited with code {process.returncode}:\n{tail(log)}")


@contextmanager
def _redis_server(workdir: Path) -> Iterator[str]:
    """A private redis-server on a free port, nothing saved to disk; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH: run scripts/test (it installs Debian's)")
    port = free_port()
    log = workdir / "redis.log"
    argv = [
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", str(workdir),
    ]  # fmt: skip
    with log.open("wb") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.ConnectionError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                pytest.fail(f"redis-server did not answer PING in {START_TIMEOUT_S}s:\n{tail(log)}")
            _pause_unless_exited(server, "redis-server", log)
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(server)


@contextmanager
def _two_workers(workdir: Path, storage_uri: str | None) -> Iterator[TwoWorkers]:
    """payapp under gunicorn --workers 2 with the given rate-limit storage (None: the default,
    the SQLite file in the instance folder) and one link."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    storage = {"PAYAPP_RATELIMIT_STORAGE_URI": storage_uri} if storage_uri else {}
    env = payapp_env(workdir, base_url, PAYAPP_RATELIMIT_PAY_VIEW=PAY_VIEW_LIMIT, **storage)
    run_flask(env, "init-db")
    pay_url = create_link_url(
        env, base_url, "--amount", "80.00", "--name", "Jane Doe", "--email", "jane@example.com"
    )
    access_log, error_log = workdir / "access.log", workdir / "gunicorn.log"
    options = (
        "--workers", "2",
        "--worker-class", "sync",
        "--access-logfile", str(access_log),
        "--access-logformat", ACCESS_LOG_FORMAT,
    )  # fmt: skip
    # The health probe is numbered -1, so its access-log line is told apart from the test's.
    with running_gunicorn(
        env, port, error_log, options=options, health_headers={PROBE_HEADER: "-1"}
    ) as master:
        yield TwoWorkers(master, port, pay_url, access_log, error_log)


def _per_worker(answers: list[Answer]) -> dict[int, Counter]:
    by_pid: dict[int, Counter] = {}
    for answer in answers:
        by_pid.setdefault(answer.pid, Counter())[answer.status] += 1
    return by_pid


def _assert_both_workers_answered(app: TwoWorkers, answers: list[Answer]) -> None:
    pids = {answer.pid for answer in answers}
    assert len(pids) == 2, f"expected both workers to answer, got pids {_per_worker(answers)}"
    assert app.master.pid not in pids, "the gunicorn master itself answered: not a worker pid"


def test_two_workers_sharing_redis_let_exactly_five_page_views_through_then_answer_429(
    tmp_path: Path,
) -> None:
    with _redis_server(tmp_path) as redis_url, _two_workers(tmp_path, redis_url) as app:
        answers = app.open_pay_page_on_each_worker(REQUESTS)
        with redis.Redis.from_url(redis_url) as client:
            counters = client.keys("*show_pay_page*")

    _assert_both_workers_answered(app, answers)
    statuses = [answer.status for answer in answers]
    assert statuses == [200] * LIMIT + [429] * (REQUESTS - LIMIT), _per_worker(answers)
    # The proof that the count is shared: a worker refused a page before it had itself served
    # five, which it can only do by counting the other worker's hits.
    per_worker = _per_worker(answers)
    assert any(c[429] and c[200] < LIMIT for c in per_worker.values()), per_worker
    assert counters, "no rate-limit counter for the pay page in Redis"


def test_two_workers_sharing_the_default_sqlite_store_let_exactly_five_page_views_through(
    tmp_path: Path,
) -> None:
    """The one-VM default (no Redis): both processes count in instance/ratelimits.db."""
    with _two_workers(tmp_path, None) as app:
        answers = app.open_pay_page_on_each_worker(REQUESTS)
    counters = list(tmp_path.glob("**/ratelimits.db"))

    _assert_both_workers_answered(app, answers)
    statuses = [answer.status for answer in answers]
    assert statuses == [200] * LIMIT + [429] * (REQUESTS - LIMIT), _per_worker(answers)
    per_worker = _per_worker(answers)
    assert any(c[429] and c[200] < LIMIT for c in per_worker.values()), per_worker
    assert len(counters) == 1, "no rate-limit file in the instance folder"


def test_two_workers_with_memory_storage_each_count_alone_and_let_more_than_five_through(
    tmp_path: Path,
) -> None:
    with _two_workers(tmp_path, "memory://") as app:
        answers = app.open_pay_page_on_each_worker(REQUESTS)

    _assert_both_workers_answered(app, answers)
    per_worker = _per_worker(answers)
    # Each worker serves its own first five and refuses the rest: per-process counters.
    for pid, counts in per_worker.items():
        assert counts.keys() <= {200, 429}, f"worker {pid}: {counts}"
        served = counts.total()
        assert counts[200] == min(served, LIMIT), f"worker {pid}: {counts}"
    assert sum(c[200] for c in per_worker.values()) > LIMIT, per_worker
