"""Static files for pages, fingerprinted, compressed and cached for a year (issue 10).

Templates name a file by its place in static/ (``asset_url("css/app.css")``) and get
``/assets/css/app.<fingerprint>.css``: a new content is a new URL, so a browser may keep each one
forever (``Cache-Control: public, max-age=31536000, immutable``). Bodies are compressed once per
process, brotli or gzip as the browser accepts, so the documented server needs no set-up for them.

Scripts stay under the inventory's rules (integrity.py): a script's fingerprint comes from its
inventoried hash, a bundle (several inventoried scripts as one file, for the pay page) is served
only when its parts and the joined result are the inventoried bytes, and a file that is not is
answered 404, as /static/ does.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
import threading
from pathlib import Path

import brotli
from flask import Response, abort, current_app, request
from werkzeug.security import safe_join

from .integrity import Inventory

log = logging.getLogger(__name__)

FOREVER = "public, max-age=31536000, immutable"
SERVED_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_FINGERPRINTED = re.compile(r"^(?P<stem>.+)\.(?P<fingerprint>[0-9a-f]{16})(?P<ext>\.[a-z]+)$")
# Compressed bodies by (content hash, encoding), shared by every app in the process.
_compressed: dict[tuple[str, str], bytes] = {}
_lock = threading.Lock()


def split_url(path: str) -> tuple[str, str] | None:
    """``/assets/js/app.<fingerprint>.js`` (or without ``/assets/``) -> ("js/app.js",
    fingerprint); None for anything else."""
    match = _FINGERPRINTED.match(path.removeprefix("/assets/"))
    if match is None or match["ext"] not in SERVED_TYPES:
        return None
    return match["stem"] + match["ext"], match["fingerprint"]


def fingerprint_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class Assets:
    """The fingerprinted names of one app's static files, and their bytes."""

    def __init__(self, app, inventory: Inventory):
        self.app = app
        self.inventory = inventory
        self._fingerprints: dict[str, tuple[tuple[float, int], str]] = {}

    @property
    def static_folder(self) -> str:
        return self.app.static_folder

    def is_script(self, name: str) -> bool:
        return name in self.inventory.scripts or name in self.inventory.bundles

    def fingerprint(self, name: str) -> str:
        if self.is_script(name):
            # The approved hash: a script whose bytes change is refused until the inventory
            # changes, and then its URL changes with it.
            return fingerprint_of(self.inventory.sri(name).encode())
        path = self._path(name)
        stat = path.stat()
        key = (stat.st_mtime, stat.st_size)
        cached = self._fingerprints.get(name)
        if cached is None or cached[0] != key:
            cached = (key, fingerprint_of(path.read_bytes()))
            self._fingerprints[name] = cached
        return cached[1]

    def url(self, name: str) -> str:
        """``/assets/<dir>/<stem>.<fingerprint><ext>`` for ``name`` (a path under static/)."""
        stem, dot, ext = name.rpartition(".")
        return f"/assets/{stem}.{self.fingerprint(name)}{dot}{ext}"

    def content(self, name: str) -> bytes | None:
        """The bytes to serve for ``name``, or None when there are none we may serve."""
        if name in self.inventory.bundles:
            return self.inventory.bundle_bytes(self.static_folder, name)
        if name in self.inventory.scripts:
            if not self.inventory.is_intact(self.static_folder, name):
                return None
            return self._path(name).read_bytes()
        if name.lower().endswith((".js", ".mjs", ".cjs")):
            return None  # a script nobody inventoried
        path = self._path(name)
        return path.read_bytes() if path.is_file() else None

    def _path(self, name: str) -> Path:
        joined = safe_join(self.static_folder, name)
        if joined is None:
            raise FileNotFoundError(name)
        return Path(joined)


def compressed(data: bytes, encoding: str) -> bytes:
    key = (hashlib.sha256(data).hexdigest(), encoding)
    with _lock:
        body = _compressed.get(key)
    if body is None:
        if encoding == "br":
            body = brotli.compress(data, quality=11, mode=brotli.MODE_TEXT)
        else:
            body = gzip.compress(data, compresslevel=9, mtime=0)
        with _lock:
            _compressed[key] = body
    return body


def serve_asset(filename: str):
    """GET /assets/<path>: the file for a current fingerprint, compressed, cacheable forever."""
    split = split_url(filename)
    if split is None:
        abort(404)
    name, fingerprint = split
    assets: Assets = current_app.extensions["payapp.assets"]
    try:
        data = assets.content(name)
        current = assets.fingerprint(name)
    except (OSError, KeyError):
        abort(404)
    if data is None:
        log.error("refused to serve %s: not in the script inventory or its hash changed", name)
        abort(404)
    if fingerprint != current:
        abort(404)  # an old or made-up fingerprint: never another content under its name
    response = Response(content_type=SERVED_TYPES[Path(name).suffix])
    accepted = request.accept_encodings
    encoding = next((e for e in ("br", "gzip") if accepted[e]), None)
    if encoding and len(data) > 512:
        response.set_data(compressed(data, encoding))
        response.headers["Content-Encoding"] = encoding
    else:
        response.set_data(data)
    response.headers["Cache-Control"] = FOREVER
    response.headers["Vary"] = "Accept-Encoding"
    return response


def init_app(app) -> None:
    inventory: Inventory = app.extensions["payapp.inventory"]
    assets = Assets(app, inventory)
    app.extensions["payapp.assets"] = assets
    app.add_url_rule("/assets/<path:filename>", "assets", serve_asset, methods=["GET"])
    app.jinja_env.globals["asset_url"] = assets.url
