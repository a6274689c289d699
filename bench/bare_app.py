"""The baseline of bench/load.py: a bare Flask app with one route, served by the same gunicorn
settings as payapp. Its /healthz answers what payapp's does, minus payapp (no database, no
security headers, no session): whatever payapp's requests cost above this is payapp's own."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
