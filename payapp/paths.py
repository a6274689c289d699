"""Where the site's files are: templates/, static/, migrations/ and the default instance folder."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# A checkout keeps templates/, static/ and migrations/ at the top of the repo, beside the package;
# a wheel carries them inside the package (setup.py copies them in at build time).
INSTALLED = (PACKAGE_DIR / "templates").is_dir()
SITE_DIR = PACKAGE_DIR if INSTALLED else PACKAGE_DIR.parent
TEMPLATES_DIR = SITE_DIR / "templates"
STATIC_DIR = SITE_DIR / "static"
MIGRATIONS_DIR = SITE_DIR / "migrations"
# The instance folder (settings, secret key, SQLite file) belongs to a deployment, not to the code:
# beside the code in a checkout, in the working directory for an installed copy (never inside
# site-packages, where a reinstall would strand it). PAYAPP_INSTANCE_PATH overrides both.
DEFAULT_INSTANCE_DIR = (Path.cwd() if INSTALLED else PACKAGE_DIR.parent) / "instance"
