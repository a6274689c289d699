# payapp settings for a real site. Copy to instance/config.py (chmod 600) and fill in.
# Every setting is listed in docs/admin.md; PAYAPP_<NAME> environment variables override these.

ENV = "production"
# python3 -c "import secrets; print(secrets.token_hex(32))"
SECRET_KEY = ""  # required; the app refuses to start in production without it
PUBLIC_BASE_URL = "https://pay.your-clinic.com"

CLINIC_NAME = "Your Clinic"
CLINIC_PHONE = "(555) 123-4567"
CLINIC_TIMEZONE = "America/New_York"

# Without SMTP_URL, emails are written to instance/outbox/ instead of being sent.
SMTP_URL = "smtp+starttls://user:password@smtp.your-provider.com:587"
MAIL_FROM = "billing@your-clinic.com"

# Behind the documented Caddy on this machine: believe its X-Forwarded-For/-Proto (one proxy),
# and let gunicorn listen on loopback only, so nobody else can send those headers.
TRUSTED_PROXIES = 1
BIND = "127.0.0.1:8000"
