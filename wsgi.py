"""gunicorn entry point: `gunicorn wsgi:app` (see deploy/gunicorn.conf.py)."""

from payapp import create_app

app = create_app()
