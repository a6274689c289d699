#!/usr/bin/env bash
# Daily backup of payapp's PostgreSQL database: pg_dump's custom format (-Fc, compressed; one
# consistent snapshot, safe while the app runs) to instance/backups/payapp-<UTC time>.db.dump,
# readable by the payapp user only; deletes dumps older than 30 days. The database is the app's
# own PAYAPP_DATABASE_URL (postgresql+psycopg://... is accepted), e.g. /etc/payapp/env:
#   15 2 * * * payapp set -a; . /etc/payapp/env; /opt/payapp/deploy/pg-backup.sh
# Keep the password in ~payapp/.pgpass rather than in the URL. Restore with deploy/pg-restore.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${PAYAPP_DATABASE_URL:?set PAYAPP_DATABASE_URL to the database to back up}"
URL="${URL/postgresql+psycopg:/postgresql:}"
DEST="${PAYAPP_BACKUP_DIR:-instance/backups}"
BIN="${PAYAPP_PG_BIN:+$PAYAPP_PG_BIN/}"  # pg_dump from PATH unless set (e.g. /usr/lib/postgresql/15/bin)
umask 077
mkdir -p "$DEST"
chmod 700 "$DEST"
out="$DEST/payapp-$(date -u +%Y%m%dT%H%M%SZ).db.dump"
"${BIN}pg_dump" --format=custom --no-owner --no-privileges --file="$out.partial" "$URL"
mv "$out.partial" "$out"  # a dump cut short never looks like a backup
find "$DEST" -name 'payapp-*.db.dump' -mtime +30 -delete
echo "backed up to $out"
