#!/usr/bin/env bash
# Daily backup of payapp's SQLite database (safe while the app runs: SQLite's online backup).
# Keeps 30 days. Run as the payapp user from cron or a systemd timer, e.g. /etc/cron.d/payapp:
#   15 2 * * * payapp /opt/payapp/deploy/backup.sh
# Copy instance/backups/ off the machine too (another disk or an encrypted offsite store).
set -euo pipefail
cd "$(dirname "$0")/.."
DB="${PAYAPP_DB_FILE:-instance/payapp.db}"
DEST="${PAYAPP_BACKUP_DIR:-instance/backups}"
mkdir -p "$DEST"
chmod 700 "$DEST"
out="$DEST/payapp-$(date -u +%Y%m%dT%H%M%SZ).db"
.venv/bin/python - "$DB" "$out" <<'PY'
import sqlite3, sys
src, dst = sys.argv[1], sys.argv[2]
with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
    a.backup(b)
PY
chmod 600 "$out"
find "$DEST" -name 'payapp-*.db' -mtime +30 -delete
echo "backed up to $out"
