"""deploy/gunicorn.conf.py as deployed: its processes share the work.

With one listening socket shared by the processes, whichever process woke first accepted a
burst of new connections, so kept-alive connections (Caddy's to gunicorn, a load test's) could
all end up queued on one process while the other idled (issue 10, fifth round: the benchmark
swung between 0.13x and 0.47x with it). Each process now has its own socket (SO_REUSEPORT) and
the kernel spreads connections over them.
"""

from __future__ import annotations

import http.client
import re
import runpy
from pathlib import Path

import pytest

from ..support.servers import REPO_ROOT, free_port, payapp_env, running_gunicorn

pytestmark = pytest.mark.integration

CONFIG = str(REPO_ROOT / "deploy" / "gunicorn.conf.py")
CONNECTIONS = 24  # all on one of two processes by chance: 2 in 2**24 runs
ACCESS_LINE = re.compile(r"^probe=(\d+) pid=<(\d+)>$")


def test_kept_alive_connections_are_spread_over_both_processes(tmp_path: Path) -> None:
    port = free_port()
    env = payapp_env(tmp_path, f"http://127.0.0.1:{port}", PAYAPP_BIND=f"127.0.0.1:{port}")
    access_log = tmp_path / "access.log"
    options = (
        "--config", CONFIG,
        "--workers", "2",  # production's WORKERS (demo mode alone runs one)
        "--access-logfile", str(access_log),
        "--access-logformat", "probe=%({x-probe}i)s pid=%(p)s",
    )  # fmt: skip
    with running_gunicorn(env, port, tmp_path / "gunicorn.log", options=options):
        connections = [
            http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(CONNECTIONS)
        ]
        for connection in connections:  # all open (accepted) before any request is sent
            connection.connect()
        for number, connection in enumerate(connections):
            connection.request("GET", "/healthz", headers={"X-Probe": str(number)})
        for connection in connections:
            response = connection.getresponse()
            assert response.status == 200
            response.read()
            connection.close()

    pids = {}
    for line in access_log.read_text().splitlines():
        if match := ACCESS_LINE.match(line):
            pids[int(match[1])] = int(match[2])
    assert sorted(pids) == list(range(CONNECTIONS))
    assert len(set(pids.values())) == 2, f"every connection on one process: {pids}"


@pytest.mark.parametrize(
    ("bind", "reuse_port"),
    [("127.0.0.1:8000", True), ("[::1]:8000", True), ("unix:/run/payapp.sock", False)],
)
def test_each_process_listens_on_its_own_tcp_socket_but_never_on_a_unix_path(
    bind: str, reuse_port: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Processes binding one Unix socket path would take the path from each other.
    monkeypatch.setenv("PAYAPP_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("PAYAPP_BIND", bind)
    assert runpy.run_path(CONFIG)["reuse_port"] is reuse_port
