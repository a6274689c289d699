# gunicorn settings for one VM: one process with threads, so the in-memory rate-limit store is
# shared by every request. With several processes or VMs, set PAYAPP_RATELIMIT_STORAGE_URI to
# Redis and raise `workers`.
from payapp.config import gunicorn_bind

# BIND in instance/config.py (or PAYAPP_BIND), default 127.0.0.1:8000: Caddy (deploy/Caddyfile)
# terminates TLS in front. Set it there, not with --bind, so check-deployment sees it too.
bind = gunicorn_bind()
workers = 1
threads = 8
timeout = 60  # above the card gateway's own timeout
forwarded_allow_ips = "127.0.0.1"
# No gunicorn access log: request paths carry payment-link tokens. Caddy keeps the access log
# with the token redacted (deploy/Caddyfile). Errors still go to stderr (the journal).
accesslog = None
errorlog = "-"
# gunicorn 27 opens a control socket in the service user's home by default; payapp needs none.
control_socket_disable = True
