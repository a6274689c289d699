# shellcheck shell=bash
# Shared by scripts/run and scripts/test: a virtualenv in .venv with payapp installed from
# setup.cfg, pinned by constraints.txt. Re-installs only when setup.cfg or the pins change.
VENV="${VENV:-.venv}"

ensure_venv() {
  local extras="$1"
  local python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "payapp needs Python 3.11 or newer (found: $("$python" --version 2>&1))." >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV"
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.installed$extras"
  if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "== installing payapp$extras into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -c constraints.txt -e ".$extras"
    touch "$stamp"
  fi
}
