# gunicorn settings for one VM: WORKERS processes (default 2, one per CPU: one process's threads
# share one CPU through Python's GIL; demo mode runs 1) of 4 threads each (a card payment holds
# its thread while Square answers). The processes share the rate-limit counters through the
# SQLite file in the instance folder (the default RATELIMIT_STORAGE_URI); with several VMs,
# point them all at Redis.
import gc

from payapp.config import gunicorn_bind, gunicorn_workers

# BIND in instance/config.py (or PAYAPP_BIND), default 127.0.0.1:8000: Caddy (deploy/Caddyfile)
# terminates TLS in front. Set it there, not with --bind, so check-deployment sees it too.
bind = gunicorn_bind()
workers = gunicorn_workers()  # WORKERS in instance/config.py (or PAYAPP_WORKERS)
threads = 4
# Each process its own listening socket (SO_REUSEPORT), so the kernel spreads new connections
# over them. With one shared socket, whichever process woke first took them all: kept-alive
# connections (Caddy's, a browser's) then queued on one process while the other idled. Only for
# TCP: processes binding one Unix socket path would take the path from each other.
reuse_port = not any(address.startswith("unix:") for address in bind)
timeout = 60  # above the card gateway's own timeout
forwarded_allow_ips = "127.0.0.1"
# No gunicorn access log: request paths carry payment-link tokens. Caddy keeps the access log
# with the token redacted (deploy/Caddyfile). Errors still go to stderr (the journal).
accesslog = None
errorlog = "-"
# gunicorn 27 opens a control socket in the service user's home by default; payapp needs none.
control_socket_disable = True


def post_worker_init(worker):
    """Once a process has loaded the app: its objects so far (modules, the app, SQLAlchemy's
    and Jinja's tables: about 136,000) are moved out of the garbage collector's sight. They live
    as long as the process, and every full collection walked them all, about 60 ms in which that
    process served nobody: a tenth off the pay page's p99 under load (issue 10, sixth round)."""
    gc.collect()
    gc.freeze()
